"""reap.lua through Scheduler.reap: lapsed processors and attempts past their timeout."""

from __future__ import annotations

import json

import pytest

import luasched
from luasched.core.fields import TASK
from luasched.core.replies import Lapsed, Overdue

from .util import ack, audit_ok, delayed_due_ms, queue_ids, record, start


def test_nothing_to_reap(sched, clock):
    p = sched.processor(lease=10)
    assert p.register()
    sched.submit("add")
    sched.dispatch()
    clock.advance(9)

    assert sched.reap() == []
    assert sched.counts()["processors"] == 1
    audit_ok(sched)


def test_lapsed_processor_gives_its_inbox_back(sched, clock):
    p = sched.processor(capacity=3, lease=5)
    assert p.register()
    t1, t2, t3 = sched.submit_many("add", [(1,), (2,), (3,)])
    t4 = sched.submit("add", 4)
    assert len(sched.dispatch()) == 3
    assert start(sched, p.id).task.id == t1.id
    clock.advance(6)

    taken = sched.reap()

    assert sorted(taken) == sorted([t1.id, t2.id, t3.id])
    # what the scheduler loop logs: which processor, the ids it gave back (pending, then started)
    assert taken.lapsed == [Lapsed(p.id, [t2.id, t3.id, t1.id], 0)] and taken.overdue == []
    # the started one used its attempt and goes first; pending ones follow in order, before t4
    assert queue_ids(sched) == [t1.id, t2.id, t3.id, t4.id]
    assert [record(sched, t.id)[TASK.attempts] for t in (t1, t2, t3)] == ["1", "0", "0"]
    assert json.loads(record(sched, t1.id)[TASK.error])["type"] == "LeaseLost"
    assert all(t.state == "queued" for t in (t1, t2, t3))
    assert all(TASK.processor not in record(sched, t.id) for t in (t1, t2, t3))
    audit_ok(sched)


