"""A Spark standalone cluster on this machine: one master and N workers, each its own process.

Started from the pyspark package's own launcher (``bin/spark-class``; the pip package ships no
``start-master.sh``), on free loopback ports, with logs and each worker's work dir under one
folder. ``standalone_cluster`` yields once every worker is ALIVE in the master's ``/json/`` and
always stops every process it started (each runs in its own process group, with the executors
its worker launched).

A driver on the same machine reaches it as ``MEDALLION_SPARK_MASTER=spark://…`` (``client_env``):
the executors fetch the driver's ``spark.jars`` (Delta) from it, put the local file system's
jar on their class path from the same path, and read and write the lakehouse's local paths
directly, since they share the filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark

from medallion.lakehouse.errors import ComputeUnavailable
from medallion.platform.compute import free_port

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
DAEMON_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@dataclass(frozen=True)
class Worker:
    """One worker: its name, the folder its executors run in, and its log."""

    name: str
    work_dir: Path
    log: Path


@dataclass(frozen=True)
class StandaloneCluster:
    """A running cluster: the master's URLs and the workers."""

    master_url: str  # spark://127.0.0.1:<port>
    web_ui_url: str  # http://127.0.0.1:<port>, whose /json/ describes the cluster
    workers: tuple[Worker, ...]

    def state(self) -> dict[str, Any]:
        """The master's view of the cluster: workers, active and completed applications."""
        return master_state(self.web_ui_url)

    def client_env(self) -> dict[str, str]:
        """The environment under which a medallion session (the warm driver) uses the cluster."""
        return {"MEDALLION_SPARK_MASTER": self.master_url, "SPARK_LOCAL_IP": HOST}

    def executors_of(self, app_id: str) -> dict[str, str]:
        """The executors each worker launched for ``app_id``: executor id → worker name.

        A worker runs each executor in ``<work dir>/<app id>/<executor id>/``, beside its stderr.
        """
        return {
            executor.name: worker.name
            for worker in self.workers
            if (worker.work_dir / app_id).is_dir()
            for executor in (worker.work_dir / app_id).iterdir()
            if executor.is_dir()
        }


@dataclass(frozen=True)
class Launched:
    """A daemon process started here, and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path


def spark_home() -> Path:
    """The pyspark package's folder, which is a Spark home (``bin/``, ``jars/``)."""
    return Path(pyspark.__file__).resolve().parent


def master_state(web_ui_url: str, timeout_seconds: float = 5) -> dict[str, Any]:
    """The master's ``/json/``: its status, workers, active and completed applications."""
    with urllib.request.urlopen(f"{web_ui_url}/json/", timeout=timeout_seconds) as response:
        state: dict[str, Any] = json.load(response)
    return state


@contextlib.contextmanager
def standalone_cluster(
    base_dir: Path,
    *,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    timeout_seconds: float = 120,
) -> Iterator[StandaloneCluster]:
    """A master and ``workers`` workers (``cores`` cores, ``memory`` each) for the block.

    Logs go to ``base_dir/<name>.log``, executors to ``base_dir/<worker>-work/``. Raises
    ``ComputeUnavailable`` when a process exits or the workers are not all ALIVE in time.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        # The daemons and the executors they launch bind to loopback, whatever the hostname
        # resolves to; no REST submission server (it would take the fixed port 6066).
        "SPARK_LOCAL_IP": HOST,
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        # The daemons only keep books: the client compiler and the serial collector start them
        # (and spark-class's own JVM, which builds their command) in half the time on a busy
        # 2-core machine, where the server compiler's threads compete with the driver.
        "SPARK_DAEMON_JAVA_OPTS": DAEMON_JAVA_OPTIONS,
        "SPARK_LAUNCHER_OPTS": DAEMON_JAVA_OPTIONS,
    }
    processes: list[Launched] = []
    try:
        port, web_ui_port = free_port(), free_port()
        master_url, web_ui_url = f"spark://{HOST}:{port}", f"http://{HOST}:{web_ui_port}"
        processes.append(_start(
            [MASTER_CLASS, "--host", HOST, "--port", str(port), "--webui-port", str(web_ui_port)],
            base_dir / "master.log", env,
        ))
        # A worker that registers before the master is elected leader is never answered and
        # retries only seconds later: start the workers once the master says ALIVE.
        _wait_for(lambda state: state.get("status") == "ALIVE", web_ui_url, processes,
                  timeout_seconds, what="the master to be ALIVE")
        started = []
        for index in range(workers):
            name = f"worker-{index}"
            work_dir = base_dir / f"{name}-work"
            work_dir.mkdir(exist_ok=True)
            log = base_dir / f"{name}.log"
            process = _start(
                [WORKER_CLASS, master_url, "--host", HOST, "--cores", str(cores), "--memory",
                 memory, "--webui-port", "0", "--work-dir", str(work_dir)],
                log, env,
            )
            processes.append(process)
            started.append(Worker(name, work_dir, log))
        _wait_for(lambda state: _alive_workers(state) == workers, web_ui_url, processes,
                  timeout_seconds, what=f"{workers} workers to be ALIVE")
        yield StandaloneCluster(master_url, web_ui_url, tuple(started))
    finally:
        _stop(processes)


def _start(arguments: list[str], log: Path, env: dict[str, str]) -> Launched:
    """``spark-class <arguments>`` in a process group of its own (it execs the JVM)."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *arguments],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    return Launched(process, log)


def _alive_workers(state: dict[str, Any]) -> int:
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _wait_for(
    ready: Callable[[dict[str, Any]], bool], web_ui_url: str, processes: list[Launched],
    timeout_seconds: float, *, what: str,
) -> None:
    """Poll the master's ``/json/`` until ``ready(state)``; fail fast if a process exited."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for launched in processes:
            if launched.process.poll() is not None:
                raise ComputeUnavailable(
                    f"standalone cluster: expected {what}, but pid {launched.process.pid} "
                    f"exited with code {launched.process.returncode}; see {launched.log}"
                )
        with contextlib.suppress(OSError, ValueError):  # not listening yet, or a partial answer
            if ready(master_state(web_ui_url, timeout_seconds=1)):
                return
        time.sleep(0.2)
    raise ComputeUnavailable(
        f"standalone cluster: expected {what} within {timeout_seconds:.0f} s at {web_ui_url}"
    )


def _stop(processes: list[Launched], timeout_seconds: float = 15) -> None:
    """SIGTERM each process group (workers first), then SIGKILL what is left."""
    for launched in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launched.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    for process in (launched.process for launched in reversed(processes)):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        # The group too: an executor may outlive the worker that launched it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
