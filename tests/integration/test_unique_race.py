"""Submits of one unique key at once, from threads (each its own Scheduler and connection, and
threads sharing one Scheduler, whose submits share script calls) and from coroutines: exactly
one task is created, every submit gets its handle, and the rest count as deduplicated. On the
embedded server and on a real one; then one processor runs it, the key is freed, and a debounced
burst runs once with the last arguments."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.scripts.util import audit_ok

THREADS = 8


@pytest.mark.parametrize("shared", [False, True], ids=["own schedulers", "one scheduler"])
def test_eight_threads_submitting_one_key_create_one_task(make_sched, shared):
    one = make_sched()
    scheds = [one if shared else make_sched() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    got: list[list] = [[] for _ in range(THREADS)]

    def submit(k: int) -> None:
        barrier.wait()
        for i in range(25):
            got[k].append(scheds[k].submit("add", k, i, _unique_key="the-one"))

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    handles = [h for hs in got for h in hs]
    assert len(handles) == THREADS * 25
    assert len({h.id for h in handles}) == 1
    assert sum(h.created for h in handles) == 1
    counts = one.counts()
    assert (counts["submitted"], counts["queued"], counts["deduplicated"]) == (1, 1, THREADS * 25 - 1)
    audit_ok(one)


def test_coroutines_submitting_one_key_create_one_task(make_asched):
    async def main() -> list:
        sched = make_asched()
        try:
            handles = await asyncio.gather(*(sched.submit("add", i, _unique_key="k") for i in range(50)))
            assert (await sched.counts())["submitted"] == 1
            assert (await sched.audit()).ok
            return list(handles)
        finally:
            await sched.client.aclose()

    handles = asyncio.run(asyncio.wait_for(main(), 60))
    assert len({h.id for h in handles}) == 1 and sum(h.created for h in handles) == 1


def test_a_debounced_burst_runs_once_with_the_last_arguments(live):
    sched = live.sched()
    runs: list = []

    @sched.task(unique=lambda doc, version: f"doc-{doc}")
    def save(doc: int, version: int) -> int:
        runs.append(version)
        return version

    handles = [sched.submit(save, 1, v, _debounce=0.3) for v in range(100)]
    assert len({h.id for h in handles}) == 1
    live.processor(sched, capacity=2, lease=30)
    assert handles[0].result(timeout=30) == 99
    assert runs == [99]
    assert sched.submit(save, 1, 100, _debounce=0.01).created  # finished: the key is free again
    audit_ok(sched)
