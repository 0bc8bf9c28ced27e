"""explain on the asyncio front end, on both servers: TaskHandle.explain() and Scheduler.explain
are coroutines giving what the threaded front end gives."""

from __future__ import annotations

import asyncio

import pytest

import luasched
from tests.conftest import FakeClock


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_an_async_handle_explains_each_step_of_a_task(make_asched, make_sched):
    clock = FakeClock()

    async def main():
        s = make_asched(clock=clock)
        try:
            delayed = await s.submit("add", 1, 2, _delay=5)
            got = await delayed.explain()
            assert isinstance(got, luasched.Explanation)
            assert (got.state, got.reason, got.detail["until_ms"]) == ("delayed", "delayed", got.now_ms + 5000)
            assert got == await s.explain(delayed.id)

            waiting = await s.submit("add", 3, 4, _queue="reports")
            got = await waiting.explain()
            assert (got.reason, got.detail["condition"], got.detail["queue"]) == ("no_processor", "queue", "reports")

            await s.pause("reports")
            got = await waiting.explain()
            assert (got.reason, got.detail["scope"]) == ("paused", "queue")
            await s.resume("reports")

            p = s.processor(capacity=1, queues=("reports",), lease=60)
            assert await p.register()
            assert (await waiting.explain()).reason == "waiting_slot"
            assert await s.dispatch() == [(waiting.id, p.id)]
            got = await waiting.explain()
            assert (got.reason, got.detail["processor"]) == ("assigned", p.id)
            # The threaded front end on the same namespace says the same.
            sync = make_sched(clock=clock)
            assert sync.handle(waiting.id).explain() == got
            sync.close()

            with pytest.raises(luasched.TaskNotFound):
                await s.explain("no-such-task")
        finally:
            await s.client.aclose()

    run(main())


def test_an_async_scheduler_explains_limiters(make_asched):
    clock = FakeClock()

    async def main():
        s = make_asched(clock=clock)
        try:
            p = s.processor(capacity=4, lease=60)
            assert await p.register()
            await s.limit("db", max_running=1)
            await s.limit("api", rate=1, per=10)
            a, b = await s.submit_many("add", [(1, 1), (2, 2)], limits=("db",))
            c, d = await s.submit_many("add", [(1, 1), (2, 2)], limits=("api",), key="k")
            placed = dict(await s.dispatch())
            assert set(placed) == {a.id, c.id}
            got = await b.explain()
            assert (got.reason, got.detail["limiter"], got.detail["running"], got.detail["max_running"]) == (
                "max_running", "db", 1, 1)
            got = await d.explain()
            assert (got.reason, got.detail["limiter"], got.detail["until_ms"]) == (
                "rate_limited", "api", got.now_ms + 10_000)
        finally:
            await s.client.aclose()

    run(main())
