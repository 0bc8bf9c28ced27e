"""The APP the durability benchmark's processor processes run (``bench.durability_app:sched``):
on BENCH_REDIS with BENCH_DURABILITY, dispatching at submit."""

from __future__ import annotations

import os

import luasched

sched = luasched.Scheduler(os.environ.get("BENCH_REDIS"), namespace=os.environ.get("BENCH_NAMESPACE", "durability"),
                           dispatch_on_submit=True, durability=int(os.environ.get("BENCH_DURABILITY", "0")),
                           durability_timeout=5.0)


@sched.task
def noop() -> None:
    return None
