"""dispatch.lua through Scheduler.dispatch: who gets which task, and what never moves."""

from __future__ import annotations

import pytest

from luasched.core import ops
from luasched.core.fields import TASK

from .util import ack, audit_ok, pending_ids, queue_ids, start


def test_empty_queue_assigns_nothing(sched):
    p = sched.processor()
    assert p.register()

    assert sched.dispatch() == []
    assert pending_ids(sched, p.id) == []
    audit_ok(sched)


def test_no_processor_leaves_the_task_queued(sched):
    h = sched.submit("add", 1)

    assert sched.dispatch() == []
    assert h.state == "queued"
    assert queue_ids(sched) == [h.id]
    audit_ok(sched)


def test_no_idle_processor_moves_nothing(sched):
    p = sched.processor(capacity=1)
    assert p.register()
    first = sched.submit("add", 0)
    assert sched.dispatch() == [(first.id, p.id)]
    waiting = [h.id for h in sched.submit_many("add", [(i,) for i in range(3)])]
    before = sched.client.lrange(sched.keys.queue("default"), 0, -1)

    assert sched.dispatch() == []

    # the very same list, same order: nothing was popped and pushed back
    assert sched.client.lrange(sched.keys.queue("default"), 0, -1) == before
    assert queue_ids(sched) == waiting
    assert sched.queue_lengths() == {"default": 3}
    assert pending_ids(sched, p.id) == [first.id]
    audit_ok(sched)


def test_least_loaded_processor_first(sched):
    busy = sched.processor(capacity=3, name="busy")
    assert busy.register()
    sched.submit_many("add", [(1,), (2,)])
    assert [pid for _, pid in sched.dispatch()] == [busy.id, busy.id]
    fresh = sched.processor(capacity=3, name="fresh")
    assert fresh.register()

    sched.submit_many("add", [(3,), (4,), (5,)])
    got = [pid for _, pid in sched.dispatch()]

    # fresh has 0 then 1 task: both go there; at 2 each, busy has been at 2 longer
    assert got == [fresh.id, fresh.id, busy.id]
    audit_ok(sched)


def test_ties_go_to_the_processor_idle_longest(sched):
    a = sched.processor(name="a")
    b = sched.processor(name="b")
    assert a.register() and b.register()  # a ranks first: registered (became idle) first
    sched.submit_many("add", [(1,), (2,)])
    assert sorted(pid for _, pid in sched.dispatch()) == sorted([a.id, b.id])
    ta, tb = start(sched, a.id).task, start(sched, b.id).task
    assert ack(sched, b.id, tb).status == "done"  # b becomes idle first
    assert ack(sched, a.id, ta).status == "done"

    h = sched.submit("add", 3)
    assert sched.dispatch() == [(h.id, b.id)]
    audit_ok(sched)


def test_equal_processors_share_a_batch_in_turn(sched):
    ps = [sched.processor(capacity=2, name=f"p{i}") for i in range(3)]
    for p in ps:
        assert p.register()
    sched.submit_many("add", [(i,) for i in range(6)])

    got = [pid for _, pid in sched.dispatch()]

    assert got == [p.id for p in ps] * 2
    audit_ok(sched)


def test_processor_serving_several_queues(sched):
    p = sched.processor(capacity=3, queues=("a", "b"))
    assert p.register()
    ha = sched.submit("add", 1, _queue="a")
    hb = sched.submit("add", 2, _queue="b")
    sched.submit("add", 3, _queue="c")  # nobody serves c

    got = sched.dispatch()

    assert sorted(got) == sorted([(ha.id, p.id), (hb.id, p.id)])
    assert sched.queue_lengths() == {"a": 0, "b": 0, "c": 1}
    # still idle (2/3) in both rankings, with its load in the score
    for q in ("a", "b"):
        assert int(sched.client.zscore(sched.keys.idle_rank(p.kind, q), p.id)) >> 40 == 2
    audit_ok(sched)


def test_full_processor_leaves_every_ranking(sched):
    p = sched.processor(capacity=1, queues=("a", "b"))
    assert p.register()
    sched.submit("add", _queue="b")

    assert len(sched.dispatch()) == 1

    for q in ("a", "b"):
        assert sched.client.zscore(sched.keys.idle_rank(p.kind, q), p.id) is None
    assert not sched.client.sismember(sched.keys.idle, p.id)
    audit_ok(sched)


def test_lapsed_processor_at_the_head_is_skipped(sched, clock):
    lapsing = sched.processor(lease=5, name="lapsing")
    live = sched.processor(lease=60, name="live")
    assert lapsing.register() and live.register()  # lapsing ranks first
    h = sched.submit("add")
    clock.advance(10)

    assert sched.dispatch() == [(h.id, live.id)]

    assert pending_ids(sched, lapsing.id) == []
    assert sched.client.zscore(sched.keys.idle_rank(lapsing.kind, "default"), lapsing.id) is None
    assert not sched.client.sismember(sched.keys.idle, lapsing.id)
    audit_ok(sched)


