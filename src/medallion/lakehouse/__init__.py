"""The lakehouse: what runs on a cluster.

Sources and the raw zone, schema contracts, transforms, data quality, the pipeline steps the
notebooks call, serving to the warehouses, lineage, and the environment they run in (resolved
once, at the edge). Nothing here imports ``medallion.platform``: this half is what the wheel a
cluster installs needs (``tests/test_structure.py`` checks the direction).
"""
