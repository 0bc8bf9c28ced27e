"""A task's timeline: when it was placed (every path that places), the attempts that ended without
finishing it (retry, timeout, lease lapse, deregister, a revived dead letter), the log's cap, and
what the happy path does not write."""

from __future__ import annotations

import luasched
from luasched.core import ops
from luasched.core.fields import TASK
from luasched.core.timeline import ATTEMPTS_KEPT, Attempt

from .util import ack, audit_ok, error_json, raw_record, start

T0 = 1_700_000_000_000  # the FakeClock's start, ms


def registered(sched: luasched.Scheduler, **options: object) -> luasched.Processor:
    """A registered processor of one slot (lease: 10 min unless given), not running."""
    p = sched.processor(**({"capacity": 1, "lease": 600} | options))  # type: ignore[arg-type]
    assert p.register()
    return p


def events(sched: luasched.Scheduler, task_id: str) -> list[tuple[int, str, str]]:
    """(ms after T0, event, processor) of each timeline event."""
    return [(e.at_ms - T0, e.event, e.processor) for e in sched.task_record(task_id).timeline()]


def test_the_happy_path_records_its_placing_and_writes_no_log(sched, clock):
    p = registered(sched)
    h = sched.submit("add", 1, 2)
    assert {TASK.placed_ms, TASK.attempts_log} & set(raw_record(sched, h.id)) == set()  # a queued record: as before
    clock.advance(1)
    assert sched.dispatch() == [(h.id, p.id)]
    clock.advance(2)
    task = start(sched, p.id).task
    clock.advance(3)
    ack(sched, p.id, task, "done", "3")

    raw = raw_record(sched, h.id)
    assert raw[TASK.placed_ms] == str(T0 + 1000) and TASK.attempts_log not in raw
    found = sched.task_record(h.id)
    assert found.placed_ms == T0 + 1000 and found.history == ()
    assert events(sched, h.id) == [(0, "created", ""), (1000, "placed", p.id), (3000, "started", p.id),
                                   (6000, "finished", p.id)]
    assert found.timeline()[-1].detail == "done"
    audit_ok(sched)


def test_a_retry_logs_the_attempt_with_its_error_and_the_next_one_follows(sched, clock):
    p = registered(sched)
    h = sched.submit("add", 1, 2, _retry_backoff=2)
    clock.advance(1)
    sched.dispatch()
    clock.advance(1)
    task = start(sched, p.id).task
    clock.advance(1)
    ack(sched, p.id, task, "error", error_json("chunk 7:\ncorrupt"))

    found = sched.task_record(h.id)
    assert found.state == "delayed" and found.placed_ms == 0 and found.last_processor == p.id
    assert found.history == (Attempt(1, T0 + 1000, T0 + 2000, T0 + 3000, p.id, "error", T0 + 5000, "ValueError",
                                     "chunk 7: corrupt"),)
    clock.advance(2)
    sched.dispatch()  # promotes the retry, places it
    clock.advance(1)
    task = start(sched, p.id).task
    assert task.attempt == 2
    ack(sched, p.id, task, "done", "3")
    assert events(sched, h.id) == [
        (0, "created", ""), (1000, "placed", p.id), (2000, "started", p.id), (3000, "ended", p.id),
        (5000, "retry due", ""), (5000, "placed", p.id), (6000, "started", p.id), (6000, "finished", p.id)]
    ended = sched.task_record(h.id).timeline()[3]
    assert ended.detail == "attempt 1 error, retried (ValueError: chunk 7: corrupt)"
    audit_ok(sched)


def test_reap_logs_a_timeout_and_a_lease_lapse(sched, clock):
    slow = registered(sched)
    late = sched.submit("add", 1, _timeout=5)
    sched.dispatch()
    start(sched, slow.id)
    clock.advance(6)
    sched.reap()
    (timed_out,) = sched.task_record(late.id).history
    assert (timed_out.ended, timed_out.error_type, timed_out.processor) == ("timeout", "TaskTimeout", slow.id)
    assert timed_out.due_ms == T0 + 6000 + 1000  # its backoff: the default second

    lost = sched.submit("add", 2, _queue="other")
    gone_on = registered(sched, lease=5, queues=("other",))
    sched.dispatch()
    start(sched, gone_on.id)
    clock.advance(6)
    sched.reap()
    found = sched.task_record(lost.id)
    (lapsed,) = found.history
    assert (lapsed.ended, lapsed.error_type, lapsed.due_ms) == ("lease", "LeaseLost", 0)
    assert found.state == "queued" and found.placed_ms == 0 and found.last_processor == gone_on.id


