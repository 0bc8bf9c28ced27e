"""A slot stuck in a call past its timeout is never offered work: reap ends the attempt, the
retry and new tasks run elsewhere (or once the call returns), and the slot is free again when
its late ack comes. A processor's default timeout ends tasks that set none. On both front ends,
on the embedded and the real server."""

from __future__ import annotations

import asyncio
import threading

import pytest

import luasched
from luasched.core.replies import ProcessorInfo
from tests.servers import wait_until

pytestmark = pytest.mark.timeout(60)


def info(sched: luasched.Scheduler, pid: str) -> ProcessorInfo:
    (found,) = [p for p in sched.processors() if p.id == pid]
    return found


def test_a_thread_stuck_past_its_timeout_is_never_offered_work(make_sched, caplog):
    caplog.set_level("WARNING", logger="luasched")
    sched = make_sched(dispatch_on_submit=True)
    release = threading.Event()
    ran_on: dict[str, list[str]] = {}

    @sched.task(max_attempts=3, timeout=0.3, retry_backoff=0)
    def stall() -> int:
        task = luasched.current_task()
        assert task is not None
        ran_on.setdefault(task.id, []).append(task.processor)
        if task.attempt == 1:
            release.wait(30)  # past its timeout: reaped while its thread is still here
        return task.attempt

    @sched.task
    def where() -> str:
        task = luasched.current_task()
        assert task is not None
        return task.processor

    # no scheduler duties: the test reaps and places, so it sees every step
    stuck = sched.processor(capacity=1, scheduler=False, name="stuck")
    other = sched.processor(capacity=1, scheduler=False, name="other")
    stuck.start()
    try:
        h = sched.submit(stall)
        wait_until(lambda: h.state == "running", "the task to start")
        wait_until(lambda: sched.reap() == [h.id], "the attempt to run past its timeout")
        assert sched.dispatch() == []  # the retry is queued again; the stuck slot is not offered it
        later = sched.submit(where)
        assert (h.state, later.state) == ("queued", "queued")
        seen = info(sched, stuck.id)
        assert (seen.stuck, seen.running, seen.load, seen.capacity) == (1, 0, 1, 1)
        assert sched.audit().ok

        other.start()  # the retry and the new task run elsewhere
        sched.dispatch()
        assert h.result(timeout=10) == 2 and later.result(timeout=10) == other.id
        assert ran_on[h.id] == [stuck.id, other.id]
        assert info(sched, stuck.id).stuck == 1  # the call still runs on
        other.stop(timeout=5)

        release.set()  # the call returns: its late ack is stale and frees the slot
        wait_until(lambda: info(sched, stuck.id).stuck == 0, "the slot to come free")
        assert sched.submit(where).result(timeout=10) == stuck.id
        stale = [r.getMessage() for r in caplog.records if "had already ended" in r.getMessage()]
        assert len(stale) == 1 and stale[0].startswith(f"task {h.id} stall attempt 1: done in ")
        counts = sched.counts()
        assert (counts["done"], counts["running"], counts["queued"], counts["assigned"]) == (3, 0, 0, 0)
        assert sched.audit().ok
    finally:
        release.set()
        stuck.stop(timeout=5)
        other.stop(timeout=5)


