"""CPU time of a process tree, for the local cost estimate (CPU-seconds per task and per run)."""

from __future__ import annotations


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid``, its live descendants and the children it reaped.

    None when the process is gone or unknown. A descendant that ended without being reaped by a
    process of the tree is not counted: the figure is a lower bound.
    """
    if pid is None:
        return None
    import psutil  # imported here: only runs measure CPU, the CLI's start-up stays light

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a descendant that ended meanwhile
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def cpu_delta(before: float | None, after: float | None) -> float:
    """CPU seconds spent between two readings (0 when either is unknown)."""
    if before is None or after is None:
        return 0.0
    return round(max(after - before, 0.0), 3)