def test_a_deregistered_processor_logs_its_running_attempt(sched, clock):
    p = registered(sched)
    h = sched.submit("add", 1)
    sched.dispatch()
    start(sched, p.id)
    clock.advance(1)
    p.deregister()
    (left,) = sched.task_record(h.id).history
    assert (left.ended, left.ended_ms, left.due_ms) == ("deregistered", T0 + 1000, 0)


def test_the_log_keeps_the_last_attempts_and_one_line_texts_cut_whole(sched, clock):
    p = registered(sched, lease=100_000)
    h = sched.submit("add", 1, _max_attempts=ATTEMPTS_KEPT + 6, _retry_backoff=0.001)
    for n in range(1, ATTEMPTS_KEPT + 6):
        clock.advance(3600)  # the longest backoff
        sched.dispatch()
        task = start(sched, p.id).task
        assert task.attempt == n
        ack(sched, p.id, task, "error", error_json(f"{n}" + "é" * 150 + "\x1e\x1f"))
    history = sched.task_record(h.id).history
    assert [a.attempt for a in history] == list(range(6, ATTEMPTS_KEPT + 6))
    last = history[-1]
    assert len(last.error_message.encode()) <= 200 and last.error_message == "25" + "é" * 99
    assert sched.task_record(h.id).state == "delayed"
    audit_ok(sched)


def test_a_revived_dead_letter_logs_its_last_attempt(sched, clock):
    p = registered(sched)
    h = sched.submit("add", 1, _max_attempts=1)
    sched.dispatch()
    task = start(sched, p.id).task
    clock.advance(1)
    ack(sched, p.id, task, "error", error_json("no"))
    assert sched.task_record(h.id).history == ()  # a failed task: its record says the rest
    clock.advance(1)
    assert sched.retry_failed([h.id]) == [h.id]
    found = sched.task_record(h.id)
    assert found.history == (Attempt(1, T0, T0, T0 + 1000, p.id, "failed", T0 + 2000, "ValueError", "no"),)
    assert found.placed_ms == 0 and found.ready_ms == T0 + 2000
    assert [e.event for e in found.timeline()] == ["created", "placed", "started", "ended", "revived"]
    audit_ok(sched)


def test_placed_at_once_by_submit_by_take_and_by_the_acking_slot(make_sched, clock):
    sched = make_sched(clock=clock, dispatch_on_submit=True)
    p = registered(sched)
    first = sched.submit("add", 1)  # submit places it at once
    assert sched.task_record(first.id).placed_ms == T0
    task = start(sched, p.id).task
    second = sched.submit("add", 2)  # queued: the processor is full
    clock.advance(1)
    reply = ack(sched, p.id, task, "done", "1", next_mode=ops.NEXT_PLACE)  # the acking slot starts it at once
    assert [t.id for t in reply.started] == [second.id]
    found = sched.task_record(second.id)
    assert found.placed_ms == found.started_ms == T0 + 1000 and found.processor == p.id
    third = sched.submit("add", 3)
    clock.advance(1)
    reply = ack(sched, p.id, reply.started[0], "done", "2", next_mode=ops.NEXT_TAKE)  # take-next
    assert [t.id for t in reply.started] == [third.id]
    found = sched.task_record(third.id)
    assert found.placed_ms == found.started_ms == T0 + 2000
    audit_ok(sched)


def test_waiting_for_a_parent_shows_when_it_became_ready(sched, clock):
    p = registered(sched)
    parent = sched.submit("add", 1)
    child = sched.submit("add", 2, _after=[parent])
    sched.dispatch()
    task = start(sched, p.id).task
    clock.advance(4)
    ack(sched, p.id, task, "done", "1")
    found = sched.task_record(child.id)
    assert found.parents == (f"t:{parent.id}",) and found.ready_ms == T0 + 4000
    assert [(e.event, e.detail) for e in found.timeline()][:2] == [
        ("created", f"waits for t:{parent.id}"), ("ready", "its dependencies settled")]
