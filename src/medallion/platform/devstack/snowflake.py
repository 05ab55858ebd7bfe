"""A local stand-in of the Snowflake DW: fakesnow's HTTP server, reached by the real connector.

``up`` runs ``python -m medallion.platform.devstack.snowflake --port P --db-path DIR`` detached (its
own session, log in the service dir). That entry point is fakesnow's Starlette app under uvicorn,
with one shared fakesnow instance whose databases are DuckDB files in ``DIR``
(``<service dir>/databases/<NAME>.db``), so data survives ``down``/``up``. fakesnow's own
``fakesnow -s`` keeps everything in memory (``--db_path`` is ignored in server mode) and only a
session parameter (``FAKESNOW_DB_PATH``) persists, per login, in a fresh DuckDB instance each time;
hence our own entry point. Existing database files are attached at start, so every database that
was there before a restart is visible to every session again.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from medallion.lakehouse.clients.snowflake import (
    DATABASE,
    SCHEMA,
    SnowflakeConnection,
    SnowflakeSettings,
    connect_to,
    settings_from_env,
)
from medallion.lakehouse.errors import SourceUnavailable
from medallion.lakehouse.locks import file_lock
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

NAME = "snowflake"
DEFAULT_PORT = 8085
ACCOUNT = "fakesnow"
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
PORT_ATTEMPTS = 3  # a start that loses its port to a concurrent one is retried on a free port
STOP_TIMEOUT_SECONDS = 15.0


def _db_dir(storage_root: StorageRoot) -> Path:
    """Where the stand-in keeps its DuckDB database files."""
    return service_dir(storage_root, NAME) / "databases"


def _lock(storage_root: StorageRoot) -> contextlib.AbstractContextManager[None]:
    """Serialise ``up``/``down`` of one storage root's stand-in across processes."""
    return file_lock(service_dir(storage_root, NAME) / "service.lock")


def settings_for(info: ServiceInfo) -> SnowflakeSettings:
    """Connection settings for a running stand-in; credentials from the environment."""
    details = info.details
    return settings_from_env(
        host=details["host"],
        port=int(details["port"]),
        account=details["account"],
        database=details["database"],
        schema=details["schema"],
        protocol="http",
    )


def _answers(info: ServiceInfo) -> bool:
    """True when the real connector can log in and ``SELECT 1``."""
    try:
        conn = connect_to(settings_for(info), attempts=1, login_timeout_seconds=5)
    except SourceUnavailable:
        return False
    try:
        row = conn.cursor().execute("SELECT 1").fetchone()  # type: ignore[union-attr]
        return row is not None and row[0] == 1
    finally:
        conn.close()


def status(storage_root: StorageRoot) -> ServiceInfo | None:
    """The running stand-in, or None when it is not running."""
    info = read_info(storage_root, NAME)
    if info is None or not pid_alive(info.pid):
        return None
    return info


def up(storage_root: StorageRoot) -> ServiceInfo:
    """Start the stand-in unless it runs (idempotent); returns once ``SELECT 1`` answers."""
    with _lock(storage_root):
        running = status(storage_root)
        if running is not None and _answers(running):
            return running
        if running is not None:
            _stop(running)
        return _start(storage_root)


