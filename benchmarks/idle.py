"""Timings mean something only on an idle machine: check the load average before timing.

A benchmark that shares the cores with a training run measures how much CPU time it wins from
the other job, not its speed. Every timing script calls `require_idle` first (``--allow-busy``
skips the check and marks the report).
"""

from __future__ import annotations

import os
import sys
import time

MAX_LOAD = 0.5  # 1-minute load average (runnable processes) tolerated before timing
WAIT_S = 180.0  # how long to wait for the machine to settle (the average decays over minutes)


def load_average() -> float:
    return os.getloadavg()[0]


def require_idle(allow_busy: bool = False, max_load: float = MAX_LOAD, wait_s: float = WAIT_S):
    """Wait up to ``wait_s`` for the 1-minute load average to fall to ``max_load``; raise
    SystemExit naming the load if it does not. With ``allow_busy`` (correctness runs, the
    workers of a timing that checked already) neither wait nor raise. Returns the load seen,
    to record in the report."""
    deadline = time.monotonic() + wait_s
    load = load_average()
    while load > max_load and not allow_busy and time.monotonic() < deadline:
        time.sleep(5.0)
        load = load_average()
    if load > max_load and not allow_busy:
        raise SystemExit(
            f"the machine is busy (1-minute load average {load:.2f} > {max_load}): timings "
            "would measure the other jobs; stop them or pass --allow-busy"
        )
    print(f"1-minute load average before timing: {load:.2f}", file=sys.stderr)
    return load
