"""medallion-lakehouse: a notebook-first, Databricks-style medallion lakehouse."""

__version__ = "0.1.0"
