"""start.lua and ack.lua: starting inbox tasks, fenced acks, replays, retries, next-task modes."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import luasched
from luasched.core import ops
from luasched.core.fields import PROCESSOR, TASK
from luasched.core.replies import Ended
from luasched.core.tasks import new_request_id

from .util import (
    ack,
    audit_ok,
    delayed_due_ms,
    error_json,
    pending_ids,
    queue_ids,
    record,
    running_ids,
    snapshot,
    start,
)


@pytest.fixture
def proc(sched):
    p = sched.processor(capacity=2, lease=60)
    assert p.register()
    return p


def assigned(sched, proc, n=1, **options):
    handles = [sched.submit("add", i, **options) for i in range(n)]
    assert len(sched.dispatch()) == n
    return handles


def test_start_on_an_empty_inbox(sched, proc):
    assert start(sched, proc.id) == ops.StartReply("empty", None)
    assert proc.process_available() == 0
    audit_ok(sched)


def test_start_takes_the_oldest_and_counts_an_attempt(sched, proc, clock):
    a, b = assigned(sched, proc, 2, _timeout=3)

    got = start(sched, proc.id)

    assert got.status == "task"
    assert (got.task.id, got.task.name, got.task.attempt, got.task.timeout_ms) == (a.id, "add", 1, 3000)
    assert json.loads(got.task.args_json) == [0]
    assert (a.state, b.state) == ("running", "assigned")
    assert pending_ids(sched, proc.id) == [b.id]
    assert running_ids(sched, proc.id) == [a.id]
    now = int(clock() * 1000)
    assert int(sched.client.zscore(sched.keys.running, a.id)) == now + 3000
    assert record(sched, a.id)[TASK.started_ms] == str(now)
    audit_ok(sched)


def test_start_trims_the_wake_tokens_to_the_pending_count(sched, proc):
    assigned(sched, proc, 2)
    assert sched.client.llen(sched.keys.processor_wake(proc.id)) == 2

    start(sched, proc.id)
    assert sched.client.llen(sched.keys.processor_wake(proc.id)) == 1
    start(sched, proc.id, "s1")
    assert sched.client.llen(sched.keys.processor_wake(proc.id)) == 0
    audit_ok(sched)


def test_start_for_an_unknown_processor_is_lost(sched):
    assert start(sched, "nobody").status == "lost"
    audit_ok(sched)


def test_start_for_a_lapsed_processor_is_lost_and_its_task_stays(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    (h,) = assigned(sched, p)
    clock.advance(6)

    assert start(sched, p.id).status == "lost"
    assert h.state == "assigned"
    assert pending_ids(sched, p.id) == [h.id]
    audit_ok(sched)


def test_ack_done_stores_the_result(sched, proc):
    (h,) = assigned(sched, proc)
    task = start(sched, proc.id).task

    reply = ack(sched, proc.id, task, "done", json.dumps({"sum": 3}))

    assert reply == ops.AckReply("done", None)
    assert h.result(timeout=1) == {"sum": 3}
    out = sched.outcome(h.id)
    assert (out.state, out.processor) == ("done", proc.id)
    assert running_ids(sched, proc.id) == []
    assert sched.client.zscore(sched.keys.running, h.id) is None
    assert sched.counts()["done"] == 1
    audit_ok(sched)


@pytest.mark.parametrize("case", ["wrong attempt", "older attempt", "wrong processor", "already finished",
                                  "unknown task"])
def test_fenced_ack_is_stale_and_changes_nothing(sched, proc, case):
    other = sched.processor(lease=60)
    assert other.register()
    (h,) = assigned(sched, proc)
    task = start(sched, proc.id).task
    pid = proc.id
    if case == "wrong attempt":
        task = dataclasses.replace(task, attempt=task.attempt + 1)
    elif case == "older attempt":
        task = dataclasses.replace(task, attempt=0)
    elif case == "wrong processor":
        pid = other.id
    elif case == "already finished":
        assert ack(sched, pid, task, "done", "1").status == "done"
    else:
        task = dataclasses.replace(task, id="no-such-task")
    before = snapshot(sched, h.id)

    assert ack(sched, pid, task, "done", "999").status == "stale"
    assert ack(sched, pid, task, "error", error_json()).status == "stale"

    assert snapshot(sched, h.id) == before
    audit_ok(sched)


def test_replayed_start_answers_the_same_and_changes_nothing(sched, proc):
    a, b = assigned(sched, proc, 2)
    call = ops.start(sched.ns, sched.now_ms(), proc.id, "s0", "rid-1")

    first = ops.decode_start(sched.call(call))
    after_first = snapshot(sched, a.id, b.id)
    second = ops.decode_start(sched.call(call))

    assert first.status == "task" and first.task.id == a.id
    assert second == first
    assert snapshot(sched, a.id, b.id) == after_first
    assert pending_ids(sched, proc.id) == [b.id]
    audit_ok(sched)


def test_replayed_empty_start_stays_empty(sched, proc):
    call = ops.start(sched.ns, sched.now_ms(), proc.id, "s0", "rid-1")
    assert ops.decode_start(sched.call(call)).status == "empty"
    (h,) = assigned(sched, proc)

    assert ops.decode_start(sched.call(call)).status == "empty"
    assert h.state == "assigned"
    audit_ok(sched)


@pytest.mark.parametrize("outcome", ["done", "error"])
def test_replayed_ack_answers_the_same_and_changes_nothing(sched, proc, outcome):
    a, b = assigned(sched, proc, 2)
    task = start(sched, proc.id).task
    payload = "42" if outcome == "done" else error_json()
    call = ops.ack(sched.ns, sched.now_ms(), proc.id, "s0", "rid-7", task, outcome, payload, ops.NEXT_INBOX)

    first = ops.decode_ack(sched.call(call))
    after_first = snapshot(sched, a.id, b.id)
    second = ops.decode_ack(sched.call(call))

    assert first.status == ("done" if outcome == "done" else "retry")
    assert first.next is not None and first.next.id == b.id
    assert second == first
    assert first.ended == ({} if outcome == "done" else {a.id: Ended(1000, 3)})
    assert second.ended == {}  # a replay does not say again how the attempt ended
    assert snapshot(sched, a.id, b.id) == after_first
    audit_ok(sched)


def test_replayed_ack_without_next_task(sched, proc):
    (h,) = assigned(sched, proc)
    task = start(sched, proc.id).task
    call = ops.ack(sched.ns, sched.now_ms(), proc.id, "s0", "rid-8", task, "done", "1", ops.NEXT_INBOX)

    assert ops.decode_ack(sched.call(call)) == ops.AckReply("done", None)
    assert ops.decode_ack(sched.call(call)) == ops.AckReply("done", None)
    assert sched.counts()["done"] == 1
    audit_ok(sched)


def test_an_ack_and_the_start_after_it_replayed_in_turn_both_answer_as_before(sched, proc):
    """A slot pipelines ack + BLPOP + start; when the reply is lost it sends the ack, then the
    start again. Both ran: the ack's replay must not overwrite the start's memo, or the start's
    replay would start nothing while the task it started stays running on the slot for good."""
    a, b = assigned(sched, proc, 2)
    task = start(sched, proc.id).task
    ack_call = ops.ack(sched.ns, sched.now_ms(), proc.id, "s0", "rid-ack", task, "done", "1", ops.NEXT_NONE)
    start_call = ops.start(sched.ns, sched.now_ms(), proc.id, "s0", "rid-start")
    first_ack = ops.decode_ack(sched.call(ack_call))
    first_start = ops.decode_start(sched.call(start_call))
    assert first_ack.status == "done" and first_start.task.id == b.id
    after = snapshot(sched, a.id, b.id)

    assert ops.decode_ack(sched.call(ack_call)) == first_ack
    assert ops.decode_start(sched.call(start_call)) == first_start
    assert snapshot(sched, a.id, b.id) == after
    audit_ok(sched)


def test_error_retries_with_exponential_backoff_then_fails(sched, clock):
    calls = []

    @sched.task(max_attempts=3, retry_backoff=2)
    def flaky():
        calls.append(1)
        raise ValueError(f"boom {len(calls)}")

    p = sched.processor(lease=600)
    assert p.register()
    h = sched.submit(flaky)

    for attempt in (1, 2):
        assert sched.dispatch() == [(h.id, p.id)]
        assert p.process_available() == 1
        assert h.state == "delayed"
        backoff_ms = 2000 * 2 ** (attempt - 1)
        assert delayed_due_ms(sched, h.id) == int(clock() * 1000) + backoff_ms
        assert json.loads(record(sched, h.id)[TASK.error])["message"] == f"boom {attempt}"
        audit_ok(sched)
        clock.advance(backoff_ms / 1000 - 0.001)
        assert sched.dispatch() == []  # not due yet
        clock.advance(0.001)

    assert sched.dispatch() == [(h.id, p.id)]
    assert p.process_available() == 1
    assert h.state == "failed"
    assert len(calls) == 3
    assert sched.client.zscore(sched.keys.failed, h.id) is not None
    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)
    assert failed.value.error_type == "ValueError"
    assert failed.value.message == "boom 3"
    assert "raise ValueError" in failed.value.traceback
    assert failed.value.task_id == h.id
    assert sched.counts()["failed"] == 1
    audit_ok(sched)


def test_backoff_doubles_per_attempt_through_the_script(sched, proc, clock):
    (h,) = assigned(sched, proc, _max_attempts=5, _retry_backoff=0.5)
    dues = []
    for _ in range(4):
        task = start(sched, proc.id).task
        reply = ack(sched, proc.id, task, "error", error_json())
        assert reply.status == "retry"
        dues.append(delayed_due_ms(sched, h.id) - int(clock() * 1000))
        # what the processor logs ("retry 2/5 in 0.50 s") is the delay the script scheduled
        assert reply.ended == {h.id: Ended(dues[-1], 5)}
        clock.advance(dues[-1] / 1000)
        assert sched.dispatch() == [(h.id, proc.id)]
    assert dues == [500, 1000, 2000, 4000]
    task = start(sched, proc.id).task
    assert task.attempt == 5
    last = ack(sched, proc.id, task, "error", error_json("last"))
    assert last.status == "failed" and last.ended == {h.id: Ended(None, 5)}
    audit_ok(sched)


def test_backoff_is_capped_at_an_hour(sched, proc, clock):
    (h,) = assigned(sched, proc, _retry_backoff=10_000)
    task = start(sched, proc.id).task

    reply = ack(sched, proc.id, task, "error", error_json())
    assert reply.status == "retry" and reply.ended[h.id].retry_in_ms == 3_600_000

    assert delayed_due_ms(sched, h.id) == int(clock() * 1000) + 3_600_000
    audit_ok(sched)


def test_zero_backoff_retries_at_once(sched, proc):
    (h,) = assigned(sched, proc, _retry_backoff=0)
    task = start(sched, proc.id).task

    reply = ack(sched, proc.id, task, "error", error_json())
    assert reply.status == "retry" and reply.ended == {h.id: Ended(0, 3)}

    assert sched.dispatch() == [(h.id, proc.id)]
    audit_ok(sched)


def test_ack_next_inbox_starts_the_next_task_in_the_same_call(sched, proc):
    a, b = assigned(sched, proc, 2)
    task = start(sched, proc.id).task

    reply = ack(sched, proc.id, task, "done", "1", ops.NEXT_INBOX)

    assert reply.status == "done"
    assert reply.next.id == b.id and reply.next.attempt == 1
    assert (a.state, b.state) == ("done", "running")
    assert pending_ids(sched, proc.id) == []
    assert running_ids(sched, proc.id) == [b.id]
    audit_ok(sched)


def test_ack_next_inbox_does_not_take_from_the_queue(sched):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    (a,) = assigned(sched, p)
    b = sched.submit("add")
    task = start(sched, p.id).task

    assert ack(sched, p.id, task, "done", "1", ops.NEXT_INBOX) == ops.AckReply("done", None)
    assert b.state == "queued"
    assert sched.client.llen(sched.keys.wake) == 1  # a slot came free: a scheduler is woken
    audit_ok(sched)


def test_ack_take_next_takes_from_the_queue_when_the_inbox_is_empty(sched):
    p = sched.processor(capacity=1, lease=60, take_next=True)
    assert p.register()
    (a,) = assigned(sched, p)
    b, c = sched.submit("add"), sched.submit("add")
    task = start(sched, p.id).task

    reply = ack(sched, p.id, task, "done", "1", ops.NEXT_TAKE)

    assert reply.status == "done"
    assert reply.next.id == b.id
    assert (a.state, b.state, c.state) == ("done", "running", "queued")
    assert running_ids(sched, p.id) == [b.id]
    assert queue_ids(sched) == [c.id]
    audit_ok(sched)


def test_ack_take_next_prefers_the_inbox(sched, proc):
    a, b = assigned(sched, proc, 2)
    c = sched.submit("add")
    task = start(sched, proc.id).task

    reply = ack(sched, proc.id, task, "done", "1", ops.NEXT_TAKE)

    assert reply.next.id == b.id
    assert c.state == "queued"
    audit_ok(sched)


def test_processor_in_take_next_mode_runs_the_queue(sched):
    seen = []

    @sched.task
    def note(i):
        seen.append(i)
        return i

    p = sched.processor(capacity=1, take_next=True)
    assert p.register()
    handles = sched.submit_many(note, [(i,) for i in range(3)])
    assert len(sched.dispatch()) == 1
    p.start()
    try:
        assert [h.result(timeout=10) for h in handles] == [0, 1, 2]
    finally:
        assert p.stop(timeout=10)
    assert seen == [0, 1, 2]
    audit_ok(sched)


def test_stale_ack_in_take_next_mode_stays_within_capacity(sched, clock):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    (h,) = assigned(sched, p, _timeout=5, _retry_backoff=0)
    first = start(sched, p.id).task
    clock.advance(6)
    assert sched.reap() == [h.id]  # attempt 1 timed out: back to delayed
    assert sched.dispatch() == []  # its slot is still in attempt 1's call: p stays full (1/1)
    waiting = sched.submit("add")

    # the late ack of attempt 1 is stale and frees the slot; the slot takes one task, no more
    reply = ack(sched, p.id, first, "done", "1", ops.NEXT_TAKE)
    assert reply.status == "stale"
    assert [t.id for t in reply.started] == [h.id]  # promoted by the dispatch above, queued first
    assert waiting.state == "queued"
    audit_ok(sched)


def test_take_next_serves_the_processors_queues_in_turn(sched):
    p = sched.processor(capacity=1, queues=("a", "b"), lease=60, take_next=True)
    assert p.register()
    for _ in range(3):
        sched.submit("add", _queue="a")
        sched.submit("add", _queue="b")
    assert len(sched.dispatch(1)) == 1  # whichever queue dispatch served first
    task = start(sched, p.id).task

    taken = []
    for _ in range(4):
        task = ack(sched, p.id, task, "done", "1", ops.NEXT_TAKE).next
        taken.append(record(sched, task.id)[TASK.queue])

    assert sorted(taken) == ["a", "a", "b", "b"], taken
    assert taken[0] != taken[1] and taken[2] != taken[3], taken
    audit_ok(sched)


def _lease_in_record(sched, pid):
    return sched.client.hget(sched.keys.processor(pid), PROCESSOR.deadline_ms)


def test_a_renewed_lease_counts_for_dispatch_start_and_take_next(sched, clock):
    # dispatch, start and ack read the lease from the processor's record (one HMGET with its
    # capacity), so every renewal must reach the record as well as the registry
    p = sched.processor(capacity=2, lease=5)
    assert p.register()
    clock.advance(4)
    assert p.heartbeat()
    clock.advance(4)  # past the first lease, inside the renewed one
    a, b = sched.submit("add", 1), sched.submit("add", 2)
    assert int(_lease_in_record(sched, p.id)) == int(sched.client.zscore(sched.keys.procs, p.id))

    assert sched.dispatch(limit=1) == [(a.id, p.id)]
    task = start(sched, p.id).task
    assert task.id == a.id
    reply = ack(sched, p.id, task, next_mode=ops.NEXT_TAKE)
    assert (reply.status, reply.next.id) == ("done", b.id)
    audit_ok(sched)

    clock.advance(2)  # now past the renewed lease too
    c = sched.submit("add", 3)
    assert ack(sched, p.id, reply.next, next_mode=ops.NEXT_TAKE) == ops.AckReply("done", None)
    assert sched.dispatch() == []
    assert queue_ids(sched) == [c.id]


def test_a_record_written_before_the_lease_field_asks_the_registry(sched, clock):
    # processors registered by an earlier version have no dl in their record, and no card
    lapsing = sched.processor(lease=5, name="lapsing")
    live = sched.processor(capacity=2, lease=60, name="live")
    assert lapsing.register() and live.register()
    for p in (lapsing, live):
        sched.client.hdel(sched.keys.processor(p.id), "dl")
        sched.client.hdel(sched.keys.cards, p.id)
    a = sched.submit("add", 1)
    clock.advance(10)

    assert sched.dispatch() == [(a.id, live.id)]
    assert start(sched, lapsing.id).status == "lost"
    task = start(sched, live.id).task
    b = sched.submit("add", 2)
    assert ack(sched, live.id, task, next_mode=ops.NEXT_TAKE).next.id == b.id
    audit_ok(sched)


@pytest.mark.parametrize("mode", ["3", "", "PLACE", "next"])
def test_ack_refuses_a_next_mode_it_does_not_know(sched, mode):
    p = sched.processor()
    assert p.register()
    sched.submit("add")
    sched.dispatch()
    task = start(sched, p.id).task
    call = ops.ack(sched.ns, sched.now_ms(), p.id, "s0", new_request_id(), task, "done", "1", ops.NEXT_NONE)
    bad = ops.Call("ack", call.keys, (*call.args[:6], mode, *call.args[7:]))

    with pytest.raises(luasched.ScriptError, match=re.escape("next must be none|inbox|take|place")):
        sched.call(bad)

    assert running_ids(sched, p.id) == [task.id]  # nothing written
    audit_ok(sched)