def test_reaped_processor_is_removed(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    sched.submit("add")
    sched.dispatch()
    clock.advance(6)

    assert len(sched.reap()) == 1

    assert sched.client.zscore(sched.keys.procs, p.id) is None
    for key in (sched.keys.processor(p.id), sched.keys.inbox(p.id), sched.keys.inbox_running(p.id),
                sched.keys.processor_wake(p.id)):
        assert not sched.client.exists(key), key
    assert not sched.client.sismember(sched.keys.idle, p.id)
    c = sched.counts()
    assert (c["processors"], c["lapsed_processors"], c["assigned"], c["queued"]) == (0, 0, 0, 1)
    audit_ok(sched)


def test_started_task_on_its_last_attempt_fails(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    h = sched.submit("add", _max_attempts=1)
    sched.dispatch()
    start(sched, p.id)
    clock.advance(6)

    taken = sched.reap()
    assert taken == [h.id]
    assert taken.lapsed == [Lapsed(p.id, [h.id], 1)]  # its last attempt: a dead letter

    assert h.state == "failed"
    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)
    assert failed.value.error_type == "LeaseLost"
    assert p.id in failed.value.message
    assert sched.counts()["failed"] == 1
    audit_ok(sched)


@pytest.mark.parametrize("when", ["lapsed", "reaped"])
def test_heartbeat_of_a_lapsed_or_reaped_processor_is_false(sched, clock, when):
    p = sched.processor(lease=5)
    assert p.register()
    clock.advance(6)
    if when == "reaped":
        sched.reap()
        assert sched.counts()["processors"] == 0

    assert p.heartbeat() is False
    assert sched.counts()["processors"] == (1 if when == "lapsed" else 0)
    audit_ok(sched)


def test_heartbeat_keeps_a_processor_from_being_reaped(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    h = sched.submit("add")
    sched.dispatch()
    for _ in range(4):
        clock.advance(4)
        assert p.heartbeat() is True

    assert sched.reap() == []
    assert h.state == "assigned"
    audit_ok(sched)


def test_reap_is_bounded_by_limit(sched, clock):
    ps = [sched.processor(lease=5, name=f"p{i}") for i in range(5)]
    for p in ps:
        assert p.register()
    handles = sched.submit_many("add", [(i,) for i in range(5)])
    assert len(sched.dispatch()) == 5
    clock.advance(6)

    batches = []
    while batch := sched.reap(limit=2):
        assert len(batch) <= 2
        batches.append(batch)
        audit_ok(sched)

    assert [len(b) for b in batches] == [2, 2, 1]
    lapsed = [lp for b in batches for lp in b.lapsed]
    assert sorted(lp.processor for lp in lapsed) == sorted(p.id for p in ps)
    assert all(len(lp.task_ids) == 1 for lp in lapsed)
    assert sorted(t for b in batches for t in b) == sorted(h.id for h in handles)
    assert sched.counts()["processors"] == 0
    assert sched.queue_lengths() == {"default": 5}


def test_looping_reap_removes_every_lapsed_processor_even_with_empty_inboxes(sched, clock):
    """Regression: reap used to answer [] after removing one empty lapsed processor, so
    ``while sched.reap(): pass`` stopped with lapsed processors still registered."""
    ps = [sched.processor(lease=5, name=f"idle{i}") for i in range(3)]
    for p in ps:
        assert p.register()
    clock.advance(6)

    replies = []
    while reply := sched.reap(limit=1):
        replies.append(reply)

    assert all(list(r) == [] for r in replies)
    assert sorted(pid for r in replies for pid in r.processors) == sorted(p.id for p in ps)
    c = sched.counts()
    assert (c["processors"], c["lapsed_processors"]) == (0, 0)
    audit_ok(sched)


def test_reap_says_when_more_remains(sched, clock):
    for i in range(2):
        assert sched.processor(lease=5, name=f"p{i}").register()
    clock.advance(6)

    first = sched.reap(limit=1)
    second = sched.reap(limit=1)

    assert (len(first.processors), first.more) == (1, True)
    assert (len(second.processors), second.more) == (1, False)
    assert not sched.reap(limit=1)


def test_task_past_its_timeout_is_taken_back_and_retried_with_backoff(sched, clock):
    p = sched.processor(lease=600)
    assert p.register()
    h = sched.submit("add", _timeout=5, _retry_backoff=3)
    sched.dispatch()
    task = start(sched, p.id).task
    clock.advance(5)
    assert sched.reap() == []  # at the deadline, not past it
    clock.advance(0.001)

    taken = sched.reap()
    assert taken == [h.id]

    assert h.state == "delayed"
    assert delayed_due_ms(sched, h.id) == int(clock() * 1000) + 3000
    assert (taken.lapsed, taken.overdue) == ([], [Overdue(h.id, p.id, 5000, 3000)])  # as the loop logs it
    err = json.loads(record(sched, h.id)[TASK.error])
    assert err["type"] == "TaskTimeout" and "5000 ms" in err["message"]
    assert sched.client.sismember(sched.keys.idle, p.id)  # its slot is free again
    audit_ok(sched)

    assert ack(sched, p.id, task, "done", "1").status == "stale"  # the late ack
    assert h.state == "delayed"
    audit_ok(sched)

    clock.advance(3)
    assert sched.dispatch() == [(h.id, p.id)]
    assert start(sched, p.id).task.attempt == 2
    audit_ok(sched)


def test_task_past_its_timeout_on_its_last_attempt_fails(sched, clock):
    p = sched.processor(lease=600)
    assert p.register()
    h = sched.submit("add", _timeout=1, _max_attempts=1)
    sched.dispatch()
    task = start(sched, p.id).task
    clock.advance(2)

    taken = sched.reap()
    assert taken == [h.id] and taken.overdue == [Overdue(h.id, p.id, 1000, None)]  # failed for good

    assert h.state == "failed"
    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)
    assert failed.value.error_type == "TaskTimeout"
    assert ack(sched, p.id, task, "done", "1").status == "stale"
    assert h.state == "failed"
    audit_ok(sched)


def test_task_without_timeout_is_never_taken_back_from_a_live_processor(sched, clock):
    p = sched.processor(lease=600)
    assert p.register()
    h = sched.submit("add")
    sched.dispatch()
    start(sched, p.id)
    clock.advance(500)

    assert sched.reap() == []
    assert h.state == "running"
    audit_ok(sched)


def test_reap_wakes_the_scheduler_loops(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    sched.submit("add")
    sched.dispatch()
    sched.client.delete(sched.keys.wake)
    clock.advance(6)

    sched.reap()

    assert sched.client.llen(sched.keys.wake) == 1
