"""How the Redshift sink talks to its warehouse: one connection per call, and staging.

``PostgresSession`` (psycopg 3, the local PostgreSQL 15 stand-in) streams a snapshot's Arrow
batches, as CSV, into the staging table with ``COPY ... FROM STDIN``. ``RedshiftSession``
(``redshift_connector``, real Redshift) writes them as Parquet files to a ``StagingArea``
(``ParquetStaging``: s3://... on AWS) and loads those with ``COPY ... FROM 's3://...'``. Both
run every other statement the same way, inside one transaction until commit or rollback.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from medallion.lakehouse.errors import PublishError, WarehouseUnavailable
from medallion.lakehouse.serving import GoldSnapshot
from medallion.lakehouse.serving.redshift_sql import POSTGRES, REDSHIFT, Statements, check_iam_role

STAGING_PREFIX = "_staging/redshift"
ROWS_PER_STAGED_FILE = 1_000_000  # Redshift loads files in parallel; ~1 MB-1 GB each is advised


class ConnectAttemptFailed(WarehouseUnavailable):
    """One failed connection attempt (retried); ``detail`` is the driver's message, redacted."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class WarehouseSession(Protocol):
    """One open connection; its statements form one transaction until commit or rollback."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the rows it affected."""
        ...

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query."""
        ...

    def load_staging(self, snapshot: GoldSnapshot) -> int:
        """Load every row of ``snapshot`` into the (created) staging table; returns how many."""
        ...

    def commit(self) -> None:
        """Commit the transaction."""
        ...

    def rollback(self) -> None:
        """Roll the transaction back."""
        ...

    def close(self) -> None:
        """Release the connection (and anything staged outside the database)."""
        ...


def snapshot_batches(snapshot: GoldSnapshot) -> Iterator[pa.RecordBatch]:
    """The snapshot's batches, each checked to carry exactly its columns, in order."""
    for batch in snapshot.batches():
        if tuple(batch.schema.names) != snapshot.column_names:
            raise PublishError(
                f"{snapshot.table} version {snapshot.version}: expected record batches with "
                f"columns {list(snapshot.column_names)}, found {batch.schema.names}"
            )
        yield batch


