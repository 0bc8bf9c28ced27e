"""The audit reads big places in slices (issue 16): a problem deep in a queue is still found, and
an audit whose slices interleave with moving tasks reports no false problem."""

from __future__ import annotations

import threading

import pytest

import luasched
from luasched.core.fields import TASK


def test_a_task_planted_deep_in_a_big_queue_is_found(sched: luasched.Scheduler) -> None:
    @sched.task
    def noop(i: int) -> int:
        return i

    handles = sched.submit_many(noop, [(i,) for i in range(230)])
    late = sched.submit(noop, 0, _delay=60)
    clean = sched.audit(slice_size=50)
    assert clean.ok, clean.problems
    assert clean.counts["queued"] == 230 and clean.counts["delayed"] == 1

    deep = handles[217].id  # in the fifth slice of 50
    sched.client.hset(sched.keys.task(deep), TASK.state, "delayed")
    sched.client.hset(sched.keys.task(late.id), TASK.state, "queued")
    found = sched.audit(slice_size=50)
    assert not found.ok
    assert found.problems == [f"task {deep} is in queue default but its record says delayed",
                              f"task {late.id} is in delayed but its record says queued"]


def test_a_slice_size_out_of_range_is_refused(sched: luasched.Scheduler) -> None:
    for bad in (0, luasched.core.options.MAX_LIMIT + 1, "10"):
        with pytest.raises((ValueError, TypeError), match="limit"):
            sched.audit(slice_size=bad)  # type: ignore[arg-type]


def test_audits_in_small_slices_while_tasks_move_find_nothing_wrong(live) -> None:
    """Tasks fail once, wait in the delayed set and come back to the queue while audits read the
    queue and the delayed set 7 tasks at a time: every audit holds."""
    sched = live.sched(dispatch_on_submit=True)
    tried: set[int] = set()
    lock = threading.Lock()

    @sched.task(retry_backoff=0.01)
    def flaky(i: int) -> int:
        with lock:
            first = i not in tried
            tried.add(i)
        if first:
            raise RuntimeError("the first attempt fails")
        return i

    for _ in range(2):
        live.processor(sched, capacity=3)
    live.loop(sched)
    group = sched.map(flaky, [(i,) for i in range(300)])
    audits = 0
    while sched.counts()["done"] < 300:
        audit = sched.audit(slice_size=7)
        assert audit.ok, audit.problems
        audits += 1
    assert group.results(timeout=30) == list(range(300))
    assert audits >= 2, "the tasks finished before an audit could overlap them"
    final = sched.audit(slice_size=7)
    assert final.ok, final.problems
    assert final.counts["done"] == 300
