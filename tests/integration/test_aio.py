"""The asyncio front end on both servers: processors on the event loop, interoperation with the
sync front end, cancellation of waits, and the scheduler loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import luasched


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_async_tasks_run_concurrently_up_to_capacity(make_asched):
    async def main():
        s = make_asched()
        now = {"running": 0, "most": 0}

        @s.task
        async def nap(x: int) -> int:
            now["running"] += 1
            now["most"] = max(now["most"], now["running"])
            await asyncio.sleep(0.05)
            now["running"] -= 1
            return x

        p = s.processor(capacity=3)
        await p.start()
        stop = asyncio.Event()
        loop = asyncio.create_task(s.run(stop))
        try:
            g = await s.map(nap, [(i,) for i in range(12)])
            assert await g.results(timeout=30) == list(range(12))
        finally:
            stop.set()
            await s.wake()
            await loop
            assert await p.stop(timeout=5)
        assert now["most"] == 3, now
        assert (await s.audit()).ok
        assert (await s.counts())["processors"] == 0
        await s.client.aclose()

    run(main())


def test_plain_functions_run_in_threads_without_blocking_the_loop(make_asched):
    async def main():
        s = make_asched()
        threads = []

        @s.task
        def block(seconds: float) -> str:
            threads.append(threading.current_thread().name)
            time.sleep(seconds)
            return "slept"

        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        p = s.processor()
        await p.register()
        h = await s.submit(block, 0.3)
        await s.dispatch()
        tick = asyncio.create_task(ticker())
        assert await p.process_available() == 1
        tick.cancel()
        assert await h.result(timeout=5) == "slept"
        assert threads and threads[0] != threading.current_thread().name
        assert ticks >= 10, f"the event loop was blocked: {ticks} ticks in 0.3 s"
        await s.client.aclose()

    run(main())


def test_sync_and_async_interoperate_on_one_namespace(make_asched, make_sched):
    sync = make_sched()

    @sync.task
    def double(x: int) -> int:
        return 2 * x

    async def main():
        s = make_asched()
        s.registry = sync.registry
        # submitted by sync, processed by async
        hs = sync.submit_many(double, [(i,) for i in range(5)])
        p = s.processor(capacity=5)
        await p.register()
        assert len(await s.dispatch()) == 5
        assert await p.process_available() == 5
        assert [await s.handle(h.id).result(timeout=5) for h in hs] == [0, 2, 4, 6, 8]
        await p.deregister()
        # submitted by async, processed by sync
        ah = await s.submit(double, 21)
        await s.client.aclose()
        return ah.id

    task_id = run(main())
    sp = sync.processor()
    sp.register()
    assert sync.dispatch() == [(task_id, sp.id)]
    assert sp.process_available() == 1
    assert sync.handle(task_id).result(timeout=5) == 42
    assert sync.audit().ok


def test_cancelling_a_wait_leaves_nothing_behind_and_the_task_goes_on(make_asched, make_sched):
    sync = make_sched()

    async def main():
        s = make_asched()
        h = await s.submit("double", 4)
        before = set(await s.client.keys(s.keys.prefix + "*"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(h.result(), 0.2)  # cancels the waiting coroutine mid-BLPOP
        after = set(await s.client.keys(s.keys.prefix + "*"))
        assert after == before, "the cancelled wait left keys behind"
        assert await h.state() == "queued", "cancelling the wait must not cancel the task"
        await s.client.aclose()
        return h.id

    task_id = run(main())

    @sync.task
    def double(x: int) -> int:
        return 2 * x

    p = sync.processor()
    p.register()
    sync.dispatch()
    p.process_available()
    assert sync.handle(task_id).result(timeout=5) == 8
    wake = sync.keys.task_wake(task_id)  # the finished task woke the (gone) waiter: bounded leftover
    assert 0 < sync.client.ttl(wake) <= 300 or not sync.client.exists(wake)


def test_an_async_task_past_its_timeout_is_cancelled(make_asched):
    async def main():
        s = make_asched()
        cancelled = asyncio.Event()

        @s.task(max_attempts=1, timeout=0.1)
        async def forever() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        p = s.processor()
        await p.register()
        h = await s.submit(forever)
        await s.dispatch()
        assert await p.process_available() == 1
        assert cancelled.is_set()
        with pytest.raises(luasched.TaskFailed) as failed:
            await h.result(timeout=5)
        assert failed.value.error_type == "TaskTimeout"
        await s.client.aclose()

    run(main())


def test_async_group_as_completed_and_progress(make_asched):
    async def main():
        s = make_asched()

        @s.task
        async def maybe(x: int) -> int:
            if x == 2:
                raise ValueError("two")
            return x

        p = s.processor(capacity=5)
        await p.register()
        g = await s.map(maybe, [(i,) for i in range(4)], max_attempts=1)
        await s.dispatch()
        await p.process_available()
        seen = [o.task_id async for o in g.as_completed(timeout=5)]
        assert sorted(seen) == sorted(g.ids)
        values = await g.results(timeout=5, return_exceptions=True)
        assert values[:2] == [0, 1] and isinstance(values[2], luasched.TaskFailed) and values[3] == 3
        assert await g.progress() == {"total": 4, "done": 3, "failed": 1, "cancelled": 0, "pending": 0}
        await s.client.aclose()

    run(main())


def test_async_processor_recovers_a_lost_lease(make_asched, clock):
    async def main():
        s = make_asched(clock=clock)

        @s.task
        async def one() -> int:
            return 1

        p = s.processor(lease=0.3, scheduler=False)  # reaps by hand
        await p.start()
        old = p.id
        clock.advance(60)
        assert (await s.reap()).processors == [old]
        for _ in range(200):
            if p.id != old:
                break
            await asyncio.sleep(0.02)
        assert p.id != old
        h = await s.submit(one)
        assert await s.dispatch() == [(h.id, p.id)]
        assert await h.result(timeout=10) == 1
        await p.stop(timeout=5)
        await s.client.aclose()

    run(main())


def test_an_abandoned_async_wait_can_cancel_its_task(make_asched):
    async def main():
        s = make_asched()
        kept, dropped = await s.submit("add", 1), await s.submit("add", 2)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(kept.result(), 0.1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(dropped.result(cancel_if_abandoned=True), 0.1)
        assert (await kept.state(), await dropped.state()) == ("queued", "cancelled")
        await s.client.aclose()

    run(main())


def test_an_async_processor_with_dispatch_on_ack_drains_a_backlog_without_a_scheduler(make_asched):
    async def main():
        s = make_asched()

        @s.task
        async def double(x: int) -> int:
            await asyncio.sleep(0.001)
            return 2 * x

        p = s.processor(capacity=2, dispatch_on_ack=True, scheduler=False)
        await p.start()
        try:
            g = await s.map(double, [(i,) for i in range(30)])
            assert len(await s.dispatch()) == 2  # one task per slot; the acks place the rest
            kicked = (await s.counts())["last_dispatch_ms"]
            assert await g.results(timeout=30) == [2 * i for i in range(30)]
            assert (await s.counts())["last_dispatch_ms"] == kicked, "nothing else may have called dispatch"
        finally:
            assert await p.stop(timeout=5)
        assert (await s.audit()).ok
        await s.client.aclose()

    run(main())


def test_an_async_scheduler_pauses_and_resumes_a_running_processor(make_asched):
    """The asyncio front end pauses as the threaded one does: an eager submit to a paused queue
    leaves its task queued beside a live processor, and resume lets the processor run it."""
    async def main():
        s = make_asched(dispatch_on_submit=True)

        @s.task
        async def double(x: int) -> int:
            return 2 * x

        p = s.processor(capacity=2)
        await p.start()
        try:
            assert await (await s.submit(double, 1)).result(timeout=10) == 2
            assert await s.pause("default") is True
            held = await s.submit(double, 2)
            assert await held.state() == "queued"
            assert [x.queue for x in await s.paused()] == ["default"]
            assert await s.resume("default") is True
            assert await held.result(timeout=10) == 4
            assert await s.paused() == []
        finally:
            assert await p.stop(timeout=5)
        assert (await s.audit()).ok
        await s.client.aclose()

    run(main())
