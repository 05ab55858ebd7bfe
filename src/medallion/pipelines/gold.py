"""silver → gold: rebuild each gold table from silver, check it, and only then replace it.

Gold fails the pipeline instead of quarantining: the spec's ``expect_or_fail`` rules, primary-key
uniqueness, foreign keys into silver and "every order has a USD rate" are checked on the new
table's rows before anything is written, so a violation leaves the previous gold version in place
and stops the job before publish. The same rules are Delta CHECK constraints on the table, so no
other writer can break them either. A rebuild that yields the same rows writes nothing: the table
keeps its Delta version, which is what publishing is keyed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medallion.credentials import generated_local_secret, get_secret
from medallion.errors import ConfigError, ExpectationFailed
from medallion.lakehouse import Lakehouse, retry_on_conflict
from medallion.lineage import lineage_job
from medallion.lineage.observe import observe_output_frame
from medallion.lineage.steps import StepLineage, tables_lineage
from medallion.pipelines import StepResult
from medallion.quality.event_log import check_and_log
from medallion.quality.spec import Action, TableSpec, spec_for
from medallion.settings import on_databricks
from medallion.spark import computed_once
from medallion.transforms.gold import duplicate_keys, missing_references
from medallion.transforms.gold.customer_360 import build_customer_360
from medallion.transforms.gold.fx import usd_amounts
from medallion.transforms.gold.masking import hash_id
from medallion.transforms.gold.orders_daily import build_orders_daily

SALT_KEY = "pii-hash-salt"
EXAMPLES = 5


def pii_hash_salt(storage_root: str | Path) -> str:
    """The salt of gold's hashed ids: the secret ``pii-hash-salt``, locally generated if unset."""
    if on_databricks():
        salt = get_secret(SALT_KEY)
    else:
        salt = get_secret(SALT_KEY, fallback=lambda: generated_local_secret(storage_root, SALT_KEY))
    if not salt:  # get_secret raises when there is no value; an empty one is no salt either
        raise ConfigError(f"secret {SALT_KEY}: expected a non-empty salt, found none")
    return salt


def build_gold_lineage(lakehouse: Lakehouse, dataset: str, **_: object) -> StepLineage:
    """``build_gold`` reads the spec's sources and lookup tables and writes the table."""
    spec = spec_for(dataset)
    return tables_lineage(
        f"build_gold.{spec.name}", lakehouse,
        inputs=[*spec.sources, *(lookup.table for lookup in spec.lookups)],
        outputs=[spec.dataset],
    )


@lineage_job(build_gold_lineage)
def build_gold(
    lakehouse: Lakehouse,
    dataset: str,
    *,
    run_id: str,
    salt: str,
    job: str = "build_analytics",
    task: str | None = None,
) -> StepResult:
    """Rebuild ``dataset`` (gold.fact_customer_360 or gold.orders_daily) from silver."""
    spec = spec_for(dataset)
    silver = {source: lakehouse.read(source) for source in spec.sources}
    task_name = task or dataset.split(".")[1]
    if dataset == "gold.fact_customer_360":
        gold = build_customer_360(
            silver["silver.dim_customer"],
            silver["silver.fact_orders"],
            silver["silver.fact_events"],
            silver["silver.fx_rates"],
            salt=salt,
        )
    elif dataset == "gold.orders_daily":
        gold = build_orders_daily(silver["silver.fact_orders"], silver["silver.fx_rates"])
    else:
        raise ConfigError(f"{dataset}: no gold build; expected one of {GOLD_TABLES}")
    observe_output_frame(dataset, gold)  # its plan is the table's column lineage
    _require_usd_rates(silver["silver.fact_orders"], silver["silver.fx_rates"], dataset)
    # Checked three ways, then written: the new rows are computed once, not once per action.
    with computed_once(gold) as rows:
        check_and_log(lakehouse, rows, spec, run_id=run_id, job=job, task=task_name)
        # The table will hold exactly these rows: counted here, not read back after the write.
        rows_in, rows_written = check_integrity(dataset, rows, spec, silver, salt)
        if not lakehouse.exists(dataset):
            # Created with its CHECK constraints in the same commit, which enforces them on
            # these rows too: one commit instead of one ALTER TABLE (and a table scan) per rule.
            lakehouse.write(
                rows,
                dataset,
                mode="overwrite",
                properties={
                    f"{CONSTRAINT_PROPERTY}{name}": expression
                    for name, expression in check_constraints(spec).items()
                },
            )
        elif not same_rows(rows, lakehouse.read(dataset)):
            # Unchanged gold keeps its Delta version, so publishing it again is a no-op.
            lakehouse.write(rows, dataset, mode="overwrite")
    add_check_constraints(lakehouse, spec)  # a table made before a rule was added gets it now
    return StepResult(
        step=f"build_{task_name}", target=dataset, rows_in=rows_in, rows_written=rows_written
    )


