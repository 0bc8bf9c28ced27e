"""Chords and chains with live threaded processors (and the asyncio front end): a callback fires
exactly once when a group's members finish at once on different processors, and it runs on a
processor with the results in submission order."""

from __future__ import annotations

import asyncio
import collections
import threading

import luasched


def test_a_callback_fires_once_when_members_finish_together_on_many_processors(live):
    sched = live.sched(dispatch_on_submit=True)
    ran: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    @sched.task
    def square(x: int) -> int:
        return x * x

    @sched.task
    def total(results: list[int], label: str) -> dict[str, object]:
        info = luasched.current_task()
        assert info is not None
        with lock:
            ran[info.id] += 1
        return {"label": label, "sum": sum(results), "n": len(results), "processor": info.processor}

    @sched.task
    def fields(parent: dict[str, object]) -> list[str]:
        return sorted(parent)

    processors = [live.processor(sched, capacity=4) for _ in range(4)]
    groups = [sched.map(square, [(i,) for i in range(50)]) for _ in range(4)]
    callbacks = [g.then(total, f"g{k}") for k, g in enumerate(groups)]
    done = [cb.result(timeout=30) for cb in callbacks]
    assert [d["sum"] for d in done] == [sum(i * i for i in range(50))] * 4
    assert [d["label"] for d in done] == ["g0", "g1", "g2", "g3"]
    assert {d["processor"] for d in done} <= {p.id for p in processors}
    assert sorted(ran.values()) == [1, 1, 1, 1] and set(ran) == {cb.id for cb in callbacks}
    chained = callbacks[0].then(fields)  # its parent has ended: queued at once, fed its result
    assert chained.result(timeout=30) == ["label", "n", "processor", "sum"]
    assert sched.audit().ok


def test_the_asyncio_front_end_chains_and_waits(make_asched):
    async def main() -> None:
        sched = make_asched()

        @sched.task
        async def inc(x: int) -> int:
            return x + 1

        first = await sched.submit(inc, 1)
        second = await first.then(inc)
        after = await sched.submit(inc, 10, _after=[second])
        assert await second.state() == "waiting" and await after.state() == "waiting"
        p = sched.processor(capacity=2)
        await p.start()
        try:
            assert await after.result(timeout=20) == 11
            assert await second.result(timeout=20) == 3
            assert (await sched.audit()).ok
        finally:
            await p.stop()
            await sched.client.aclose()

    asyncio.run(main())
