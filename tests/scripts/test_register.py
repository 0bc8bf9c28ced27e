"""register.lua, heartbeat.lua and deregister.lua through Processor."""

from __future__ import annotations

import pytest

from luasched.core.fields import PROCESSOR, TASK

from .util import audit_ok, pending_ids, queue_ids, record, start


def test_register_makes_an_idle_processor(sched, clock):
    p = sched.processor(capacity=4, queues=("a", "b"), lease=30, name="box")

    assert p.register() is True

    deadline = sched.client.zscore(sched.keys.procs, p.id)
    assert int(deadline) == int(clock() * 1000) + 30_000
    fields = {k.decode(): v.decode() for k, v in sched.client.hgetall(sched.keys.processor(p.id)).items()}
    assert (fields[PROCESSOR.capacity], fields[PROCESSOR.queues], fields[PROCESSOR.lease_ms],
            fields[PROCESSOR.name]) == ("4", "a,b", "30000", "box")
    for q in ("a", "b"):
        assert sched.client.zscore(sched.keys.idle_rank(p.kind, q), p.id) is not None
    c = sched.counts()
    assert (c["processors"], c["idle_processors"], c["lapsed_processors"]) == (1, 1, 0)
    assert sorted(sched.client.smembers(sched.keys.queues)) == [b"a", b"b"]
    audit_ok(sched)


def test_register_wakes_the_scheduler_loops(sched):
    sched.client.delete(sched.keys.wake)

    assert sched.processor().register()

    assert sched.client.lrange(sched.keys.wake, 0, -1) == [b"1"]


def test_reregister_alive_is_idempotent_and_renews_the_lease(sched, clock):
    p = sched.processor(capacity=2, lease=10)
    assert p.register()
    h = sched.submit("add")
    sched.dispatch()
    clock.advance(8)

    assert p.register() is True

    assert int(sched.client.zscore(sched.keys.procs, p.id)) == int(clock() * 1000) + 10_000
    assert pending_ids(sched, p.id) == [h.id]
    assert record(sched, h.id)[TASK.state] == "assigned"
    c = sched.counts()
    assert (c["processors"], c["assigned"]) == (1, 1)
    clock.advance(8)  # alive only thanks to the renewal
    assert sched.reap() == []
    audit_ok(sched)


def test_register_of_a_lapsed_id_is_refused(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    clock.advance(6)

    assert p.register() is False
    assert p.heartbeat() is False
    audit_ok(sched)


def test_heartbeat_renews_the_lease(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    clock.advance(4)

    assert p.heartbeat() is True

    assert int(sched.client.zscore(sched.keys.procs, p.id)) == int(clock() * 1000) + 5000
    assert int(sched.client.hget(sched.keys.processor(p.id), PROCESSOR.deadline_ms)) == int(clock() * 1000) + 5000


def test_heartbeat_of_a_never_registered_processor(sched):
    p = sched.processor()

    assert p.heartbeat() is False
    assert sched.counts()["processors"] == 0


def test_deregister_gives_unstarted_tasks_back_to_the_head_in_order(sched):
    p = sched.processor(capacity=2)
    assert p.register()
    t1, t2, t3 = sched.submit_many("add", [(1,), (2,), (3,)])
    assert len(sched.dispatch()) == 2

    assert p.deregister() == [t1.id, t2.id]

    assert queue_ids(sched) == [t1.id, t2.id, t3.id]
    assert [record(sched, t.id)[TASK.attempts] for t in (t1, t2)] == ["0", "0"]
    assert sched.client.zscore(sched.keys.procs, p.id) is None
    c = sched.counts()
    assert (c["processors"], c["assigned"], c["queued"]) == (0, 0, 3)
    assert p.heartbeat() is False
    audit_ok(sched)


def test_deregister_with_a_running_task_uses_its_attempt(sched):
    p = sched.processor(capacity=2)
    assert p.register()
    a, b = sched.submit_many("add", [(1,), (2,)])
    sched.dispatch()
    start(sched, p.id)

    assert sorted(p.deregister()) == sorted([a.id, b.id])

    assert (a.state, record(sched, a.id)[TASK.attempts]) == ("queued", "1")
    assert (b.state, record(sched, b.id)[TASK.attempts]) == ("queued", "0")
    audit_ok(sched)


def test_deregister_on_the_last_attempt_fails_the_running_task(sched):
    p = sched.processor()
    assert p.register()
    h = sched.submit("add", _max_attempts=1)
    sched.dispatch()
    start(sched, p.id)

    assert p.deregister() == [h.id]

    assert h.state == "failed"
    audit_ok(sched)


@pytest.mark.parametrize("history", ["never registered", "already deregistered"])
def test_deregister_of_an_unknown_processor_does_nothing(sched, history):
    p = sched.processor()
    h = sched.submit("add")
    if history == "already deregistered":
        assert p.register()
        assert p.deregister() == []
    before = sched.counts()

    assert p.deregister() == []

    assert sched.counts() == before
    assert h.state == "queued"
    audit_ok(sched)


def test_register_again_after_deregister(sched):
    p = sched.processor()
    assert p.register()
    p.deregister()

    assert p.register() is True
    assert sched.counts()["processors"] == 1
    audit_ok(sched)


def test_a_lapsed_processor_is_never_counted_idle(sched, clock):
    live = sched.processor(lease=60)
    lapsing = sched.processor(lease=5)
    assert live.register() and lapsing.register()
    assert sched.counts()["idle_processors"] == 2

    clock.advance(6)  # no dispatch has dropped it from the idle rankings yet

    counts = sched.counts()
    assert (counts["idle_processors"], counts["lapsed_processors"], counts["processors"]) == (1, 1, 2)
