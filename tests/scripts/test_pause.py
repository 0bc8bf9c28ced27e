"""pause.lua and the placing scripts: nothing of a paused queue (or namespace) is placed by
dispatch, dispatch at submit, dispatch on ack or take-next; tasks keep arriving; resume lets them
go and wakes the scheduler loops. On the embedded server and on a real one."""

from __future__ import annotations

import pytest

from luasched.core import ops
from luasched.core.replies import Paused

from .util import ack, audit_ok, queue_ids, start


def test_a_paused_queue_places_nothing_and_the_others_go_on(sched, make_sched, clock):
    p = sched.processor(capacity=4, queues=("a", "b"), lease=60)
    assert p.register()
    a1 = sched.submit("add", 1, 1, _queue="a")
    b1 = sched.submit("add", 2, 2, _queue="b")
    assert sched.pause("a") is True
    assert sched.pause("a") is False  # already paused: its first time is kept
    assert sched.paused() == [Paused("a", int(clock.now * 1000))]

    assert sched.dispatch() == [(b1.id, p.id)]
    eager = make_sched(clock=clock, dispatch_on_submit=True)
    a2 = eager.submit("add", 3, 3, _queue="a")
    assert a2.state == "queued", "a submit placed a task of a paused queue"
    assert queue_ids(sched, "a") == [a1.id, a2.id]
    audit_ok(sched)

    sched.client.delete(sched.keys.wake)
    assert sched.resume("a") is True
    assert sched.resume("a") is False
    assert sched.client.llen(sched.keys.wake) == 1, "resume woke no scheduler loop"
    assert sched.paused() == []
    assert sorted(sched.dispatch()) == sorted([(a1.id, p.id), (a2.id, p.id)])
    audit_ok(sched)


def test_a_paused_namespace_keeps_taking_tasks_in_and_lets_them_go_on_resume(sched, clock):
    p = sched.processor(capacity=4, queues=("a", "b"), lease=60)
    assert p.register()
    assert sched.pause() is True
    assert sched.paused() == [Paused(None, int(clock.now * 1000))]
    now = sched.submit_many("add", [(1, 1)], queue="a") + sched.submit_many("add", [(2, 2)], queue="b")
    later = sched.submit("add", 3, 3, _queue="a", _delay=5)
    assert sched.dispatch() == []
    clock.advance(6)
    assert sched.dispatch() == [], "a delayed task that came due was placed in a paused namespace"
    assert later.state == "queued"  # it came due into its queue all the same
    assert sched.counts()["queued"] == 3
    audit_ok(sched)

    assert sched.pause("b") is True  # a queue paused by itself stays paused when the namespace resumes
    assert sched.resume() is True
    placed = sched.dispatch()
    assert sorted(placed) == sorted([(now[0].id, p.id), (later.id, p.id)])
    assert queue_ids(sched, "b") == [now[1].id]
    assert sched.paused() == [Paused("b", int(clock.now * 1000))]
    audit_ok(sched)


@pytest.mark.parametrize("next_mode", [ops.NEXT_TAKE, ops.NEXT_PLACE])
def test_an_ack_takes_or_places_nothing_of_a_paused_queue(sched, next_mode):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    first = sched.submit("add", 1, 1)
    assert sched.dispatch() == [(first.id, p.id)]
    got = start(sched, p.id)
    waiting = sched.submit("add", 2, 2)
    sched.pause("default")
    sched.client.delete(sched.keys.wake)

    reply = ack(sched, p.id, got.task, next_mode=next_mode)

    assert reply.statuses == ["done"] and reply.started == [] and reply.placed == []
    assert queue_ids(sched) == [waiting.id]
    assert sched.client.llen(sched.keys.wake) == 0, "a freed slot woke a scheduler for a paused queue"
    assert start(sched, p.id).task is None
    audit_ok(sched)
    sched.resume("default")
    assert sched.dispatch() == [(waiting.id, p.id)]


def test_bad_scopes_are_refused_and_nothing_is_written(sched):
    with pytest.raises(ValueError, match="key"):
        sched.pause("a", key="")
    with pytest.raises(TypeError, match="key"):
        sched.resume(key=7)
    with pytest.raises(ValueError, match="queue"):
        sched.pause("no spaces")
    with pytest.raises(ValueError, match="queue"):
        sched.resume("bad\n")
    assert sched.paused() == []
    assert sched.client.exists(sched.keys.paused) == 0