GOLD_TABLES = ("gold.fact_customer_360", "gold.orders_daily")


def same_rows(new: DataFrame, current: DataFrame) -> bool:
    """True when both frames have the same columns (names, types, order) and the same rows."""
    if new.schema.simpleString() != current.schema.simpleString():
        return False
    # Both differences in one job: the multisets are equal when neither has a row left.
    return new.exceptAll(current).unionAll(current.exceptAll(new)).isEmpty()


CONSTRAINT_PROPERTY = "delta.constraints."  # a CHECK constraint's table property prefix


def check_constraints(spec: TableSpec) -> dict[str, str]:
    """The table's CHECK constraints: each ``expect_or_fail`` rule's name and SQL expression."""
    return {rule.name: rule.expression for rule in spec.expectations if rule.action is Action.FAIL}


def add_check_constraints(lakehouse: Lakehouse, spec: TableSpec) -> list[str]:
    """Add the CHECK constraints the table lacks (``ALTER TABLE``, one each); the names added.

    After a write conflict (another writer changed the table's metadata) the table's constraints
    are read again, so a constraint that writer added is not added twice.
    """
    table = lakehouse.name(spec.dataset)
    added: list[str] = []

    def add_missing() -> None:
        properties = {
            row["key"]: row["value"]
            for row in lakehouse.spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
        }
        for name, expression in check_constraints(spec).items():
            if properties.get(f"{CONSTRAINT_PROPERTY}{name}") is not None:
                continue
            lakehouse.spark.sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression})")
            added.append(name)

    retry_on_conflict(add_missing, spec.dataset)
    return added


def _require_usd_rates(orders: DataFrame, fx_rates: DataFrame, dataset: str) -> None:
    """Every order must convert to USD: a missing rate would silently lose revenue."""
    unconverted = usd_amounts(orders, fx_rates).where(sf.col("usd_rate").isNull())
    examples = unconverted.select("order_id", "currency", "order_ts").limit(EXAMPLES).collect()
    if examples:
        shown = ", ".join(f"{r['order_id']} ({r['currency']}, {r['order_ts']})" for r in examples)
        raise ExpectationFailed(
            f"{dataset}: every_order_has_usd_rate failed: expected a USD rate on or before each "
            f"order's date in silver.fx_rates, found none for {unconverted.count()} order(s), "
            f"e.g. {shown}"
        )


def check_integrity(
    dataset: str, rows: DataFrame, spec: TableSpec, silver: Mapping[str, DataFrame], salt: str
) -> tuple[int, int]:
    """Primary key, foreign key (fact_customer_360) and grain of the new gold ``rows``.

    Raises ``ExpectationFailed`` naming the check and a few offending keys; else returns the
    grain's conservation counts (input rows, table rows). One Spark job when the checks pass.
    """
    counts = _integrity_counts(dataset, rows, spec, silver, salt)
    _require_unique_keys(rows, spec, counts)
    if dataset == "gold.fact_customer_360":
        _require_references(rows, silver["silver.dim_customer"], salt, counts)
    return _grain_counts(dataset, counts, silver)


