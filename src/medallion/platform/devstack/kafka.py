"""A local stand-in of Kafka: one Apache Kafka 4.x broker in KRaft mode, run from Maven jars.

The broker is both controller and broker (``process.roles=broker,controller``, node 1) with every
replication factor and min ISR at 1. Its data, config, cluster id and logs live under
``<storage_root>/_system/devstack/kafka/``; storage is formatted once, so a broker started again
after ``down`` keeps its topics and messages (the stream is replayable). The controller quorum
is static (``controller.quorum.voters``) rather than ``--standalone``: a static voter's endpoint
is read from the config at each start, so a restart on a different port still finds itself.

Jars come from ``make setup`` (``jvm/kafka/pom.xml`` copied into ``.cache/kafka-jars``, or
``MEDALLION_KAFKA_JARS_DIR``). Clients use ``confluent-kafka``; ``ensure_topic``,
``produce_json`` and ``consume_all`` cover what the pipeline's tests need.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from medallion.lakehouse.errors import KafkaDeliveryFailed, KafkaJarsMissing, KafkaUnavailable
from medallion.lakehouse.locks import file_lock
from medallion.lakehouse.settings import repo_root
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.service import (
    ServiceInfo,
    owns_listening_port,
    pick_port,
    pid_alive,
    port_is_free,
    read_info,
    service_dir,
    write_info,
)

log = logging.getLogger(__name__)

NAME = "kafka"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
HEAP_OPTIONS = ("-Xms256m", "-Xmx1g")
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
PORT_ATTEMPTS = 3  # a start that loses its port to a concurrent one is retried on free ports


def kafka_jars_dir() -> Path:
    """The folder holding the broker jars: ``MEDALLION_KAFKA_JARS_DIR`` or ``.cache/kafka-jars``."""
    override = os.environ.get("MEDALLION_KAFKA_JARS_DIR")
    return Path(override) if override else repo_root() / ".cache" / "kafka-jars"


def _classpath() -> str:
    """The broker classpath, after checking the jars are there."""
    jars = kafka_jars_dir()
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise KafkaJarsMissing(
            f"expected the Kafka broker jars (kafka_2.13-*.jar and its dependencies) in {jars}, "
            "found none; run `make setup` (or set MEDALLION_KAFKA_JARS_DIR)"
        )
    return f"{jars}/*"


def _java() -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java`` or the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaUnavailable("expected a `java` (17+) on PATH or in JAVA_HOME, found none")
    return found


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise ``up``/``down`` of one storage root's broker across processes."""
    return file_lock(directory / "lifecycle.lock")


