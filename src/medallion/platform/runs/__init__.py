"""Run records: a summary file per job run, its cost estimate, and an MLflow run with a nested
run per task.

The local runner hands each finished run to a ``RunRecorder``
(``medallion.platform.runs.recorder``), which writes
``<storage_root>/_runs/dt=YYYY-MM-DD/<job>/<run_id>/run_summary.json`` (and the run's DQ report
beside it) and records the run in MLflow. Neither ever fails a job: a record that cannot be written
is a logged warning.
"""
