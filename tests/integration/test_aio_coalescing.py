"""Concurrent one-task submits on one event loop share script calls (``aio._Coalescer``): every
task lands once, callers return only when their task is in Redis, errors reach the callers whose
tasks they concern, and a cancelled waiting caller's task is not sent."""

from __future__ import annotations

import asyncio

import pytest

from luasched import aio

from .test_aio import run


def count_calls(s: aio.Scheduler) -> list[int]:
    """The sizes of the submit calls the Scheduler's coalescer makes (one entry per script call)."""
    sizes: list[int] = []
    send = s._coalescer.send

    async def counted(news):
        sizes.append(len(news))
        return await send(news)

    s._coalescer.send = counted
    return sizes


def test_concurrent_submits_share_calls_and_every_task_lands_once(make_asched):
    async def main():
        s = make_asched()
        sizes = count_calls(s)
        handles = await asyncio.gather(*(s.submit("add", i) for i in range(300)))

        assert len({h.id for h in handles}) == 300
        assert sum(sizes) == 300
        assert len(sizes) < 30, f"{len(sizes)} calls for 300 concurrent submits: {sizes}"
        assert (await s.counts())["submitted"] == 300
        assert (await s.queue_lengths()) == {"default": 300}
        assert [await h.state() for h in (handles[0], handles[150], handles[-1])] == ["queued"] * 3
        assert (await s.audit()).ok
        await s.client.aclose()

    run(main())


def test_a_lone_submit_goes_at_once_and_sequential_ones_one_call_each(make_asched):
    async def main():
        s = make_asched()
        sizes = count_calls(s)
        for i in range(5):
            await s.submit("add", i)
        assert sizes == [1] * 5
        await s.client.aclose()

    run(main())


def test_one_id_submitted_concurrently_makes_one_task(make_asched):
    async def main():
        s = make_asched()
        sizes = count_calls(s)
        first = asyncio.ensure_future(s.submit("add", 0))  # in flight while the rest wait
        await asyncio.sleep(0)
        rest = await asyncio.gather(*(s.submit("add", 1, _id="same") for _ in range(3)),
                                    s.submit("add", 2))
        await first
        assert {h.id for h in rest[:3]} == {"same"}
        assert (await s.counts())["submitted"] == 3  # add(0), "same" once, add(2)
        assert max(sizes) <= 2, sizes  # "same" never twice in one call
        assert (await s.audit()).ok
        await s.client.aclose()

    run(main())


def test_an_error_reaches_the_callers_of_its_call_and_later_submits_work(make_asched):
    async def main():
        s = make_asched()
        send = s._coalescer.send
        calls = {"n": 0}

        async def flaky(news):
            calls["n"] += 1
            if calls["n"] == 2:  # the call carrying the waiters
                raise ConnectionError("lost")
            return await send(news)

        s._coalescer.send = flaky
        results = await asyncio.gather(*(s.submit("add", i) for i in range(5)), return_exceptions=True)
        assert not isinstance(results[0], Exception)  # the first went alone, before the error
        assert all(isinstance(r, ConnectionError) for r in results[1:]), results
        h = await s.submit("add", 9)  # the coalescer is idle again, nothing stuck
        assert (await s.counts())["submitted"] == 2 and await h.state() == "queued"
        await s.client.aclose()

    run(main())


def test_a_cancelled_waiting_submit_is_not_sent(make_asched):
    async def main():
        s = make_asched()
        sizes = count_calls(s)
        first = asyncio.ensure_future(s.submit("add", 0))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(s.submit("add", 1))
        kept = asyncio.ensure_future(s.submit("add", 2))
        await asyncio.sleep(0)
        waiting.cancel()
        await first
        handle = await kept
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert sum(sizes) == 2 and (await s.counts())["submitted"] == 2
        assert await handle.state() == "queued"
        await s.client.aclose()

    run(main())
