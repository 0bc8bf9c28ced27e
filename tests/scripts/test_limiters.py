"""Limiters (lib/lanes): max_running counts taken at placement and released by exactly the scripts
that end an attempt or give an assignment back; rates (GCRA) that dispatch's reply says when to
look at again; patterns; a held-back task that is neither fetched nor charged an attempt and
holds up only its own lane. Each test on the embedded server and on a real one."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import ops

from .util import ack, audit_ok, error_json, record, start


def running_count(sched: luasched.Scheduler, name: str) -> int:
    return int(sched.client.hget(sched.keys.limiter_counts, name) or 0)


def test_max_running_holds_back_the_rest_and_the_others_go_on(sched):
    p = sched.processor(capacity=10, lease=60)
    assert p.register()
    sched.limit("db", max_running=2)
    limited = [sched.submit("add", i, 0, _limits=("db",), _key="k1") for i in range(4)]
    free = [sched.submit("add", i, 1, _key="k2") for i in range(2)]
    placed = [t for t, _ in sched.dispatch()]
    assert sorted(placed) == sorted([limited[0].id, limited[1].id, free[0].id, free[1].id])
    assert running_count(sched, "db") == 2
    assert (limited[2].state, record(sched, limited[2].id)["n"]) == ("queued", "0"), "a held task used an attempt"
    audit_ok(sched)

    got = start(sched, p.id)
    while got.task is not None and got.task.id != limited[0].id:
        ack(sched, p.id, got.task)
        got = start(sched, p.id)
    assert sched.dispatch() == []  # still two held
    sched.client.delete(sched.keys.wake)
    ack(sched, p.id, got.task)  # the attempt ends: its count comes back
    assert running_count(sched, "db") == 1
    assert sched.client.llen(sched.keys.wake) == 1, "a released count woke no scheduler loop"
    assert sched.dispatch() == [(limited[2].id, p.id)]
    audit_ok(sched)


def test_a_failed_attempt_and_a_cancelled_assignment_release_their_counts(sched, clock):
    p = sched.processor(capacity=10, lease=60)
    assert p.register()
    sched.limit("one", max_running=1)
    a = sched.submit("add", 1, 1, _limits=("one",), _retry_backoff=0.001)
    b = sched.submit("add", 2, 2, _limits=("one",))
    assert sched.dispatch() == [(a.id, p.id)]
    got = start(sched, p.id)
    assert ack(sched, p.id, got.task, "error", error_json()).statuses == ["retry"]
    assert running_count(sched, "one") == 0
    clock.advance(1)
    assert sched.dispatch() == [(a.id, p.id)]  # the retry kept its place, ahead of b
    assert a.cancel() is True
    assert running_count(sched, "one") == 0
    assert sched.dispatch() == [(b.id, p.id)]
    audit_ok(sched)


def test_a_lapsed_processor_gives_its_counts_back_with_its_inbox(sched, clock):
    gone = sched.processor(capacity=2, lease=5)
    assert gone.register()
    sched.limit("gpu", max_running=2)
    tasks = [sched.submit("add", i, 0, _limits=("gpu",)) for i in range(3)]
    assert len(sched.dispatch()) == 2
    assert start(sched, gone.id).task is not None  # one running, one pending
    clock.advance(6)
    other = sched.processor(capacity=5, lease=60)
    assert other.register()
    taken = sched.reap()
    assert sorted(taken) == sorted([tasks[0].id, tasks[1].id]) and running_count(sched, "gpu") == 0
    audit_ok(sched)
    assert len(sched.dispatch()) == 2 and running_count(sched, "gpu") == 2
    audit_ok(sched)


def test_a_rate_is_never_exceeded_and_dispatch_says_when_to_look_again(sched, clock):
    p = sched.processor(capacity=100, lease=600)
    assert p.register()
    sched.limit("api", rate=2, per=1.0, burst=2)
    handles = [sched.submit("add", i, 0, _limits=("api",)) for i in range(6)]
    other = sched.submit("add", 9, 9, _key="unlimited")
    t0 = int(clock.now * 1000)
    reply = sched.dispatch_detail()
    assert sorted(t for t, _ in reply.assignments) == sorted([handles[0].id, handles[1].id, other.id])  # a burst of 2
    assert reply.next_due_ms == t0 + 500, "dispatch did not say when the rate lets the next one go"
    clock.advance(0.499)
    assert sched.dispatch() == []
    clock.advance(0.001)
    assert sched.dispatch() == [(handles[2].id, p.id)]
    clock.advance(10)  # a long quiet spell banks no more than the burst
    assert [t for t, _ in sched.dispatch()] == [handles[3].id, handles[4].id]
    audit_ok(sched)


def test_a_pattern_limits_each_name_on_its_own(sched):
    p = sched.processor(capacity=10, lease=60)
    assert p.register()
    sched.limit("user:*", max_running=1)
    u1 = [sched.submit("add", i, 0, _limits=("user:1",), _key="1") for i in range(2)]
    u2 = [sched.submit("add", i, 0, _limits=("user:2",), _key="2") for i in range(2)]
    assert sorted(t for t, _ in sched.dispatch()) == sorted([u1[0].id, u2[0].id])
    rows = {row.name: row for row in sched.limits()}
    assert (rows["user:1"].running, rows["user:1"].pattern, rows["user:1"].waiting) == (1, "user:*", 1)
    assert (rows["user:*"].running, rows["user:*"].max_running) == (2, 1)
    audit_ok(sched)


def test_an_unknown_limiter_is_refused_at_submit_and_nothing_is_written(sched):
    before = sched.counts()["submitted"]
    with pytest.raises(ValueError, match="no limiter named 'nope'"):
        sched.submit("add", 1, 1, _limits=("nope",))
    assert sched.counts()["submitted"] == before
    assert sched.counts()["queued"] == 0


def test_removing_or_raising_a_limiter_lets_its_waiting_lanes_go(sched):
    p = sched.processor(capacity=10, lease=60)
    assert p.register()
    sched.limit("x", max_running=1)
    handles = [sched.submit("add", i, 0, _limits=("x",), _key=str(i)) for i in range(4)]
    assert len(sched.dispatch()) == 1
    sched.limit("x", max_running=2)
    assert len(sched.dispatch()) == 1
    assert sched.remove_limit("x") is True
    assert len(sched.dispatch()) == 2
    assert all(h.state == "assigned" for h in handles)
    audit_ok(sched)


def test_take_next_respects_the_limits(sched):
    p = sched.processor(capacity=2, lease=60)
    assert p.register()
    sched.limit("one", max_running=1)
    first = sched.submit("add", 0, 0)
    assert sched.dispatch() == [(first.id, p.id)]
    got = start(sched, p.id)
    held = [sched.submit("add", i, 0, _limits=("one",)) for i in range(2)]
    reply = ack(sched, p.id, got.task, next_mode=ops.NEXT_TAKE)
    assert [t.id for t in reply.started] == [held[0].id]
    assert held[1].state == "queued" and running_count(sched, "one") == 1
    audit_ok(sched)
