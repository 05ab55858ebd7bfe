"""One way to get a Spark session, wherever the code runs.

- On the ``databricks`` target (``medallion.lakehouse.environment``): the runtime's active session.
- With ``SPARK_REMOTE`` set (the local runner's warm compute server, or Databricks Connect): a Spark
  Connect session to it.
- Otherwise: a local classic session configured for Delta, sized for a 2-core machine, whose catalog
  is loaded from the lakehouse layout under the storage root.

Code in ``src`` uses only DataFrame and SQL APIs, so it runs unchanged under Spark Connect.

Inside a job run (a runner task context is bound) the session names its task, as
``<job>/<run_id>/<task_key>``: in every Delta commit's ``commitInfo.userMetadata`` and as a tag
on every Spark job it starts (``spark.job.tags``). ``MEDALLION_SPARK_EVENT_LOG_DIR`` makes a local
session (the warm driver) write Spark's event log there, e.g. to count each task's Spark jobs.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import Row
from pyspark.sql.types import ArrayType, DataType, MapType, StructType, TimestampType

from medallion.lakehouse.environment import DATABRICKS, Target, resolve_target
from medallion.lakehouse.errors import ConfigError
from medallion.lakehouse.runtime import task_context
from medallion.lakehouse.settings import jars_dir
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

REMOTE_ENV = "SPARK_REMOTE"
EVENT_LOG_DIR_ENV = "MEDALLION_SPARK_EVENT_LOG_DIR"
CODEGEN_ENV = "MEDALLION_SPARK_CODEGEN"  # spark.sql.codegen.factoryMode of local sessions
# The bytes of sources below which a gold table is rebuilt whole (``pipelines.gold``).
GOLD_INCREMENTAL_MIN_BYTES_CONF = "spark.medallion.gold.incrementalMinBytes"
GOLD_INCREMENTAL_MIN_BYTES_ENV = "MEDALLION_GOLD_INCREMENTAL_MIN_BYTES"  # sets it locally
# Delta writes this session setting into each commit's commitInfo as ``userMetadata``.
COMMIT_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
LOCAL_FS_PACKAGE = "io.github.medallion.hadoop"  # jvm/localfs, built into jars_dir() by `make jars`
LOCAL_FS_JAR = "medallion-localfs"

# Errors only from the JVM's start on (its warnings would be a notebook's cell output).
LOG4J_CONFIG = Path(__file__).resolve().parent / "spark-log4j2.properties"

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def local_spark_conf(
    storage_root: StorageRoot, *, connect_port: int | None = None
) -> dict[str, str]:
    """Spark settings for local mode: Delta, cached jars, 2 cores, quiet, small shuffles.

    With ``connect_port`` the session also serves Spark Connect on that port (the warm driver).
    With ``MEDALLION_SPARK_EVENT_LOG_DIR`` set it writes Spark's event log there (the folder is
    created), one uncompressed JSON-lines file per application.
    """
    jars = sorted(jars_dir().glob("*.jar"))
    local_fs = [jar for jar in jars if jar.name.startswith(LOCAL_FS_JAR)]
    if len(local_fs) != 1 or len(jars) == len(local_fs):  # one local FS jar, and Delta's
        raise ConfigError(
            f"JVM jars missing in {jars_dir()}: expected the Delta jars that `make jars` copies "
            f"there from Maven Central and one {LOCAL_FS_JAR}-*.jar it builds from jvm/localfs, "
            f"found {[jar.name for jar in jars]} (run `make setup`)"
        )
    conf = {
        "spark.master": os.environ.get("MEDALLION_SPARK_MASTER", "local[2]"),
        "spark.app.name": "medallion",
        "spark.jars": ",".join(str(jar) for jar in jars if jar not in local_fs),
        # On the JVMs' own class path: Spark opens local files before it loads `spark.jars`.
        "spark.driver.extraClassPath": str(local_fs[0]),
        "spark.executor.extraClassPath": str(local_fs[0]),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(storage_root.system / "spark-warehouse"),
        "spark.driver.memory": os.environ.get("MEDALLION_DRIVER_MEMORY", "2g"),
        "spark.sql.shuffle.partitions": os.environ.get("MEDALLION_SHUFFLE_PARTITIONS", "4"),
        "spark.default.parallelism": "2",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.adaptive.enabled": "true",
        # Row projections, predicates and orderings built per task are interpreted, not compiled
        # (whole-stage code generation is unaffected). On a local day's few thousand rows the
        # generated Java source costs more CPU than it saves: Spark formats and compiles it in
        # every task, and Delta's log replay projects its wide action rows in each of its
        # tasks. `make bench`, small day: the warm build 23 % faster, the same rows. Spark's
        # default, FALLBACK (compile, interpret on failure), suits large local data.
        "spark.sql.codegen.factoryMode": os.environ.get(CODEGEN_ENV, "NO_CODEGEN"),
        # Local files through Hadoop's raw local file system, without its checksummed wrapper
        # (no hidden `.<file>.crc` beside every data and log file), with permissions set and
        # links read through java.nio (`jvm/localfs`). Without Hadoop's native library, as in
        # pyspark, Hadoop starts a `chmod` process for each file it creates and a `readlink`
        # one for each rename (~15 ms each), and the checksummed wrapper doubles both.
        # Delta's own version checksums (`_delta_log/<n>.crc`) are Delta's files and stay.
        "spark.hadoop.fs.file.impl": f"{LOCAL_FS_PACKAGE}.NioLocalFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.file.impl": f"{LOCAL_FS_PACKAGE}.NioLocalFs",
        "spark.ui.enabled": "false",
        # The plan each SQL execution announces to listeners (the event log), in the plain tree
        # form instead of the "formatted" one with its per-operator details, which Spark builds
        # for every query whether or not a UI reads it. `make bench` steps alone on a warm
        # server (silver.fact_orders, the silver breaker, two gold tables): 3-4 % less time.
        "spark.sql.ui.explainMode": "simple",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # The throughput collector: G1 started a concurrent marking cycle on most large
        # allocations (30 in 80 s of a warm build, 18 s of GC thread time on 2 cores); a batch
        # driver has no use for short pauses.
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseParallelGC "
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if os.environ.get(GOLD_INCREMENTAL_MIN_BYTES_ENV):
        conf[GOLD_INCREMENTAL_MIN_BYTES_CONF] = os.environ[GOLD_INCREMENTAL_MIN_BYTES_ENV]
    if os.environ.get("MEDALLION_SPARK_LOG_LEVEL"):  # else errors only (spark-log4j2.properties)
        conf["spark.log.level"] = os.environ["MEDALLION_SPARK_LOG_LEVEL"]
    event_log_dir = os.environ.get(EVENT_LOG_DIR_ENV)
    if event_log_dir:
        Path(event_log_dir).mkdir(parents=True, exist_ok=True)
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = Path(event_log_dir).resolve().as_uri()
        # One plain JSON-lines file per application, readable without Spark's codecs.
        conf["spark.eventLog.compress"] = "false"
        conf["spark.eventLog.rolling.enabled"] = "false"
    if connect_port is not None:
        conf["spark.plugins"] = "org.apache.spark.sql.connect.SparkConnectPlugin"
        conf["spark.connect.grpc.binding.address"] = "127.0.0.1"
        conf["spark.connect.grpc.binding.port"] = str(connect_port)
    return conf


def build_local_session(
    storage_root: StorageRoot, *, connect_port: int | None = None
) -> SparkSession:
    """Start (or reuse) a local classic session and load the lakehouse catalog into it."""
    from pyspark.sql import SparkSession

    from medallion.lakehouse.tables import register_tables

    builder = SparkSession.builder
    for key, value in local_spark_conf(storage_root, connect_port=connect_port).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    register_tables(spark, storage_root)
    return spark


def get_spark(
    storage_root: StorageRoot | None = None, *, target: Target | None = None
) -> SparkSession:
    """The session for this process: Databricks' own, a Connect session, or a local one.

    ``target`` is the resolved environment's (default: ``resolve_target()``).
    """
    from pyspark.sql import SparkSession

    if (target or resolve_target()) == DATABRICKS:
        return SparkSession.builder.getOrCreate()
    remote = os.environ.get(REMOTE_ENV)
    if remote:
        spark = label_for_task(SparkSession.builder.remote(remote).getOrCreate())
        if task_context() is not None:
            interrupt_when_orphaned(spark)
        return spark
    if storage_root is None:
        raise ConfigError(
            "get_spark() needs a storage_root for a local session (or SPARK_REMOTE set to a "
            "running compute server)"
        )
    return label_for_task(build_local_session(storage_root))


_GUARDED: set[int] = set()  # the sessions (by id) whose orphan guard runs in this process


def interrupt_when_orphaned(
    session: Any, *, parent: int | None = None, poll_seconds: float = 0.2
) -> threading.Thread | None:
    """Stop ``session``'s server-side work as soon as this process's parent (the runner) dies.

    A kernel of a killed runner is reparented; its Spark Connect session's running operations
    (a Delta write, say) would otherwise go on and commit on the server after the run is dead.
    A daemon thread polls the parent's pid; when it changes it interrupts every operation of
    the session (``interruptAll``) and ends this process. Once per session and process.
    """
    if id(session) in _GUARDED:
        return None
    _GUARDED.add(id(session))
    watched = os.getppid() if parent is None else parent

    def guard() -> None:
        while os.getppid() == watched:
            time.sleep(poll_seconds)
        try:
            session.interruptAll()
        finally:
            os._exit(1)  # the run is over: nothing of this process may go on

    thread = threading.Thread(target=guard, name="medallion-orphan-guard", daemon=True)
    thread.start()
    return thread


def label_for_task(spark: SparkSession) -> SparkSession:
    """Name the runner's task (if one is bound) in the session's Delta commits and Spark jobs.

    Every commit then says which job run and task made it (``DESCRIBE HISTORY`` shows it as
    ``userMetadata``), and every Spark job carries the label among its tags. Outside a job run
    the session is left as it is.
    """
    context = task_context()
    if context is not None:
        spark.conf.set(COMMIT_METADATA_CONF, context.label)
        spark.addTag(context.label)
    return spark


def with_job_tags(spark: SparkSession, function: Callable[P, T]) -> Callable[P, T]:
    """``function``, run with the calling thread's job tags, for another thread to run.

    Spark keeps job tags per thread: the Spark jobs a worker thread starts would otherwise carry
    no task label (``label_for_task``), and the benchmark could not say whose they are.
    """
    tags = spark.getTags()

    @functools.wraps(function)
    def tagged(*args: P.args, **kwargs: P.kwargs) -> T:
        for tag in tags:
            spark.addTag(tag)
        try:
            return function(*args, **kwargs)
        finally:
            for tag in tags:
                spark.removeTag(tag)

    return tagged


@contextmanager
def computed_once(frame: DataFrame, *, keep: bool = True) -> Iterator[DataFrame]:
    """``frame``, computed once for the several actions of the block.

    A step that counts, checks and writes the same rows would otherwise recompute them (scan,
    joins, windows) once per action. In a local session the rows are computed as the block
    starts and kept in memory, spilling to disk (``localCheckpoint``): a frame that no longer
    refers to the tables it was computed from. A persisted frame still does, so each Delta
    commit to one of those tables (the step's own quarantine write or MERGE) made Spark plan it
    again and recompute it at its next use: `make bench`'s warm ``silver.fact_orders`` step
    took 7.9-8.7 s persisted against 4.6-5.5 s checkpointed, with the same results. The kept
    rows go with the frame (the server releases a Spark Connect client's checkpoint when the
    client drops it; the context cleaner frees a classic session's).

    On a cluster the rows are persisted instead and released when the block ends: a lost
    executor's persisted blocks are recomputed, a checkpoint's are not. Where the compute keeps
    nothing (Databricks serverless refuses to persist), or with ``keep=False`` (rows cheaper to
    recompute than to store: a wide, narrow-transform scan), ``frame`` itself: the same
    results, computed per action.
    """
    if not keep:
        yield frame
        return
    if is_local_master(frame.sparkSession):
        yield frame.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        return
    try:
        kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
    except PySparkException as error:  # e.g. NOT_SUPPORTED_WITH_SERVERLESS
        log.info("not persisting (%s): the step recomputes its input per action", error)
        yield frame
        return
    try:
        yield kept
    finally:
        kept.unpersist()


K = TypeVar("K")


def computed_once_each(
    stack: ExitStack, frames: Mapping[K, DataFrame], *, keep: bool | Mapping[K, bool] = True
) -> dict[K, DataFrame]:
    """Each of ``frames`` computed once (``computed_once``) until ``stack`` closes, all at once.

    The frames are independent (a step's source tables, say), and each computation is mostly
    the server's planning and a small scan: run one after another, a step waits for the sum.
    Each runs in a thread of its own, with the caller's job tags; each one computed is released
    with ``stack``, also when another failed (its error is raised). ``keep``: for all frames, or
    per frame.
    """
    managers = {
        key: computed_once(frame, keep=keep if isinstance(keep, bool) else keep[key])
        for key, frame in frames.items()
    }
    if len(managers) <= 1:
        return {key: stack.enter_context(manager) for key, manager in managers.items()}
    spark = next(iter(frames.values())).sparkSession
    with ThreadPoolExecutor(len(managers), thread_name_prefix="computed-once") as pool:
        futures = {key: pool.submit(with_job_tags(spark, manager.__enter__))
                   for key, manager in managers.items()}
    computed: dict[K, DataFrame] = {}
    errors: list[BaseException] = []
    for key, future in futures.items():
        error = future.exception()
        if error is not None:
            errors.append(error)
            continue
        stack.push(managers[key])  # released when the stack closes
        computed[key] = future.result()
    if errors:
        raise errors[0]
    return computed


def local_frame(spark: SparkSession, rows: Iterable[Any], schema: str | StructType) -> DataFrame:
    """``rows`` as a frame of exactly ``schema`` (a DDL string or a ``StructType``), built from an
    Arrow table, as Spark Connect builds every local frame.

    A classic session (tests, a Databricks classic cluster) takes the Arrow table from the driver
    as it is, where ``createDataFrame`` pickles a list of rows and converts it in Python worker
    processes, in a Spark job of its own each time the frame is computed (a DQ event appended to
    the log, warm: ~0.49 s from a list, ~0.22 s from Arrow). Rows as ``createDataFrame`` takes
    them: tuples in column order, ``Row``s or dicts by name, a struct likewise, a map as a dict,
    a naive ``datetime`` in a TIMESTAMP column as local time. Where pyarrow is not installed
    (pyspark alone, without its Connect or pandas extras), from the list.
    """
    struct = schema if isinstance(schema, StructType) else StructType.fromDDL(schema)
    if not isinstance(struct, StructType):
        raise TypeError(f"local_frame: expected a schema of named columns, got {schema!r}")
    try:
        import pyarrow as pa
        from pyspark.sql.pandas.types import to_arrow_schema
    except ImportError:
        return spark.createDataFrame(list(rows), struct)
    records = [_arrow_value(row, struct) for row in rows]
    return spark.createDataFrame(pa.Table.from_pylist(records, schema=to_arrow_schema(struct)))


def _arrow_value(value: Any, data_type: DataType) -> Any:
    """``value`` of ``data_type`` as pyarrow takes it: structs as dicts, timestamps aware."""
    if value is None:
        return None
    if isinstance(data_type, StructType):
        if isinstance(value, Row) and hasattr(value, "__fields__"):
            value = value.asDict()
        if not isinstance(value, Mapping):
            value = dict(zip(data_type.names, value, strict=True))
        return {field.name: _arrow_value(value.get(field.name), field.dataType)
                for field in data_type.fields}
    if isinstance(data_type, ArrayType):
        return [_arrow_value(item, data_type.elementType) for item in value]
    if isinstance(data_type, MapType):
        return [(_arrow_value(key, data_type.keyType), _arrow_value(item, data_type.valueType))
                for key, item in value.items()]
    if isinstance(data_type, TimestampType) and isinstance(value, datetime):
        return value.astimezone(UTC)  # naive: local time, as createDataFrame reads it
    return value


def is_local_master(spark: SparkSession) -> bool:
    """Whether the session's driver runs its own tasks (``local[...]``), as locally and in CI."""
    return str(spark.conf.get("spark.master", None) or "").startswith("local")


def counted_while(
    frame: DataFrame, aggregates: Sequence[Column], action: Callable[[DataFrame], None]
) -> dict[str, Any]:
    """Run ``action`` on ``frame`` and return ``aggregates`` over ``frame``, taken in that pass.

    ``DataFrame.observe``: the counts ride along with the action (a write, typically), so they
    need no pass of their own. ``action`` may filter or project what it is given; the aggregates
    still see every row of ``frame``. Works under Spark Connect for actions run through the
    DataFrame API (not for SQL over a temporary view of ``frame``).
    """
    from pyspark.sql import Observation

    observation = Observation()
    action(frame.observe(observation, *aggregates))
    return dict(observation.get)
