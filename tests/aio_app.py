"""An asyncio APP for the CLI tests (``tests.aio_app:sched``)."""

from __future__ import annotations

import asyncio
import os
import random

import luasched
from luasched import aio

sched = aio.Scheduler(namespace=os.environ.get("CHAOS_NAMESPACE", "aio-app"))


@sched.task(max_attempts=50, retry_backoff=0.05)
async def record(i: int, work_s: float = 0.002) -> int:
    """As tests.chaos_app's record: each run appends its id to CHAOS_DIR/<pid>.log."""
    info = luasched.current_task()
    assert info is not None
    with open(os.path.join(os.environ["CHAOS_DIR"], f"{os.getpid()}.log"), "a", encoding="ascii") as f:
        f.write(f"{info.id}\n")
    await asyncio.sleep(random.uniform(0, work_s))
    return i


@sched.task
async def add(a: int, b: int) -> int:
    await asyncio.sleep(0.001)
    return a + b


@sched.task
def mul(a: int, b: int) -> int:
    return a * b


@sched.task
async def hold(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@sched.task(max_attempts=3, retry_backoff=0.05)
async def stubborn_first() -> dict[str, object]:
    """Its first attempt never returns and ignores its cancellation; a later attempt returns its
    number and where it ran."""
    info = luasched.current_task()
    assert info is not None
    while info.attempt == 1:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
    return {"attempt": info.attempt, "processor": info.processor}


@sched.task
async def whereami() -> str:
    info = luasched.current_task()
    assert info is not None
    return info.processor
