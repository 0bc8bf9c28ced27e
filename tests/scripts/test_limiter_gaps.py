"""Placements the guarantees of issue 17 call for that lib/lanes once missed, each reduced from a
falsifying example of the conservation property machine (tests/property): a freed running count
goes to the most urgent waiting lane, is not lost on a lane that cannot be placed, and no lane
waits for a count that no attempt holds; dispatch on ack places a lane whose rate came due, and a
rate given more room (or removed) lets its blocked lanes go at once."""

from __future__ import annotations

from luasched.core import ops

from .util import ack, audit_ok, start


def test_a_released_count_goes_to_the_most_urgent_lane(sched):
    p = sched.processor(capacity=10, lease=60)
    assert p.register()
    sched.limit("m", max_running=1)
    h1, h2 = (sched.submit("add", i, 0, _priority=2, _key="k1", _limits=("m",)) for i in range(2))
    low = sched.submit("add", 9, 9, _priority=7, _key="k2", _limits=("m",))
    # h1 goes; its lane (tag now 1) and low's (tag 0) wait for m's count
    assert sched.dispatch() == [(h1.id, p.id)]
    got = start(sched, p.id)
    assert got.task is not None and got.task.id == h1.id
    ack(sched, p.id, got.task)  # m's count is free: one lane unparked, the one of the lowest tag
    assert sched.dispatch() == [(h2.id, p.id)], f"priority 7 ({low.id}) placed before priority 2 ({h2.id})"
    audit_ok(sched)


def test_a_free_count_is_not_lost_on_a_lane_that_cannot_go(sched):
    only_b = sched.processor(capacity=10, lease=60, queues=("b",))
    assert only_b.register()
    only_a = sched.processor(capacity=10, lease=60, queues=("a",))
    assert only_a.register()
    sched.limit("m", max_running=1)
    holder = sched.submit("add", 0, 0, _queue="b", _limits=("m",))
    assert sched.dispatch() == [(holder.id, only_b.id)]
    waiting_a = sched.submit("add", 1, 1, _queue="a", _limits=("m",))
    waiting_b = sched.submit("add", 2, 2, _queue="b", _limits=("m",))
    assert sched.dispatch() == []  # both lanes parked on m
    assert sorted(only_a.deregister()) == []  # queue a has no processor any more
    got = start(sched, only_b.id)
    assert got.task is not None
    ack(sched, only_b.id, got.task)  # m's count is 0: lane a is unparked, lane b stays parked
    assert sched.dispatch() == [(waiting_b.id, only_b.id)], \
        f"{waiting_b.id} waits for m, whose count is 0 ({waiting_a.id} cannot go: no processor of a)"
    audit_ok(sched)


def test_dispatch_on_ack_places_a_lane_whose_rate_came_due(sched, clock):
    p = sched.processor(capacity=2, lease=600)
    assert p.register()
    sched.limit("r", rate=1, per=4.0, burst=1)
    first, second = (sched.submit("add", i, 0, _limits=("r",)) for i in range(2))
    assert sched.dispatch() == [(first.id, p.id)]  # the lane met again: blocked by the rate for 4 s
    got = start(sched, p.id)
    assert got.task is not None
    clock.advance(5)
    reply = ack(sched, p.id, got.task, next_mode=ops.NEXT_PLACE)
    assert [t for t, _ in reply.placed] == [second.id], "the freed slot stayed empty though the rate allows"
    audit_ok(sched)


def test_a_rate_given_more_room_lets_its_blocked_lanes_go_at_once(sched):
    p = sched.processor(capacity=10, lease=600)
    assert p.register()
    sched.limit("r", rate=1, per=4.0, burst=1)
    hs = [sched.submit("add", i, 0, _limits=("r",)) for i in range(4)]
    assert sched.dispatch() == [(hs[0].id, p.id)]  # the lane met again: blocked by the rate for 4 s
    assert sched.limit("r", rate=1, per=4.0, burst=3) is False
    assert [t for t, _ in sched.dispatch()] == [h.id for h in hs[1:3]], "a larger burst left the lane blocked"
    assert sched.remove_limit("r") is True
    assert sched.dispatch() == [(hs[3].id, p.id)], "a removed rate still held its lane back"
    audit_ok(sched)


def test_no_lane_waits_for_a_count_that_no_attempt_holds(sched):
    p = sched.processor(capacity=10, lease=600)
    assert p.register()
    sched.limit("m", max_running=1)
    holder = sched.submit("add", 0, 0, _key="k0", _limits=("m",))
    waiting = [sched.submit("add", i, i, _key=f"k{i}", _limits=("m",)) for i in range(1, 4)]
    assert sched.dispatch() == [(holder.id, p.id)]  # the three other lanes met m full: parked
    got = start(sched, p.id)
    assert got.task is not None
    ack(sched, p.id, got.task)  # m's count is 0: nothing will release it again
    audit_ok(sched)
    assert sched.dispatch(limit=1)[0][0] in {h.id for h in waiting}
    audit_ok(sched)


def test_lanes_let_go_that_cannot_be_placed_do_not_strand_the_others(sched):
    """The documented bound of a freed count: it lets go the most urgent parked lane; while that
    lane cannot be placed (its queue paused), each placing call lets one more go and wakes a
    scheduler loop to place it, so a lane that can go is placed within a call per lane ahead."""
    pa = sched.processor(capacity=3, lease=600, queues=("a",))
    pb = sched.processor(capacity=1, lease=600, queues=("b",))
    assert pa.register() and pb.register()
    sched.limit("m", max_running=2)
    holders = [sched.submit("add", i, 0, _queue="a", _key=f"h{i}", _limits=("m",)) for i in range(2)]
    assert sorted(t for t, _ in sched.dispatch()) == sorted(h.id for h in holders)
    ahead = [sched.submit("add", i, 0, _queue="a", _key=f"x{i}", _priority=2, _limits=("m",)) for i in range(2)]
    last = sched.submit("add", 9, 9, _queue="b", _priority=7, _limits=("m",))
    assert sched.dispatch() == []  # m is full: the three lanes are parked
    sched.pause("a")
    got = start(sched, pa.id)
    assert got.task is not None
    ack(sched, pa.id, got.task)  # one count free (one still held): the most urgent lane goes first
    placed: list[tuple[str, str]] = []
    for _ in range(len(ahead) + 1):
        sched.client.delete(sched.keys.wake)
        placed = sched.dispatch()
        if placed:
            break
        assert sched.client.llen(sched.keys.wake) > 0, "a call let a lane go without waking a loop"
    assert placed == [(last.id, pb.id)], "the lane of b never went, though m had a free count"
    assert all(h.state == "queued" for h in ahead)
    audit_ok(sched)
