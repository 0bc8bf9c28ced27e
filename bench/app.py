"""The APP benchmark processes run (``bench.app:sched``): no-op tasks that report when they started."""

from __future__ import annotations

import os
import time

import luasched

# BENCH_EAGER "1"/"0" pins dispatch_on_submit; empty or unset: the Scheduler's default.
_eager = os.environ.get("BENCH_EAGER") or None
sched = luasched.Scheduler(namespace=os.environ.get("BENCH_NAMESPACE", "bench"),
                           **({} if _eager is None else {"dispatch_on_submit": _eager == "1"}))


@sched.task
def started_at() -> float:
    """When the task began to run (wall clock of this machine)."""
    return time.time()


@sched.task
def noop() -> None:
    return None


_marker = None


@sched.task
def mark_started(key: str) -> None:
    """Push when the task began to ``key``: the same marker task every peer runs in bench/."""
    global _marker
    if _marker is None:
        import redis

        _marker = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _marker.rpush(key, repr(time.time()))
