"""Schema contracts: load them, conform raw records to them, log the drift, name the breaks."""

from __future__ import annotations

from medallion.lakehouse.contracts.contract import (
    Contract,
    ContractColumn,
    list_versions,
    load_contract,
    parse_spark_type,
)

__all__ = ["Contract", "ContractColumn", "list_versions", "load_contract", "parse_spark_type"]
