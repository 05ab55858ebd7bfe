"""Lakehouse.write: table properties set in the creating commit, CHECK constraints among them."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse import tables
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.spark import local_frame, local_spark_conf
from medallion.lakehouse.storage import StorageRoot
from medallion.lakehouse.tables import CONFLICT_ATTEMPTS, Lakehouse, retry_on_conflict

NOT_NEGATIVE = {"delta.constraints.amount_not_negative": "amount >= 0"}
# Delta's refusal, as a local (py4j) or a Spark Connect session raises it
REFUSED = (Py4JJavaError, PySparkException)
VIOLATION = "DELTA_VIOLATE_CONSTRAINT_WITH_VALUES.*amount_not_negative"


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Lakehouse:
    return Lakehouse.open(spark, StorageRoot(tmp_path))


def history(lakehouse: Lakehouse, table: str) -> list[str]:
    rows = lakehouse.spark.sql(f"DESCRIBE HISTORY delta.`{lakehouse.path(table)}`")
    return [row["operation"] for row in rows.orderBy("version").collect()]


def test_a_constraint_set_at_creation_is_in_the_one_commit_and_holds_later_writes(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(lakehouse.spark, [("a", 1), ("b", 0)], "id string, amount int")
    lakehouse.write(rows, "gold.t", properties=NOT_NEGATIVE)
    assert history(lakehouse, "gold.t") == ["WRITE"]
    properties = lakehouse.spark.sql("SHOW TBLPROPERTIES gold.t").collect()
    assert {
        row["key"].removeprefix("delta.constraints."): row["value"]
        for row in properties
        if row["key"].startswith("delta.constraints.")
    } == {"amount_not_negative": "amount >= 0"}
    negative = local_frame(lakehouse.spark, [("c", -1)], "id string, amount int")
    with pytest.raises(REFUSED, match=VIOLATION):
        lakehouse.write(negative, "gold.t", mode="append")
    assertDataFrameEqual(lakehouse.read("gold.t"), rows)


def test_a_creating_write_that_breaks_its_constraint_creates_nothing(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(lakehouse.spark, [("a", 1), ("b", -5)], "id string, amount int")
    with pytest.raises(REFUSED, match=VIOLATION):
        lakehouse.write(rows, "gold.t", properties=NOT_NEGATIVE)
    assert not lakehouse.exists("gold.t")


class MetadataChanged(Exception):
    """Stands for Delta's refusal as Spark Connect raises it (an unmapped JVM class)."""


CONFLICT = MetadataChanged(
    "(io.delta.exceptions.MetadataChangedException) [DELTA_METADATA_CHANGED] "
    "MetadataChangedException: The metadata of the Delta table has been changed by a "
    "concurrent update. Please try the operation again."
)


def test_a_write_conflict_is_retried_until_the_commit_goes_through() -> None:
    outcomes: list[Exception | str] = [CONFLICT, CONFLICT, "committed"]
    waits: list[float] = []

    def commit() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry_on_conflict(commit, "gold.t", sleep=waits.append) == "committed"
    assert (outcomes, waits) == ([], [0.5, 1.0])


def test_any_other_error_and_the_last_conflict_are_raised() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("cannot cast 'x' to INT")

    with pytest.raises(ValueError, match="cannot cast"):
        retry_on_conflict(broken, "gold.t", sleep=lambda seconds: None)
    assert len(calls) == 1

    def conflicting() -> None:
        calls.append(1)
        raise CONFLICT

    with pytest.raises(MetadataChanged):
        retry_on_conflict(conflicting, "gold.t", sleep=lambda seconds: None)
    assert len(calls) == 1 + CONFLICT_ATTEMPTS


