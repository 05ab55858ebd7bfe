"""The Redshift stand-in: a PostgreSQL 15 cluster in a project-local data directory.

``up`` initialises the cluster once (``initdb``), starts it with ``pg_ctl -w``, makes sure the
``redshift_analytics`` database and the ``medallion`` login role exist, and health-checks it with
``SELECT 1`` over TCP as that role. ``down`` stops it with ``pg_ctl stop -m fast``; the data stays.

PostgreSQL refuses to run as root, so under root every server binary runs as the ``postgres`` OS
user that Debian's ``postgresql-15`` package creates, on a data directory that user owns; as any
other user the binaries run as that user. The data directory is
``<storage_root>/_system/devstack/postgres/data`` when the ``postgres`` user can traverse every
parent of it. When it cannot (a storage root under ``/root`` or under pytest's 0700 temp dirs) the
cluster lives in ``/var/tmp/medallion-pg/<sha256 of storage_root>[:16]/data`` instead; the state
file records which (``details["data_dir"]``).

Authentication: the bootstrap superuser ``postgres`` is trusted on the unix socket (inside the
0700 data directory) and on 127.0.0.1, for admin work only; the ``medallion`` role must give its
password (scram-sha-256). The password comes from ``MEDALLION_REDSHIFT_PASSWORD``, else from
``<service dir>/password`` (0600, generated once). It is set as a scram verifier computed on the
client, so the plain text never reaches the server, its log, a URL or a message. Connections and
the stand-in's URL come from ``medallion.lakehouse.clients.redshift``, as for real Redshift.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from medallion.lakehouse.clients.redshift import POSTGRESQL, RedshiftSettings, connect_postgres
from medallion.lakehouse.errors import ConfigError, SourceUnavailable
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.devstack.service import (
    ServiceInfo,
    pick_port,
    pid_alive,
    read_info,
    service_dir,
    write_info,
)

log = logging.getLogger(__name__)

NAME = "postgres"
SOURCE = "redshift"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_OS_USER = "postgres"
SUPERUSER = "postgres"
DATABASE = "redshift_analytics"
ROLE = "medallion"
HOST = "127.0.0.1"
DEFAULT_PORT = 5433
PASSWORD_ENV = "MEDALLION_REDSHIFT_PASSWORD"  # noqa: S105 - the variable name, not a secret
FALLBACK_ROOT = Path("/var/tmp/medallion-pg")  # noqa: S108 - fixed, root-owned 0755, by design
# In a fallback cluster's directory: the storage root it serves. A cluster whose storage root is
# gone (a test's temp dir, a deleted checkout) can never be reached again and is removed.
OWNER_FILE = "storage_root"
# A random id written beside a fallback cluster and into its storage root's service dir. A path
# names a storage root only while it lives: a new root made at an old one's path (pytest's
# numbered temp dirs) must not inherit the old root's tables, so a cluster whose id the storage
# root does not hold is discarded and made afresh.
CLUSTER_ID_FILE = "cluster_id"
# Unix socket paths are limited to 107 bytes; longer data dirs get no socket (TCP only).
_MAX_SOCKET_DIR = 90
_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_buffers": "'64MB'",
    "max_connections": "20",
    "password_encryption": "'scram-sha-256'",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}


@dataclass(frozen=True)
class Cluster:
    """Where a storage root's cluster lives and who runs it."""

    data_dir: Path
    run_as: str | None  # OS user to switch to, or None to run binaries as ourselves

    @property
    def log_file(self) -> Path:
        """The server log written by ``pg_ctl -l``."""
        return self.data_dir / "server.log"

    @property
    def pid_file(self) -> Path:
        """``postmaster.pid``: present while the server runs."""
        return self.data_dir / "postmaster.pid"


