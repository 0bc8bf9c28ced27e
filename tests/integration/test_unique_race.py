"""Submits of one unique key at once, from threads (each its own Scheduler and connection, and
threads sharing one Scheduler, whose submits share script calls) and from coroutines: exactly
one task is created, every submit gets its handle, and the rest count as deduplicated. On the
embedded server and on a real one; then one processor runs it, the key is freed, and a debounced
burst runs once with the last arguments."""

from __future__ import annotations

import asyncio
import threading

import pytest

import luasched
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


def test_a_unique_key_is_unique_across_the_shards(make_client, namespace):
    work = luasched.Sharded(make_client(), namespaces=[f"{namespace}.{i}" for i in range(4)],
                            dispatch_on_submit=False)

    @work.task(unique=True)
    def job(n: int) -> int:
        return n

    handles = [work.submit("add", i, _unique_key="one") for i in range(20)]
    assert len({h.id for h in handles}) == 1 and sum(h.created for h in handles) == 1
    many = work.submit_many(job, [(i % 5,) for i in range(40)])
    assert sum(h.created for h in many) == 5 and len({h.id for h in many}) == 5
    assert len({h._sched.namespace for h in many}) > 1  # the keys spread over the shards
    assert all(work.shard(h.id) is h._sched for h in handles + many)  # each id hashes to its key's shard
    counts = work.counts()
    assert (counts["submitted"], counts["deduplicated"]) == (6, 54)
    with pytest.raises(ValueError, match="hash to different shards"):
        for i in range(50):  # some id of these hashes to another shard than the key
            work.submit("add", 1, _unique_key="two", _id=f"mine-{i}")
    assert work.audit().ok
    work.close()
