"""cancel.lua through TaskHandle.cancel: which states cancel, replays, and what result() says."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import ops

from .util import ack, audit_ok, error_json, pending_ids, queue_ids, start


def put_in(sched, state):
    """A task in ``state`` (with a live processor of capacity 2 where one is needed)."""
    p = sched.processor(capacity=2, lease=600)
    assert p.register()
    if state == "delayed":
        return sched.submit("add", _delay=60), p
    if state == "queued":
        return sched.submit("add", _queue="nobody-serves-this"), p
    h = sched.submit("add", _max_attempts=1)
    assert sched.dispatch() == [(h.id, p.id)]
    if state == "assigned":
        return h, p
    task = start(sched, p.id).task
    if state == "done":
        ack(sched, p.id, task, "done", "1")
    elif state == "failed":
        ack(sched, p.id, task, "error", error_json())
    assert h.state == state
    return h, p


@pytest.mark.parametrize("state", ["queued", "delayed", "assigned"])
def test_cancel_before_start(sched, state):
    h, _ = put_in(sched, state)

    assert h.cancel() is True

    assert h.state == "cancelled"
    c = sched.counts()
    assert (c["cancelled"], c["queued"], c["delayed"], c["assigned"]) == (1, 0, 0, 0)
    audit_ok(sched)


@pytest.mark.parametrize("state", ["running", "done", "failed"])
def test_cancel_after_start_is_refused(sched, state):
    h, _ = put_in(sched, state)
    before = sched.counts()

    assert h.cancel() is False

    assert h.state == state
    assert sched.counts() == before
    audit_ok(sched)


def test_cancel_of_an_assigned_task_frees_the_slot(sched):
    p = sched.processor(capacity=1)
    assert p.register()
    a, b = sched.submit("add"), sched.submit("add")
    assert sched.dispatch() == [(a.id, p.id)]

    assert a.cancel() is True

    assert pending_ids(sched, p.id) == []
    assert sched.client.llen(sched.keys.processor_wake(p.id)) == 0
    assert sched.client.sismember(sched.keys.idle, p.id)
    assert sched.dispatch() == [(b.id, p.id)]
    audit_ok(sched)


def test_cancel_removes_only_that_task_from_the_queue(sched):
    a, b, c = sched.submit_many("add", [(1,), (2,), (3,)])

    assert b.cancel() is True

    assert queue_ids(sched) == [a.id, c.id]
    audit_ok(sched)


def test_cancelled_delayed_task_is_not_promoted(sched, clock):
    h = sched.submit("add", _delay=5)
    assert h.cancel() is True
    clock.advance(10)

    sched.dispatch()

    assert h.state == "cancelled"
    assert sched.queue_lengths() == {"default": 0}
    audit_ok(sched)


def test_double_cancel(sched):
    h = sched.submit("add")

    assert h.cancel() is True
    assert h.cancel() is False
    assert sched.counts()["cancelled"] == 1
    audit_ok(sched)


def test_cancel_of_an_unknown_id(sched):
    with pytest.raises(luasched.TaskNotFound) as missing:
        sched.handle("never-made").cancel()
    assert missing.value.task_id == "never-made"
    audit_ok(sched)


def test_replayed_cancel_call_still_reports_cancelled(sched):
    h = sched.submit("add")
    call = ops.cancel(sched.ns, sched.now_ms(), h.id, "rid-c")

    assert ops.decode_cancel(sched.call(call), h.id) is True
    assert ops.decode_cancel(sched.call(call), h.id) is True

    assert sched.counts()["cancelled"] == 1
    assert h.state == "cancelled"
    audit_ok(sched)


def test_result_of_a_cancelled_task_raises(sched):
    h = sched.submit("add")
    h.cancel()

    with pytest.raises(luasched.TaskCancelled) as cancelled:
        h.result(timeout=1)
    assert cancelled.value.task_id == h.id
    assert sched.outcome(h.id).state == "cancelled"


def test_cancel_counts_in_the_group(sched):
    g = sched.map("add", [(1,), (2,)])

    assert g.handles[0].cancel() is True

    assert g.progress() == {"total": 2, "done": 0, "failed": 0, "cancelled": 1, "pending": 1}
    audit_ok(sched)


def test_an_abandoned_wait_can_cancel_its_task(sched):
    kept, dropped = sched.submit("add", 1), sched.submit("add", 2)
    with pytest.raises(luasched.ResultTimeout):
        kept.result(timeout=0.05)
    with pytest.raises(luasched.ResultTimeout):
        dropped.result(timeout=0.05, cancel_if_abandoned=True)
    assert (kept.state, dropped.state) == ("queued", "cancelled")