class PostgresSession:
    """``WarehouseSession`` over psycopg 3 (the local stand-in); stages with COPY FROM STDIN."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the rows it affected."""
        return self.connection.execute(statement.encode(), params or None).rowcount

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query."""
        return self.connection.execute(statement.encode(), params or None).fetchall()

    def load_staging(self, snapshot: GoldSnapshot) -> int:
        """Stream the snapshot into staging, one CSV chunk per Arrow batch; returns the rows.

        Arrow renders the CSV in C (4x faster than converting rows to Python objects): strings
        always quoted, NULL as an unquoted empty field, which is how PostgreSQL's CSV format
        tells an empty string from NULL; timestamps in ISO 8601 with ``Z``.
        """
        statement = Statements(POSTGRES).copy_from_stdin(snapshot.column_names)
        options = pacsv.WriteOptions(include_header=False)
        rows = 0
        with self.connection.cursor() as cursor, cursor.copy(statement.encode()) as copy:
            for batch in snapshot_batches(snapshot):
                chunk = pa.BufferOutputStream()
                pacsv.write_csv(batch, chunk, options)
                copy.write(memoryview(chunk.getvalue()))
                rows += batch.num_rows
        return rows

    def commit(self) -> None:
        """Commit the transaction."""
        self.connection.commit()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.connection.rollback()

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self.connection.close()


@dataclass(frozen=True)
class StagedFiles:
    """A snapshot written as files: the URI prefix ``COPY`` reads, and how many rows."""

    uri: str  # ends with "/", so COPY reads this prefix only, not its siblings
    rows: int


class StagingArea(Protocol):
    """Where the Redshift path writes a snapshot as files for ``COPY`` (s3://... on AWS)."""

    def write(self, snapshot: GoldSnapshot) -> StagedFiles:
        """Write every row of ``snapshot`` under a fresh prefix."""
        ...

    def remove(self, files: StagedFiles) -> None:
        """Delete what ``write`` wrote."""
        ...


class ParquetStaging:
    """``StagingArea`` writing Parquet under ``<root>/_staging/redshift/`` through pyarrow's
    filesystems: ``s3://bucket/prefix`` on AWS (credentials from the AWS default chain), a local
    directory in tests."""

    def __init__(self, root: str | Path, *, rows_per_file: int = ROWS_PER_STAGED_FILE) -> None:
        self.root = str(root).rstrip("/")
        self.rows_per_file = rows_per_file

    def write(self, snapshot: GoldSnapshot) -> StagedFiles:
        """Write the snapshot as ``part-NNNNN.parquet`` files under a fresh prefix.

        Publishes of a table run one at a time (their job's run lock), and each removes its
        files when it ends: files of the table found here were left by a publish that was
        killed, and are deleted first.
        """
        table_uri = f"{self.root}/{STAGING_PREFIX}/{snapshot.table}"
        filesystem, table_path = pafs.FileSystem.from_uri(table_uri)
        filesystem.delete_dir_contents(table_path, missing_dir_ok=True)
        name = f"{snapshot.table}/v{snapshot.version}-{uuid.uuid4().hex}"
        uri = f"{self.root}/{STAGING_PREFIX}/{name}/"
        filesystem, path = pafs.FileSystem.from_uri(uri)
        filesystem.create_dir(path)
        rows, parts = 0, 0
        with contextlib.ExitStack() as files:
            writer: pq.ParquetWriter | None = None
            in_file = 0
            for batch in snapshot_batches(snapshot):
                if writer is None or in_file >= self.rows_per_file:
                    files.close()
                    stream = files.enter_context(
                        filesystem.open_output_stream(f"{path}/part-{parts:05d}.parquet")
                    )
                    writer = files.enter_context(pq.ParquetWriter(stream, batch.schema))
                    parts, in_file = parts + 1, 0
                writer.write_batch(batch)
                rows, in_file = rows + batch.num_rows, in_file + batch.num_rows
        return StagedFiles(uri, rows)

    def remove(self, files: StagedFiles) -> None:
        """Delete the prefix ``write`` created."""
        filesystem, path = pafs.FileSystem.from_uri(files.uri)
        filesystem.delete_dir(path)


class RedshiftSession:
    """``WarehouseSession`` over a ``redshift_connector`` connection (real Redshift): stages by
    writing files to ``staging_area`` and ``COPY``-ing them; removes them when closed."""

    def __init__(self, connection: Any, staging_area: StagingArea, iam_role: str) -> None:
        self.connection = connection
        self.staging_area = staging_area
        self.iam_role = check_iam_role(iam_role)
        self.staged: list[StagedFiles] = []

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the rows it affected."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params) or None)
        return int(cursor.rowcount)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params) or None)
        return [tuple(row) for row in cursor.fetchall()]

    def load_staging(self, snapshot: GoldSnapshot) -> int:
        """Write the snapshot's files, COPY them into staging, check every row arrived."""
        statements = Statements(REDSHIFT)
        files = self.staging_area.write(snapshot)
        self.staged.append(files)
        if files.rows:  # COPY fails on a prefix without files
            self.execute(statements.copy_from_files(files.uri, self.iam_role))
        loaded = int(self.query(statements.count_staged())[0][0])
        if loaded != files.rows:
            raise PublishError(
                f"COPY from {files.uri}: expected the {files.rows} rows written, "
                f"found {loaded} staged"
            )
        return loaded

    def commit(self) -> None:
        """Commit the transaction."""
        self.connection.commit()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.connection.rollback()

    def close(self) -> None:
        """Close the connection, then delete the staged files."""
        try:
            self.connection.close()
        finally:
            for files in self.staged:
                self.staging_area.remove(files)
            self.staged.clear()
