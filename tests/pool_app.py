"""The APP that tests/integration/test_pool.py runs in pool processes: ``tests.pool_app:sched``."""

from __future__ import annotations

import os
import time

import luasched

sched = luasched.Scheduler(namespace="pool-tests")


@sched.task
def add(a: int, b: int) -> int:
    return a + b


@sched.task
def sleepy(path: str, seconds: float) -> float:
    """Leaves a trace before and after its sleep, so a test can see where it was stopped."""
    with open(path, "a") as f:
        f.write("started\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write("finished\n")
    return seconds


@sched.task
def crash() -> None:
    os._exit(3)


@sched.task
def whoami() -> dict[str, object]:
    info = luasched.current_task()
    assert info is not None
    return {"pid": os.getpid(), "attempt": info.attempt, "id": info.id, "processor": info.processor}