def test_a_coroutine_that_ignores_its_cancellation_holds_its_slot(make_asched, make_sched):
    watcher = make_sched()

    async def main() -> None:
        sched = make_asched(dispatch_on_submit=True)
        release = asyncio.Event()
        cancels = []

        @sched.task(max_attempts=3, timeout=0.3, retry_backoff=0)
        async def stubborn() -> int:
            task = luasched.current_task()
            assert task is not None
            while task.attempt == 1 and not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:  # hostile: carries on past its timeout
                    cancels.append(task.id)
            return task.attempt

        @sched.task
        async def where() -> str:
            task = luasched.current_task()
            assert task is not None
            return task.processor

        stuck = sched.processor(capacity=1, scheduler=False)
        other = sched.processor(capacity=1, scheduler=False)
        await stuck.start()
        try:
            h = await sched.submit(stubborn)
            await asyncio.to_thread(wait_until, lambda: watcher.handle(h.id).state == "running", "a start")
            await asyncio.to_thread(wait_until, lambda: watcher.reap() == [h.id], "the timeout")
            # cancelled at its timeout, and ignored it; the processor's own timer and the
            # server's deadline race by a hair, so wait for the cancellation as well
            await asyncio.to_thread(wait_until, lambda: cancels == [h.id], "the cancellation")
            assert await sched.dispatch() == []
            later = await sched.submit(where)
            assert (await h.state(), await later.state()) == ("queued", "queued")
            seen = info(watcher, stuck.id)
            assert (seen.stuck, seen.load) == (1, 1)
            assert (await sched.audit()).ok

            await other.start()
            await sched.dispatch()
            assert await h.result(timeout=10) == 2 and await later.result(timeout=10) == other.id
            await other.stop(timeout=5)

            release.set()
            await asyncio.to_thread(wait_until, lambda: info(watcher, stuck.id).stuck == 0, "a free slot")
            assert await (await sched.submit(where)).result(timeout=10) == stuck.id
            assert (await sched.audit()).ok
        finally:
            release.set()
            await stuck.stop(timeout=5)
            await other.stop(timeout=5)
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(main(), 45))


def test_an_asyncio_stop_does_not_wait_forever_for_a_task_that_ignores_cancellation(make_asched):
    async def main() -> None:
        sched = make_asched(dispatch_on_submit=True)
        release = asyncio.Event()

        @sched.task(max_attempts=1)
        async def stubborn() -> None:
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    pass

        p = sched.processor(capacity=1, scheduler=False)
        await p.start()
        try:
            h = await sched.submit(stubborn)
            while await h.state() != "running":
                await asyncio.sleep(0.01)
            assert await asyncio.wait_for(p.stop(timeout=0.2), 10) is False
            assert (await sched.counts())["processors"] == 0  # it deregistered: the task went back
            assert (await sched.audit()).ok
        finally:
            release.set()
            await asyncio.sleep(0)  # let the abandoned call see it and return
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))


# --- a processor's default timeout ----------------------------------------------------------------


def test_the_default_timeout_ends_thread_tasks_without_their_own(make_sched):
    sched = make_sched(dispatch_on_submit=True)
    release = threading.Event()

    @sched.task(max_attempts=1)
    def hang() -> None:
        release.wait(30)

    @sched.task(max_attempts=1, timeout=30)
    def own() -> str:
        release.wait(30)
        return "own"

    p = sched.processor(capacity=2, default_timeout=0.3)  # with its duties: it reaps
    p.start()
    try:
        first = sched.submit(own)
        wait_until(lambda: first.state == "running", "the task with its own timeout to start")
        h = sched.submit(hang)
        with pytest.raises(luasched.TaskFailed) as failed:
            h.result(timeout=10)
        assert failed.value.error_type == "TaskTimeout"
        assert "ran past its timeout of 300 ms" in failed.value.message
        assert first.state == "running"  # its own timeout of 30 s holds, not the default
        seen = info(sched, p.id)
        assert (seen.default_timeout_ms, seen.stuck, seen.load) == (300, 1, 2)
        release.set()
        assert first.result(timeout=10) == "own"
        wait_until(lambda: info(sched, p.id).stuck == 0, "the slot to come free")
        assert sched.audit().ok
    finally:
        release.set()
        p.stop(timeout=5)


def test_the_default_timeout_cancels_coroutines_without_their_own(make_asched):
    async def main() -> None:
        sched = make_asched(dispatch_on_submit=True)

        @sched.task(max_attempts=1)
        async def slow() -> None:
            await asyncio.sleep(30)

        p = sched.processor(capacity=1, scheduler=False, default_timeout=0.2)
        await p.start()
        try:
            h = await sched.submit(slow)
            with pytest.raises(luasched.TaskFailed) as failed:
                await h.result(timeout=10)
            assert failed.value.error_type == "TaskTimeout"
            assert failed.value.message == f"task {h.id} ran past its timeout of 200 ms and was cancelled"
            assert (await sched.audit()).ok
        finally:
            await p.stop(timeout=5)
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
