"""An asyncio APP for the CLI tests (``tests.aio_app:sched``)."""

from __future__ import annotations

import asyncio
import os

from luasched import aio

sched = aio.Scheduler(namespace=os.environ.get("CHAOS_NAMESPACE", "aio-app"))


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
