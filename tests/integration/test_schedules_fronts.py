"""Schedules through both front ends: ``@periodic`` declares a schedule that ``run`` makes as it
starts (so a processor doing the scheduler's duties makes it too), and the asyncio Scheduler
schedules, fires, triggers and lists as the threaded one does."""

from __future__ import annotations

import asyncio
import threading

import luasched
from luasched import aio


def test_periodic_registers_the_task_and_run_makes_the_schedule(make_sched, clock):
    sched = make_sched(clock=clock)

    @sched.periodic(every=60, overlap="allow", queue="q")
    def nightly() -> int:
        return 1

    assert sched.registry.get("nightly") is not None
    assert sched.schedules() == []  # declared, not yet made
    stop = threading.Event()
    stop.set()
    sched.run(stop)  # makes the declared schedules, then sees stop
    info = sched.schedule_info("nightly")
    assert (info.task, info.spec, info.overlap) == ("nightly", "every 60s", "allow")
    sched.run(stop)  # a second loop: the same schedule, unchanged
    assert sched.schedule_info("nightly") == info


def test_the_asyncio_scheduler_schedules_fires_and_triggers(make_async_client, make_sched, clock):
    threaded = make_sched(clock=clock)

    async def main() -> tuple[list[str], str, list[luasched.ScheduleInfo]]:
        client = make_async_client()
        sched = aio.Scheduler(client, namespace=threaded.namespace, clock=clock, dispatch_on_submit=False)

        @sched.task
        async def ping() -> str:
            return "pong"

        info = await sched.schedule("p", ping, every=5, overlap="allow")
        clock.now = info.next_ms / 1000
        fired = await sched.fire_schedules()
        handle = await sched.trigger("p")
        listed = await sched.schedules()
        await sched.close()
        await client.aclose()
        return fired.created, handle.id, listed

    created, triggered, listed = asyncio.run(main())
    assert created == [f"p@{listed[0].next_ms - 5000}"]
    assert listed[0].last_task_id == triggered and listed[0].runs == 2
    assert threaded.schedule_info("p") == listed[0]  # the threaded front end reads the same
    assert threaded.audit().ok
