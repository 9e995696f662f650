"""Process pools for the one-time CPU work on datasets: decoding a folder into the cache
(cache.py) and drawing the synthetic faces (synthetic.py). Both use the same defaults."""

from __future__ import annotations

import multiprocessing
import os

MAX_WORKERS = 8  # bounds memory on large machines: each worker is a process


def default_workers() -> int:
    """One worker per CPU this process may use (container and taskset limits respected), at most MAX_WORKERS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, MAX_WORKERS)


def pool_context():
    """fork where it exists (workers start at once and share the parent's data without
    pickling it), else spawn."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)
