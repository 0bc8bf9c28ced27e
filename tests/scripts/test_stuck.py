"""A slot whose attempt reap ended past its timeout stays taken until its late ack (reap.lua,
ack.lua); a processor's default timeout (register.lua, start.lua). On both servers, with the
injected clock."""

from __future__ import annotations

import pytest

from luasched.core import ops
from luasched.core.fields import PROCESSOR
from luasched.core.tasks import new_request_id

from .util import ack, audit_ok, raw_record, running_ids, start


def proc_record(sched, pid: str) -> dict[str, str]:
    raw = sched.client.hgetall(sched.keys.processor(pid))
    return {ops.text(k): ops.text(v) for k, v in raw.items()}


def info(sched, pid: str):
    (found,) = [p for p in sched.processors() if p.id == pid]
    return found


@pytest.fixture
def reaped(sched, clock):
    """p (capacity 1) ran a task past its 5 s timeout; reap ended the attempt (retry at once)."""
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    h = sched.submit("add", 1, 2, _timeout=5, _retry_backoff=0)
    assert sched.dispatch() == [(h.id, p.id)]
    first = start(sched, p.id).task
    clock.advance(6)
    assert sched.reap() == [h.id]
    return p, h, first


def test_a_reaped_attempt_keeps_its_slot_taken(sched, reaped):
    p, h, first = reaped
    assert h.state in ("delayed", "queued") and running_ids(sched, p.id) == []
    assert sched.dispatch() == []  # p's only slot is still in the call: never offered the retry
    assert sched.queue_lengths() == {"default": 1}
    seen = info(sched, p.id)
    assert (seen.stuck, seen.running, seen.load) == (1, 0, 1)
    assert seen.oldest_started_ms == int(raw_record(sched, h.id)["st"])
    assert proc_record(sched, p.id)[f"{PROCESSOR.reaped_call}{first.attempt}:{h.id}"]
    audit_ok(sched)

    other = sched.processor(capacity=1, lease=600)
    assert other.register()
    assert sched.dispatch() == [(h.id, other.id)]  # the retry runs elsewhere
    audit_ok(sched)


def test_the_late_ack_frees_the_slot_once(sched, reaped):
    p, h, first = reaped
    rid = new_request_id()
    call = ops.ack(sched.ns, sched.now_ms(), p.id, "s0", rid, first, "done", "3", ops.NEXT_NONE)
    assert ops.decode_ack(sched.call(call)).status == "stale"
    assert ops.decode_ack(sched.call(call)).status == "stale"  # a replay frees nothing more
    seen = info(sched, p.id)
    assert (seen.stuck, seen.load, seen.oldest_started_ms) == (0, 0, None)
    assert not [f for f in proc_record(sched, p.id) if f.startswith(PROCESSOR.reaped_call)]
    audit_ok(sched)
    assert sched.dispatch() == [(h.id, p.id)]  # free again: it gets the retry
    assert start(sched, p.id).task.attempt == 2
    audit_ok(sched)


def test_the_late_ack_places_on_the_slot_it_frees(sched, reaped):
    p, h, first = reaped
    assert sched.dispatch() == []  # promotes the retry; places nothing
    reply = ack(sched, p.id, first, "error", '{"type":"X","message":"late"}', ops.NEXT_PLACE)
    assert reply.status == "stale" and reply.placed == [(h.id, p.id)]
    audit_ok(sched)


def test_a_stale_ack_of_another_kind_frees_nothing(sched, clock):
    """An attempt whose lease lapsed was given back by reap with its processor: no slot to free."""
    p = sched.processor(capacity=1, lease=5)
    assert p.register()
    h = sched.submit("add", 1, 2)
    sched.dispatch()
    first = start(sched, p.id).task
    clock.advance(6)
    assert h.id in sched.reap()
    assert ack(sched, p.id, first, "done", "3").status == "stale"
    assert sched.client.exists(sched.keys.processor(p.id)) == 0  # the ack wrote no record back
    audit_ok(sched)


@pytest.mark.parametrize("leave", ["deregister", "lapse"])
def test_a_processor_leaving_with_a_stuck_slot_leaves_nothing_behind(sched, clock, reaped, leave):
    p, h, _ = reaped
    if leave == "deregister":
        p.deregister()
    else:
        clock.advance(601)
        sched.reap()
    assert sched.processors() == []
    assert sched.client.exists(sched.keys.processor(p.id)) == 0
    audit_ok(sched)


def test_several_stuck_slots_count_each(sched, clock):
    p = sched.processor(capacity=3, lease=600)
    assert p.register()
    hs = [sched.submit("add", i, 0, _timeout=5) for i in range(3)]
    sched.dispatch()
    started = [start(sched, p.id, f"s{i}").task for i in range(3)]
    clock.advance(2)
    ack(sched, p.id, started[2], "done", "2")  # one finished in time
    clock.advance(4)
    assert sorted(sched.reap()) == sorted(h.id for h in hs[:2])
    assert (info(sched, p.id).stuck, info(sched, p.id).load) == (2, 2)
    audit_ok(sched)
    ack(sched, p.id, started[0], "done", "0")
    assert (info(sched, p.id).stuck, info(sched, p.id).load) == (1, 1)
    audit_ok(sched)


# --- a processor's default timeout ----------------------------------------------------------------


def test_the_default_timeout_applies_to_tasks_without_their_own(sched, clock):
    p = sched.processor(capacity=2, lease=600, default_timeout=3)
    assert p.register()
    assert info(sched, p.id).default_timeout_ms == 3000
    own = sched.submit("add", 1, 1, _timeout=10)
    none = sched.submit("add", 2, 2)
    sched.dispatch()
    a, b = start(sched, p.id, "s0").task, start(sched, p.id, "s1").task
    assert {a.id: a.timeout_ms, b.id: b.timeout_ms} == {own.id: 10000, none.id: 3000}
    assert sched.client.zscore(sched.keys.running, none.id) == sched.now_ms() + 3000
    clock.advance(4)
    taken = sched.reap()
    assert taken == [none.id] and taken.overdue[0].timeout_ms == 3000
    assert "ran past its timeout of 3000 ms" in raw_record(sched, none.id)["e"]
    assert info(sched, p.id).stuck == 1
    audit_ok(sched)


def test_a_replayed_start_answers_the_default_timeout(sched):
    p = sched.processor(capacity=1, lease=600, default_timeout=2)
    assert p.register()
    sched.submit("add", 1, 1)
    sched.dispatch()
    call = ops.start(sched.ns, sched.now_ms(), p.id, "s0", new_request_id())
    first, again = ops.decode_start(sched.call(call)), ops.decode_start(sched.call(call))
    assert first.task.timeout_ms == again.task.timeout_ms == 2000


def test_without_a_default_a_task_without_timeout_runs_on_and_shows_its_age(sched, clock):
    p = sched.processor(capacity=1, lease=7200)
    assert p.register()
    h = sched.submit("add", 1, 1)
    sched.dispatch()
    start(sched, p.id)
    began = sched.now_ms()
    clock.advance(3600)
    assert sched.reap() == [] and h.state == "running"
    seen = info(sched, p.id)
    assert (seen.default_timeout_ms, seen.oldest_started_ms, seen.stuck) == (None, began, 0)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "5"])
def test_a_bad_default_timeout_is_refused_at_the_call(sched, bad):
    with pytest.raises((ValueError, TypeError), match="default_timeout"):
        sched.processor(default_timeout=bad)