def _start(storage_root: StorageRoot) -> ServiceInfo:
    """Launch the server detached and wait until the connector can query it.

    Picking a free port and binding it are two steps, so a stand-in of another storage root
    starting at the same moment can win the port: that start is retried on a fresh free port.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        info = _start_on(storage_root, pick_port(DEFAULT_PORT if attempt == 1 else 0),
                         last_attempt=attempt == PORT_ATTEMPTS)
        if info is not None:
            return info
        log.warning("snowflake stand-in for %s lost its port to another process; retrying",
                    storage_root)
    raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover


def _start_on(storage_root: StorageRoot, port: int, *, last_attempt: bool) -> ServiceInfo | None:
    """Start on ``port``; None when another process holds the port (unless ``last_attempt``)."""
    directory = service_dir(storage_root, NAME)
    db_dir = _db_dir(storage_root)
    db_dir.mkdir(parents=True, exist_ok=True)
    log_path = directory / "server.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "medallion.platform.devstack.snowflake",
             "--port", str(port), "--db-path", str(db_dir)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    info = ServiceInfo(
        name=NAME,
        url=f"snowflake://{HOST}:{port}",
        pid=process.pid,
        details={
            "host": HOST,
            "port": str(port),
            "protocol": "http",
            "account": ACCOUNT,
            "user": settings_from_env(host=HOST, port=port).user,
            "database": DATABASE,
            "schema": SCHEMA,
            "db_path": str(db_dir),
            "log": str(log_path),
        },
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if not last_attempt and not port_is_free(port):
                return None  # another process holds the port
            raise SourceUnavailable(
                f"source 'snowflake' stand-in exited with code {process.returncode} while "
                f"starting on {HOST}:{port}; see {log_path}"
            )
        # Probe the socket first: the connector retries a refused login for seconds.
        if owns_listening_port(process.pid, port) and _answers(info):
            write_info(storage_root, info)
            return info
        time.sleep(0.2)
    _stop(info)
    raise SourceUnavailable(
        f"source 'snowflake' stand-in on {HOST}:{port} did not answer SELECT 1 within "
        f"{START_TIMEOUT_SECONDS:.0f} s; see {log_path}"
    )


def _stop(info: ServiceInfo) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while pid_alive(info.pid) and time.monotonic() < deadline:
        _reap(info.pid)
        time.sleep(0.1)
    if pid_alive(info.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGKILL)
        while pid_alive(info.pid) and time.monotonic() < deadline + STOP_TIMEOUT_SECONDS:
            _reap(info.pid)
            time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def down(storage_root: StorageRoot) -> bool:
    """Stop the stand-in; True if it was running. Its database files stay."""
    with _lock(storage_root):
        info = status(storage_root)
        state_file = service_dir(storage_root, NAME) / "service.json"
        if info is None:
            state_file.unlink(missing_ok=True)
            return False
        _stop(info)
        state_file.unlink(missing_ok=True)
        return True


def connect(storage_root: StorageRoot) -> SnowflakeConnection:
    """A ``snowflake.connector`` connection to the running stand-in (``SNOWFLAKE_DW.SALES``)."""
    info = status(storage_root)
    if info is None:
        raise SourceUnavailable(
            f"source 'snowflake' stand-in is not running for {storage_root}; "
            "start it with medallion.platform.devstack.snowflake.up"
        )
    return connect_to(settings_for(info))


def serve(port: int, db_path: Path) -> None:
    """Run fakesnow's server on ``port`` with databases in ``db_path``, until SIGTERM/SIGINT."""
    import uvicorn
    from fakesnow.instance import FakeSnow

    # ``fakesnow.server`` the attribute is a function; the module is what serves.
    fakesnow_server = importlib.import_module("fakesnow.server")

    db_path.mkdir(parents=True, exist_ok=True)
    shared = FakeSnow(db_path=db_path)
    # login_request reads this module global at each login: every session shares one instance.
    fakesnow_server.shared_fs = shared  # type: ignore[attr-defined]  # not in its stubs
    for db_file in sorted(db_path.glob("*.db")):
        shared.connect(db_file.stem).close()
    _let_merge_run_in_transactions()
    server = uvicorn.Server(
        uvicorn.Config(fakesnow_server.app, host=HOST, port=port, log_level="warning")
    )
    server.run()  # uvicorn handles SIGTERM/SIGINT and shuts down cleanly
    shared.duck_conn.close()


def _let_merge_run_in_transactions() -> None:
    """Make the stand-in run MERGE inside BEGIN ... COMMIT, as Snowflake does.

    fakesnow 0.12 records a comment for every table it creates, in a second DuckDB database;
    MERGE creates a temporary table of its own, and one DuckDB transaction cannot write to two
    databases, so MERGE in a transaction fails. Skipping the record for tables without a
    comment (only those internal ones) changes nothing a client can see.
    """
    import fakesnow.info_schema as info_schema

    record_comment = info_schema.insert_table_comment_sql

    def record_real_comments(catalog: str, schema: str, table: str, comment: str | None) -> str:
        if comment is None:
            return "SELECT 1"
        return str(record_comment(catalog, schema, table, comment))

    info_schema.insert_table_comment_sql = record_real_comments


def main(argv: list[str] | None = None) -> None:
    """``python -m medallion.platform.devstack.snowflake --port P --db-path DIR``."""
    parser = argparse.ArgumentParser(prog="python -m medallion.platform.devstack.snowflake")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--db-path", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(args.port, args.db_path)


if __name__ == "__main__":
    main()