def up(storage_root: StorageRoot, *, timeout_seconds: float = 60) -> ServiceInfo:
    """Start the cluster (initialising it once) and return how to reach it; idempotent."""
    cluster = cluster_for(storage_root)
    remove_orphan_clusters()
    running = _server_pid(cluster)
    info = read_info(storage_root, NAME)
    if running is None or info is None or info.pid != running:
        if running is not None:  # running, but the state file is lost or stale: restart cleanly
            _stop(cluster)
        if _is_fallback(cluster):
            _discard_if_left_by_another_root(cluster, storage_root)
        _init_once(cluster)
        if _is_fallback(cluster):
            _claim(cluster, storage_root)
        port = pick_port(DEFAULT_PORT)
        _pg(
            cluster,
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(int(timeout_seconds)),
            "-D",
            str(cluster.data_dir),
            "-l",
            str(cluster.log_file),
            "-o",
            f"-p {port}",
        )
        pid = _server_pid(cluster)
        if pid is None:
            raise SourceUnavailable(
                f"source {SOURCE!r}: pg_ctl reported a start but {cluster.pid_file} is missing; "
                f"see {cluster.log_file}"
            )
        info = ServiceInfo(
            name=NAME,
            url=RedshiftSettings(POSTGRESQL, HOST, port, DATABASE, ROLE).url,
            pid=pid,
            details={
                "host": HOST,
                "port": str(port),
                "database": DATABASE,
                "user": ROLE,
                "data_dir": str(cluster.data_dir),
            },
        )
        write_info(storage_root, info)
    _ensure_database_and_role(info, password(storage_root))
    with connect(storage_root, info=info) as conn:
        conn.execute("SELECT 1").fetchone()
    return info


def down(storage_root: StorageRoot) -> bool:
    """Stop the cluster (fast shutdown); True if it was running. The data directory stays."""
    cluster = cluster_for(storage_root)
    return _stop(cluster)


def destroy(storage_root: StorageRoot) -> None:
    """Stop the cluster and delete its data, state and password (a fallback dir included)."""
    cluster = cluster_for(storage_root)
    _stop(cluster)
    shutil.rmtree(cluster.data_dir, ignore_errors=True)
    if _is_fallback(cluster):
        shutil.rmtree(cluster.data_dir.parent, ignore_errors=True)
    shutil.rmtree(service_dir(storage_root, NAME), ignore_errors=True)


def _is_fallback(cluster: Cluster) -> bool:
    return cluster.data_dir.parent.parent == FALLBACK_ROOT


def _discard_if_left_by_another_root(cluster: Cluster, storage_root: StorageRoot) -> None:
    """Delete a fallback cluster that an earlier storage root at this same path left behind.

    The fallback directory is named after the storage root's path, and paths come back (pytest
    numbers its temp dirs anew once old ones are deleted). Such a cluster still holds the earlier
    root's tables, so a fresh world would read another world's source rows. Ours carries the id
    that our service dir holds; anything else is discarded.
    """
    if not (cluster.data_dir / "PG_VERSION").is_file():
        return
    ours = _read_id(service_dir(storage_root, NAME) / CLUSTER_ID_FILE)
    theirs = _read_id(cluster.data_dir.parent / CLUSTER_ID_FILE)
    if ours is not None and ours == theirs:
        return
    _stop(cluster)
    shutil.rmtree(cluster.data_dir.parent, ignore_errors=True)
    log.warning(
        "postgres: discarded the cluster in %s, left by an earlier storage root at %s",
        cluster.data_dir.parent,
        storage_root,
    )


def _claim(cluster: Cluster, storage_root: StorageRoot) -> None:
    """Record the storage root (for the orphan sweep) and the shared id beside the cluster."""
    directory = cluster.data_dir.parent
    (directory / OWNER_FILE).write_text(str(storage_root), encoding="utf-8")
    ours = service_dir(storage_root, NAME) / CLUSTER_ID_FILE
    cluster_id = _read_id(directory / CLUSTER_ID_FILE) or secrets.token_hex(16)
    (directory / CLUSTER_ID_FILE).write_text(cluster_id, encoding="utf-8")
    ours.parent.mkdir(parents=True, exist_ok=True)
    ours.write_text(cluster_id, encoding="utf-8")