def _server_properties(directory: Path, port: int, controller_port: int) -> str:
    """The broker's ``server.properties`` for a single combined KRaft node."""
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(directory / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _log4j2_properties(log_path: Path) -> str:
    """A log4j2 config that writes WARN and above to ``log_path``."""
    return (
        "status = error\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {log_path}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = WARN\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
    )


def _previous_ports(directory: Path) -> tuple[int, int]:
    """The ports the last broker of this root listened on (the defaults if it never ran)."""
    try:
        text = (directory / "server.properties").read_text()
    except FileNotFoundError:
        return DEFAULT_PORT, DEFAULT_CONTROLLER_PORT
    listeners = next(line for line in text.splitlines() if line.startswith("listeners="))
    ports = dict(
        (name, int(address.rsplit(":", 1)[1]))
        for name, address in (item.split("://") for item in listeners.split("=", 1)[1].split(","))
    )
    return ports["PLAINTEXT"], ports["CONTROLLER"]


def _is_our_broker(pid: int, directory: Path) -> bool:
    """True when ``pid`` is alive and is the broker started with this root's config."""
    if not pid_alive(pid):
        return False
    try:
        process = psutil.Process(pid)
        zombie = process.status() == psutil.STATUS_ZOMBIE
        return not zombie and str(directory / "server.properties") in process.cmdline()
    except psutil.Error:  # gone, or not ours to inspect
        return False


def _answers(bootstrap: str, timeout: float) -> bool:
    """True when a broker at ``bootstrap`` returns cluster metadata within ``timeout``."""
    return _cluster_id_at(bootstrap, timeout) is not None


def _cluster_id_at(bootstrap: str, timeout: float) -> str | None:
    """The cluster id of the broker answering at ``bootstrap``, or None when none answers."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        cluster_id: str | None = admin.list_topics(timeout=timeout).cluster_id
    except KafkaException:
        return None
    return cluster_id


def status(storage_root: StorageRoot) -> ServiceInfo | None:
    """The running broker of this storage root, if its process is alive and its port open."""
    info = read_info(storage_root, NAME)
    if info is None:
        return None
    port = int(info.url.rsplit(":", 1)[1])
    if _is_our_broker(info.pid, service_dir(storage_root, NAME)) and not port_is_free(port):
        return info
    return None


def _format_storage(directory: Path, java: str, classpath: str) -> None:
    """Format the KRaft log dir once; the cluster id is kept in the service dir."""
    if (directory / "data" / "meta.properties").exists():
        return
    id_file = directory / "cluster_id"
    if not id_file.exists():
        id_file.write_text(_new_cluster_id())
    command = [
        java,
        f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        id_file.read_text().strip(),
        "-c",
        str(directory / "server.properties"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise KafkaUnavailable(
            f"formatting Kafka storage in {directory / 'data'} exited with code "
            f"{result.returncode}: {(result.stdout + result.stderr).strip()[-2000:]}"
        )


def up(storage_root: StorageRoot, *, timeout_seconds: float = START_TIMEOUT_SECONDS) -> ServiceInfo:
    """Start the storage root's broker (or return the one already up), once it answers clients.

    Ports are the last ones this root used, else the defaults, else free ones. Picking a free
    port and binding it are two steps, so another broker starting at the same moment can take
    it: a start that loses the race (our broker exits, or another cluster answers on the port)
    is retried on fresh free ports.
    """
    directory = service_dir(storage_root, NAME)
    with _lock(directory):
        running = status(storage_root)
        if running is not None:
            return running
        classpath, java = _classpath(), _java()
        preferred = _previous_ports(directory)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = pick_port(preferred[0] if attempt == 1 else 0)
            controller_port = pick_port(preferred[1] if attempt == 1 else 0)
            while controller_port == port:
                controller_port = pick_port(0)
            info = _start(storage_root, directory, java, classpath, port, controller_port,
                          timeout_seconds, last_attempt=attempt == PORT_ATTEMPTS)
            if info is not None:
                return info
            log.warning("Kafka broker for %s lost port %d or %d to another process; retrying "
                        "on free ports", storage_root, port, controller_port)
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover


def _start(
    storage_root: StorageRoot, directory: Path, java: str, classpath: str, port: int,
    controller_port: int, timeout_seconds: float, *, last_attempt: bool,
) -> ServiceInfo | None:
    """Start one broker on these ports; None when another process won a port (not last)."""
    (directory / "server.properties").write_text(
        _server_properties(directory, port, controller_port)
    )
    log_path = directory / "broker.log"
    (directory / "log4j2.properties").write_text(_log4j2_properties(log_path))
    _format_storage(directory, java, classpath)
    command = [
        java,
        *HEAP_OPTIONS,
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={directory}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(directory / "server.properties"),
    ]
    with (directory / "broker.out").open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    cluster_id = (directory / "cluster_id").read_text().strip()
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if not last_attempt and not (port_is_free(port) and port_is_free(controller_port)):
                return None  # exited because another process holds a port
            raise KafkaUnavailable(
                f"Kafka broker for {storage_root} exited with code {process.returncode} while "
                f"starting; see {log_path} and {directory / 'broker.out'}"
            )
        answering = None if port_is_free(port) else _cluster_id_at(bootstrap, timeout=2)
        if answering == cluster_id and owns_listening_port(process.pid, port):
            info = ServiceInfo(
                NAME,
                f"kafka://{bootstrap}",
                process.pid,
                {
                    "bootstrap_servers": bootstrap,
                    "controller_port": str(controller_port),
                    "cluster_id": cluster_id,
                    "log": str(log_path),
                },
            )
            write_info(storage_root, info)
            return info
        if answering is not None and answering != cluster_id:  # another broker holds the port
            _stop_process(process.pid)
            if last_attempt:
                raise KafkaUnavailable(
                    f"Kafka broker for {storage_root}: another cluster ({answering}) answers on "
                    f"{bootstrap}; expected cluster {cluster_id}"
                )
            return None
        time.sleep(0.2)
    _stop_process(process.pid)
    raise KafkaUnavailable(
        f"Kafka broker for {storage_root} did not answer on {bootstrap} within "
        f"{timeout_seconds:.0f} s; see {log_path}"
    )


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stop_process(pid: int, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM ``pid``'s process group, then SIGKILL it if it outlives ``timeout_seconds``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def down(storage_root: StorageRoot) -> bool:
    """Stop the storage root's broker; True if it was running. Data stays for the next ``up``."""
    directory = service_dir(storage_root, NAME)
    with _lock(directory):
        info = read_info(storage_root, NAME)
        was_running = info is not None and _is_our_broker(info.pid, directory)
        if info is not None and was_running:
            _stop_process(info.pid)
        (directory / "service.json").unlink(missing_ok=True)
        return was_running


def ensure_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 30) -> bool:
    """Create topic ``name`` unless it exists; True if this call created it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )[name]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise KafkaUnavailable(f"could not create topic {name!r} on {bootstrap}: {exc}") from exc
    return True


def produce_json(
    bootstrap: str,
    topic: str,
    records: Sequence[dict[str, Any]],
    key_field: str,
    timeout: float = 60,
    *,
    allow_null_keys: bool = False,
    json_default: Callable[[Any], Any] = str,
) -> int:
    """Produce ``records`` as JSON, keyed by ``key_field``, idempotently; the count delivered.

    A record without a key is refused unless ``allow_null_keys`` (then it goes without a key,
    as a dirty source would send it). ``json_default`` serialises values JSON cannot.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for position, record in enumerate(records):
        if record.get(key_field) is None and not allow_null_keys:
            raise KafkaDeliveryFailed(
                f"expected every record to have key field {key_field!r}; record {position} "
                f"for topic {topic!r} has {record.get(key_field)!r}"
            )
        raw_key = record.get(key_field)
        key = None if raw_key is None else str(raw_key).encode()
        value = json.dumps(record, sort_keys=True, default=json_default).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain it
        producer.poll(0)
    undelivered = producer.flush(timeout)
    if failures or undelivered:
        raise KafkaDeliveryFailed(
            f"expected {len(records)} records delivered to {topic!r} on {bootstrap}; "
            f"{len(failures)} failed and {undelivered} still queued after {timeout:.0f} s; "
            f"first error: {failures[0] if failures else 'none'}"
        )
    return len(records)


def consume_all(
    bootstrap: str,
    topic: str,
    group_id: str,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Every JSON record of ``topic`` after ``group_id``'s committed offsets, up to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.subscribe([topic])
        records: list[dict[str, Any]] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"expected to read {topic!r} to its end within {timeout:.0f} s; got "
                    f"{len(records)} records, {len(at_end)} of {len(partitions)} partitions done"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition() or 0)
            elif error is not None:
                raise KafkaUnavailable(f"consuming {topic!r} from {bootstrap} failed: {error}")
            else:
                at_end.discard(message.partition() or 0)
                records.append(json.loads(message.value() or b"null"))
        if records:
            consumer.commit(asynchronous=False)
        return records
    finally:
        consumer.close()
