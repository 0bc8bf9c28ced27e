"""The APP of bench/policies.py's processes (``bench.policies_app:sched``): a task that reports
when it began and ended, and may hold its slot a little."""

from __future__ import annotations

import os
import time

import luasched

sched = luasched.Scheduler(os.environ["BENCH_REDIS_URL"], namespace=os.environ.get("BENCH_NAMESPACE", "bench-policies"),
                           dispatch_on_submit=False)


@sched.task
def span(hold_ms: int = 0) -> tuple[float, float]:
    """When the task began and ended (wall clock of this machine); holds its slot hold_ms."""
    began = time.time()
    if hold_ms:
        time.sleep(hold_ms / 1000)
    return began, time.time()