def _read_id(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def remove_orphan_clusters(fallback_root: Path = FALLBACK_ROOT) -> list[Path]:
    """Delete the fallback clusters whose storage root no longer exists and that do not run.

    A cluster without an owner file (made before it was written) is left alone, and so is one
    whose owner file is gone by the time it is read (another process, starting its own stack,
    removed that orphan first). Returns the directories removed.
    """
    removed = []
    for directory in sorted(fallback_root.glob(f"*/{OWNER_FILE}")):
        cluster_dir = directory.parent
        try:
            owner = Path(directory.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            continue
        if owner.exists() or _server_pid(Cluster(cluster_dir / "data", PG_OS_USER)) is not None:
            continue
        shutil.rmtree(cluster_dir, ignore_errors=True)
        log.info("postgres: removed the cluster of %s, which no longer exists", owner)
        removed.append(cluster_dir)
    return removed


def status(storage_root: StorageRoot) -> ServiceInfo | None:
    """The running cluster's info, only if it answers ``SELECT 1``."""
    info = read_info(storage_root, NAME)
    if info is None or not pid_alive(info.pid):
        return None
    try:
        with connect(storage_root, info=info, connect_timeout=2) as conn:
            conn.execute("SELECT 1").fetchone()
    except SourceUnavailable:
        return None
    return info


def client_settings(
    storage_root: StorageRoot, *, info: ServiceInfo | None = None
) -> RedshiftSettings | None:
    """How to reach ``redshift_analytics`` as the ``medallion`` role, its password included;
    None when the stand-in of ``storage_root`` was never started."""
    info = info or read_info(storage_root, NAME)
    if info is None:
        return None
    details = info.details
    return RedshiftSettings(
        scheme=POSTGRESQL,
        host=details["host"],
        port=int(details["port"]),
        database=details["database"],
        user=details["user"],
        password=password(storage_root),
    )


def connect(
    storage_root: StorageRoot,
    *,
    info: ServiceInfo | None = None,
    connect_timeout: int = 5,
) -> psycopg.Connection:
    """A psycopg connection to ``redshift_analytics`` as the ``medallion`` role (session in UTC);
    ``SourceUnavailable`` names host:port/database, never the password."""
    settings = client_settings(storage_root, info=info)
    if settings is None:
        raise SourceUnavailable(
            f"source {SOURCE!r}: no local PostgreSQL stand-in for {storage_root}; "
            "start it with `medallion devstack up`"
        )
    return connect_postgres(settings, connect_timeout=connect_timeout)


def password(storage_root: StorageRoot) -> str:
    """The ``medallion`` role's password: the environment's, else the stored (or a new) one."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    path = service_dir(storage_root, NAME) / "password"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret)
    return secret


def cluster_for(storage_root: StorageRoot) -> Cluster:
    """The data directory of ``storage_root``'s cluster and the OS user that runs it."""
    if not (PG_BIN / "pg_ctl").is_file():
        raise ConfigError(
            f"PostgreSQL 15 server binaries: expected {PG_BIN}/pg_ctl, found nothing; "
            "install them with `apt-get install postgresql-15` (`make setup` does)"
        )
    in_place = service_dir(storage_root, NAME) / "data"
    if os.geteuid() != 0:
        return Cluster(in_place, None)
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise ConfigError(
            f"running as root: expected an OS user {PG_OS_USER!r} to run PostgreSQL (root may "
            "not), found none; `apt-get install postgresql-15` creates it"
        ) from None
    digest = hashlib.sha256(str(storage_root).encode()).hexdigest()[:16]
    fallback = FALLBACK_ROOT / digest / "data"
    if (in_place / "PG_VERSION").is_file():
        return Cluster(in_place, PG_OS_USER)
    if (fallback / "PG_VERSION").is_file() or not _traversable_by_postgres(in_place.parent):
        return Cluster(fallback, PG_OS_USER)
    return Cluster(in_place, PG_OS_USER)


def _traversable_by_postgres(directory: Path) -> bool:
    """True when the ``postgres`` user can reach ``directory`` (it is created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["runuser", "-u", PG_OS_USER, "--", "test", "-x", str(directory)],
        capture_output=True,
        check=False,
        cwd="/",
    )
    return result.returncode == 0


def _prepare_data_dir(cluster: Cluster) -> None:
    """Create the (empty) data directory, owned by the server's OS user, mode 0700."""
    if cluster.data_dir.is_relative_to(FALLBACK_ROOT):
        FALLBACK_ROOT.mkdir(mode=0o755, exist_ok=True)
        FALLBACK_ROOT.chmod(0o755)  # umask may have narrowed it; postgres must traverse it
        cluster.data_dir.parent.mkdir(mode=0o755, exist_ok=True)
        cluster.data_dir.parent.chmod(0o755)
    cluster.data_dir.mkdir(parents=True, exist_ok=True)
    cluster.data_dir.chmod(0o700)
    if cluster.run_as is not None:
        account = pwd.getpwnam(cluster.run_as)
        os.chown(cluster.data_dir, account.pw_uid, account.pw_gid)


def _init_once(cluster: Cluster) -> None:
    """``initdb`` the cluster unless it exists, then write our settings and pg_hba.conf."""
    if (cluster.data_dir / "PG_VERSION").is_file():
        return
    _prepare_data_dir(cluster)
    started = time.monotonic()
    _pg(
        cluster,
        "initdb",
        "-D",
        str(cluster.data_dir),
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    )
    settings = dict(_SERVER_SETTINGS)
    socket_dir = str(cluster.data_dir)
    settings["unix_socket_directories"] = (
        "'" + socket_dir.replace("'", "''") + "'" if len(socket_dir) <= _MAX_SOCKET_DIR else "''"
    )
    # Files exist and belong to the server's user: rewriting them in place keeps the owner.
    with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# medallion devstack\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    (cluster.data_dir / "pg_hba.conf").write_text(
        "# medallion devstack: admin by trust, the application role by password\n"
        f"local all {SUPERUSER} trust\n"
        f"host  all {SUPERUSER} 127.0.0.1/32 trust\n"
        "host  all all 127.0.0.1/32 scram-sha-256\n",
        encoding="utf-8",
    )
    log.info(
        "initialised PostgreSQL cluster %s in %.1fs", cluster.data_dir, time.monotonic() - started
    )


def _ensure_database_and_role(info: ServiceInfo, secret: str) -> None:
    """Create the role and database if missing; (re)set the role's password as a scram verifier."""
    port = int(info.details["port"])
    admin_settings = RedshiftSettings(POSTGRESQL, HOST, port, "postgres", SUPERUSER)
    with connect_postgres(admin_settings) as admin:
        admin.autocommit = True
        verifier = admin.pgconn.encrypt_password(
            secret.encode("utf-8"), ROLE.encode(), b"scram-sha-256"
        ).decode("ascii")
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        admin.execute(
            sql.SQL("{} ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(ROLE), sql.Literal(verifier)
            )
        )
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            return
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(ROLE)
            )
        )