def _integrity_counts(
    dataset: str, rows: DataFrame, spec: TableSpec, silver: Mapping[str, DataFrame], salt: str
) -> dict[str, int]:
    """What the key, reference and grain checks need, in one job over the new gold rows.

    ``rows``: the table's rows; ``keys``: distinct key tuples (NULL keys group together, as in
    ``duplicate_keys``); ``orders``: for orders_daily, its orders summed. For
    fact_customer_360 the rows are outer-joined to the hashed dim_customer ids, which also gives
    ``customers`` (dim_customer's rows) and ``missing`` (rows whose customer_id is not one).
    """
    key = sf.struct(*[sf.col(key) for key in spec.keys])
    if dataset != "gold.fact_customer_360":
        return _first_row_as_ints(rows.agg(
            sf.count(sf.lit(1)).alias("rows"),
            sf.count_distinct(key).alias("keys"),
            sf.coalesce(sf.sum("orders"), sf.lit(0)).alias("orders"),
        ))
    gold = rows.select(*spec.keys, sf.lit(True).alias("_in_gold"))
    dim = silver["silver.dim_customer"].select(
        hash_id(sf.col("customer_id"), salt).alias("_dim_id"), sf.lit(True).alias("_in_dim")
    )
    joined = gold.join(dim, gold["customer_id"] == dim["_dim_id"], "full_outer")
    in_gold, in_dim = sf.col("_in_gold").isNotNull(), sf.col("_in_dim").isNotNull()
    return _first_row_as_ints(joined.agg(
        sf.count_if(in_gold).alias("rows"),
        sf.count_distinct(sf.when(in_gold, key)).alias("keys"),
        sf.count_if(in_dim).alias("customers"),
        sf.count_if(in_gold & ~in_dim).alias("missing"),
    ))


def _first_row_as_ints(aggregated: DataFrame) -> dict[str, int]:
    """The one row of a global aggregation, as ``{column: int}``."""
    row = aggregated.first()
    return {name: int(value) for name, value in (row.asDict() if row else {}).items()}


def _require_unique_keys(gold: DataFrame, spec: TableSpec, counts: Mapping[str, int]) -> None:
    """Primary key: one row per key (examples fetched only when ``counts`` show duplicates)."""
    if counts["keys"] == counts["rows"]:
        return
    duplicates = duplicate_keys(gold, spec.keys).limit(EXAMPLES).collect()
    shown = ", ".join(str(tuple(row[k] for k in spec.keys)) for row in duplicates)
    raise ExpectationFailed(
        f"{spec.dataset}: primary_key_unique failed: expected one row per "
        f"{', '.join(spec.keys)}, found {counts['rows'] - counts['keys']} duplicate row(s), "
        f"such as {shown}"
    )


def _require_references(
    gold: DataFrame, customers: DataFrame, salt: str, counts: Mapping[str, int]
) -> None:
    """Foreign key: every gold customer is a silver.dim_customer customer (compared hashed)."""
    if not counts["missing"]:
        return
    hashed = customers.select(hash_id(sf.col("customer_id"), salt).alias("customer_id"))
    missing = missing_references(gold, "customer_id", hashed, "customer_id")
    examples = missing.select("customer_id").limit(EXAMPLES).collect()
    raise ExpectationFailed(
        "gold.fact_customer_360: customer_in_dim_customer failed: expected every customer_id "
        f"to hash a silver.dim_customer id, found {counts['missing']} that do not, e.g. "
        + ", ".join(str(row["customer_id"]) for row in examples)
    )


def _grain_counts(
    dataset: str, counts: Mapping[str, int], silver: Mapping[str, DataFrame]
) -> tuple[int, int]:
    """Conservation on the grain: every input row accounted for in the table's rows.

    fact_customer_360: one row per dim_customer customer. orders_daily: its ``orders`` add up
    to the silver orders, each counted on exactly one (order_date, currency) row.
    """
    if dataset == "gold.fact_customer_360":
        return counts["customers"], counts["rows"]
    return silver["silver.fact_orders"].count(), counts["orders"]
