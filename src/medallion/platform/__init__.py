"""The local platform: what runs on a laptop or in CI around the lakehouse.

The job runner and its warm Spark driver, the bundle tooling, the source stand-ins, the data
generator, the demo, run records and reports, and the ``medallion`` command. It imports the
lakehouse (``medallion.lakehouse``), never the other way round.
"""