def _server_pid(cluster: Cluster) -> int | None:
    """The postmaster's pid when it runs (per ``postmaster.pid``), else None."""
    try:
        first_line = cluster.pid_file.read_text(encoding="utf-8").splitlines()[0]
        pid = int(first_line)
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _stop(cluster: Cluster) -> bool:
    """``pg_ctl stop -m fast``; True if a server was running."""
    if _server_pid(cluster) is None:
        return False
    _pg(cluster, "pg_ctl", "stop", "-w", "-m", "fast", "-D", str(cluster.data_dir))
    return True


def _pg(cluster: Cluster, binary: str, *args: str) -> None:
    """Run a PostgreSQL binary as the cluster's OS user; a failure raises with its output."""
    command = [str(PG_BIN / binary), *args]
    if cluster.run_as is not None:
        command = ["runuser", "-u", cluster.run_as, "--", *command]
    # A session of its own: Ctrl-C in the terminal (or pytest) must not reach the postmaster.
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        start_new_session=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise SourceUnavailable(
            f"source {SOURCE!r}: `{binary} {' '.join(args[:1])}` on {cluster.data_dir} exited "
            f"{result.returncode}: {(result.stderr or result.stdout).strip()[-800:]}; "
            f"server log: {cluster.log_file}"
        )