def test_only_lapsed_processors_leave_the_task_queued(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    h = sched.submit("add")
    clock.advance(6)

    assert sched.dispatch() == []
    assert queue_ids(sched) == [h.id]
    audit_ok(sched)


@pytest.mark.parametrize(("limit", "assigned"), [(1, 1), (3, 3), (10, 5)])
def test_limit_is_respected(sched, limit, assigned):
    p = sched.processor(capacity=10)
    assert p.register()
    sched.submit_many("add", [(i,) for i in range(5)])

    assert len(sched.dispatch(limit=limit)) == assigned
    assert sched.queue_lengths() == {"default": 5 - assigned}
    audit_ok(sched)


def test_limit_also_bounds_promotion_of_due_tasks(sched, clock):
    sched.submit_many("add", [(i,) for i in range(5)], delay=1)
    clock.advance(2)

    sched.dispatch(limit=2)

    assert sched.counts()["delayed"] == 3
    assert sched.queue_lengths() == {"default": 2}
    audit_ok(sched)


@pytest.mark.parametrize("limit", [2, 4, 6])
def test_round_robin_over_queues(sched, limit):
    p = sched.processor(capacity=20, queues=("a", "b"))
    assert p.register()
    sched.submit_many("add", [(i,) for i in range(10)], queue="a")
    sched.submit_many("add", [(i,) for i in range(10)], queue="b")

    got = sched.dispatch(limit=limit)

    queues = [_queue_of(sched, t) for t, _ in got]
    assert queues.count("a") == queues.count("b") == limit // 2
    audit_ok(sched)


def _queue_of(sched, task_id):
    return ops.text(sched.client.hget(sched.keys.task(task_id), TASK.queue))


def test_round_robin_keeps_fifo_within_each_queue(sched):
    p = sched.processor(capacity=20, queues=("a", "b"))
    assert p.register()
    a = [h.id for h in sched.submit_many("add", [(i,) for i in range(3)], queue="a")]
    b = [h.id for h in sched.submit_many("add", [(i,) for i in range(3)], queue="b")]

    got = [t for t, _ in sched.dispatch()]

    assert [t for t in got if t in a] == a
    assert [t for t in got if t in b] == b
    assert pending_ids(sched, p.id) == got
    audit_ok(sched)


def test_wake_token_per_assignment(sched):
    p = sched.processor(capacity=3)
    other = sched.processor(capacity=3, queues=("other",))
    assert p.register() and other.register()
    sched.submit_many("add", [(1,), (2,)])

    sched.dispatch()

    assert sched.client.lrange(sched.keys.processor_wake(p.id), 0, -1) == [b"1", b"1"]
    assert sched.client.llen(sched.keys.processor_wake(other.id)) == 0
    audit_ok(sched)


def test_dispatch_counts_and_last_dispatch_time(sched, clock):
    p = sched.processor(capacity=2)
    assert p.register()
    sched.submit_many("add", [(1,), (2,), (3,)])

    sched.dispatch()

    c = sched.counts()
    assert (c["queued"], c["assigned"], c["idle_processors"]) == (1, 2, 0)
    assert c["last_dispatch_ms"] == int(clock() * 1000)
    audit_ok(sched)


def test_dispatch_detail_reports_the_next_wake_up_times(sched, clock):
    now = int(clock() * 1000)
    p = sched.processor(capacity=2, lease=30)
    assert p.register()
    sched.submit("add", _delay=7)
    sched.submit("add", _timeout=4)
    sched.submit("add")  # no timeout: its +inf deadline is not reported
    sched.dispatch()
    start(sched, p.id, "a")
    start(sched, p.id, "b")

    d = sched.dispatch_detail()

    assert (d.now_ms, d.next_due_ms, d.next_lease_ms, d.next_deadline_ms) == (
        now, now + 7000, now + 30000, now + 4000)
    audit_ok(sched)


def test_dispatch_detail_without_deadlines(sched):
    p = sched.processor()
    assert p.register()
    sched.submit("add")  # no timeout
    sched.dispatch()
    assert start(sched, p.id).status == "task"

    d = sched.dispatch_detail()

    assert d.next_due_ms is None
    assert d.next_deadline_ms is None
    audit_ok(sched)


def test_dispatch_says_how_many_delayed_tasks_it_promoted(sched, clock):
    """The scheduler loop's summary line counts them ("promoted 2")."""
    sched.submit_many("add", [(1,), (2,)], delay=5)
    sched.submit("add", 3, _delay=60)
    assert sched.dispatch_detail().promoted == 0
    clock.advance(5)

    assert sched.dispatch_detail().promoted == 2
    assert sched.dispatch_detail().promoted == 0  # once
    audit_ok(sched)