def hadoop_processes(
    spark: SparkSession, tmp_path: Path, action: Callable[[], object]
) -> list[str]:
    """The commands of the processes Hadoop's file-system shell (``chmod``, ``readlink``,
    ``stat``, ``ls``) started in the session's JVM while ``action`` ran, from a Java Flight
    Recorder recording of ``jdk.ProcessStart`` events."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    recording = jvm.jdk.jfr.Recording()
    recording.enable("jdk.ProcessStart")
    recording.start()
    try:
        action()
    finally:
        recording.stop()
    dump = jvm.java.io.File(str(tmp_path / "processes.jfr")).toPath()
    recording.dump(dump)
    recording.close()
    commands = [event.getString("command")
                for event in jvm.jdk.jfr.consumer.RecordingFile.readAllEvents(dump)]
    return [command for command in commands
            if command.split(" ")[0] in {"chmod", "readlink", "stat", "ls"}]


def test_a_local_table_is_written_without_hadoop_processes_or_checksum_files(
    lakehouse: Lakehouse, tmp_path: Path
) -> None:
    """Local sessions write through ``jvm/localfs``'s file system (``local_spark_conf``): the
    raw local file system, without a hidden ``.<file>.crc`` beside each data and log file, and
    without a ``chmod`` or ``readlink`` process per file created or renamed. Delta's own
    version checksums (``_delta_log/<version>.crc``) are Delta's files and stay; files and
    folders get the modes Hadoop gives them (umask 022)."""
    rows = local_frame(lakehouse.spark, [("a", 1), ("b", 0)], "id string, amount int")

    def write_twice_and_read() -> None:
        lakehouse.write(rows, "gold.t")
        lakehouse.write(rows, "gold.t", mode="append")
        lakehouse.read("gold.t").collect()

    assert hadoop_processes(lakehouse.spark, tmp_path, write_twice_and_read) == []
    table = lakehouse.path("gold.t")
    files = sorted(path.relative_to(table).as_posix() for path in table.rglob("*")
                   if path.is_file())
    assert [name for name in files if name.split("/")[-1].startswith(".")] == []
    assert [name for name in files if name.startswith("_delta_log/")] == [
        "_delta_log/00000000000000000000.crc",
        "_delta_log/00000000000000000000.json",
        "_delta_log/00000000000000000001.crc",
        "_delta_log/00000000000000000001.json",
    ]
    modes = {oct(stat.S_IMODE(path.stat().st_mode)) for path in table.rglob("*")
             if path.is_file()}
    assert modes == {"0o644"}
    assert oct(stat.S_IMODE((table / "_delta_log").stat().st_mode)) == "0o755"


def test_link_status_is_hadoops_own(spark: SparkSession, tmp_path: Path) -> None:
    """The local file system answers a link-status call as Hadoop's ``RawLocalFileSystem``
    does, for a link and a plain file, named by URI or by path, and for a missing file."""
    target = tmp_path / "target.txt"
    target.write_text("rows")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_fs = jvm.org.apache.hadoop.fs
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    ours = hadoop_fs.FileSystem.get(jvm.java.net.URI("file:///"), conf)
    assert ours.getClass().getName() == "io.github.medallion.hadoop.NioLocalFileSystem"
    hadoops = hadoop_fs.RawLocalFileSystem()
    hadoops.initialize(jvm.java.net.URI("file:///"), conf)

    def link_status(fs: Any, name: str) -> tuple[object, ...]:
        try:
            status = fs.getFileLinkStatus(hadoop_fs.Path(name))
        except Py4JJavaError as error:
            return (error.java_exception.getClass().getName(),)
        return (status.isSymlink(), status.isFile(), status.getLen(),
                status.getSymlink().toString() if status.isSymlink() else None)

    names = [link.as_uri(), str(link), target.as_uri(), str(target), str(tmp_path / "none")]
    answers = {name: link_status(ours, name) for name in names}
    assert answers == {name: link_status(hadoops, name) for name in names}
    assert answers[str(link)] == (True, False, 4, f"file:{target}")  # it is a link
    assert answers[str(tmp_path / "none")] == ("java.io.FileNotFoundException",)


@pytest.mark.parametrize("names", [
    [],
    ["delta-spark_4.1_2.13-4.4.0.jar"],
    ["medallion-localfs-0.1.0.jar"],
    ["delta-spark_4.1_2.13-4.4.0.jar", "medallion-localfs-0.1.0.jar",
     "medallion-localfs-0.2.0.jar"],
])
def test_a_jars_folder_without_delta_and_exactly_one_local_file_system_jar_is_named(
    names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()
    for name in names:
        (jars / name).touch()
    monkeypatch.setenv("MEDALLION_JARS_DIR", str(jars))
    with pytest.raises(ConfigError) as raised:
        local_spark_conf(StorageRoot(tmp_path))
    assert str(raised.value) == (
        f"JVM jars missing in {jars}: expected the Delta jars that `make jars` copies there from "
        "Maven Central and one medallion-localfs-*.jar it builds from jvm/localfs, "
        f"found {names} (run `make setup`)"
    )


def test_tables_are_small_while_their_files_hold_less_than_the_limit_together(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = local_frame(lakehouse.spark, [("a", 1), ("b", 0)], "id string, amount int")
    lakehouse.write(rows, "silver.a")
    lakehouse.write(rows.limit(1), "silver.b")
    both = lakehouse.size_in_bytes("silver.a") + lakehouse.size_in_bytes("silver.b")
    assert lakehouse.size_in_bytes("silver.b") > 0
    monkeypatch.setattr(tables, "SMALL_TABLE_BYTES", both)
    assert lakehouse.is_small("silver.a")
    assert lakehouse.is_small("silver.b")
    assert not lakehouse.is_small("silver.a", "silver.b")  # at the limit together


def test_a_tables_size_is_its_data_files_bytes_also_before_its_checksum_is_written(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(lakehouse.spark, [("a", 1), ("b", 2)], "id string, amount int")
    lakehouse.write(rows, "silver.sized")
    table = lakehouse.path("silver.sized")
    first_bytes = sum(path.stat().st_size for path in table.glob("*.parquet"))
    lakehouse.write(rows.limit(1), "silver.sized", mode="append")
    data_bytes = sum(path.stat().st_size for path in table.glob("*.parquet"))
    detail = lakehouse.spark.sql(f"DESCRIBE DETAIL {lakehouse.name('silver.sized')}").collect()

    from_checksum = lakehouse.size_in_bytes("silver.sized")
    assert lakehouse.size_in_bytes("silver.sized", version=0) == first_bytes  # as gold reads it
    (table / "_delta_log" / f"{1:020d}.crc").unlink()  # as between a commit and its checksum

    assert (from_checksum, lakehouse.size_in_bytes("silver.sized")) == (data_bytes, data_bytes)
    assert [row["sizeInBytes"] for row in detail] == [data_bytes]  # what the checksum stands for


def test_a_tables_version_is_its_newest_commit_also_past_a_log_checkpoint(
    lakehouse: Lakehouse,
) -> None:
    rows = local_frame(lakehouse.spark, [("a", 1)], "id string, amount int")
    # A checkpoint every two commits: the log then holds checkpoint files beside the commits.
    lakehouse.write(rows, "silver.a", properties={"delta.checkpointInterval": "2"})
    for _ in range(2):
        lakehouse.write(rows, "silver.a", mode="append")
    log = sorted(entry.name for entry in (lakehouse.path("silver.a") / "_delta_log").iterdir())

    assert any(name.endswith(".checkpoint.parquet") for name in log)
    assert lakehouse.version("silver.a") == 2
    assert lakehouse.version("silver.a") == lakehouse.history("silver.a", limit=1)[0].version
