# Databricks notebook source
"""The source of the Lakeflow pipeline in resources/bronze_silver.pipeline.yml: dlt-meta's launcher.

dlt-meta declares the tables of every dataflow its onboarding step wrote to the dataflow-spec
tables, for the pipeline's configuration: ``layer`` (bronze, silver or bronze_silver),
``<layer>.group`` and ``<layer>.dataflowspecTable``. The pipeline runs this file as a notebook
(``__name__ == "__main__"``); importing it declares nothing. dlt-meta itself comes from the
pipeline's ``environment`` (databricks-labs-sdp-meta), not from this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def declare_dataflows(spark: SparkSession) -> None:
    """Declare every onboarded dataflow of the pipeline's ``layer`` (dlt-meta's own launcher)."""
    from databricks.labs.sdp_meta.dataflow_pipeline import DataflowPipeline

    DataflowPipeline.invoke_dlt_pipeline(spark, spark.conf.get("layer"))


if __name__ == "__main__":
    from pyspark.sql import SparkSession

    declare_dataflows(SparkSession.builder.getOrCreate())
