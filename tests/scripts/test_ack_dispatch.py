"""ack.lua with next = 'place' (NEXT_PLACE, a processor's ``dispatch_on_ack``): the call that acks
finished tasks fills the slots it freed from the processor's queues, by the least-loaded rule, as
dispatch would, and wakes no scheduler for them."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import ops
from luasched.core.tasks import new_request_id

from .util import ack, audit_ok, pending_ids, queue_ids, start


def place_ack(sched: luasched.Scheduler, pid: str, task: ops.Started, want: int = 0, outcome: str = "done",
              rid: str | None = None) -> ops.AckReply:
    """An ack that fills the freed slot (NEXT_PLACE), then starts up to ``want`` inbox tasks."""
    call = ops.ack_many(sched.ns, sched.now_ms(), pid, "s0", rid or new_request_id(), [(task, outcome, "1")],
                        ops.NEXT_PLACE, want)
    return ops.decode_ack(sched.call(call))


def wake_tokens(sched: luasched.Scheduler, pid: str) -> int:
    return int(sched.client.llen(sched.keys.processor_wake(pid)))


def scheduler_woken(sched: luasched.Scheduler) -> bool:
    return bool(sched.client.llen(sched.keys.wake))


def running_one(sched: luasched.Scheduler, p) -> ops.Started:
    """Submit one task, dispatch it to ``p`` (the only idle processor) and start it."""
    h = sched.submit("add", 1, 2)
    assert sched.dispatch() == [(h.id, p.id)]
    got = start(sched, p.id)
    assert got.task is not None and got.task.id == h.id
    return got.task


def test_the_freed_slot_is_filled_from_the_queue_in_the_same_call(sched):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    first = running_one(sched, p)
    waiting = sched.submit_many("add", [(1, 1), (2, 2)])
    sched.client.delete(sched.keys.wake)  # what submit pushed for a scheduler

    reply = place_ack(sched, p.id, first)

    assert reply.statuses == ["done"] and reply.started == []
    assert reply.placed == [(waiting[0].id, p.id)]
    assert pending_ids(sched, p.id) == [waiting[0].id]
    assert waiting[0].state == "assigned"
    assert wake_tokens(sched, p.id) == 1  # a slot blocked on the wake list takes it at once
    assert queue_ids(sched) == [waiting[1].id]
    assert not scheduler_woken(sched), "the freed slot was filled: no scheduler needed"
    assert sched.counts()["assigned"] == 1
    audit_ok(sched)


def busy_and_fresh(sched: luasched.Scheduler):
    """A processor running two tasks (capacity 2), a fresh one (load 0, while the busy one has 1
    after an ack), and one task queued. Returns busy, its two tasks, fresh and the queued handle."""
    busy = sched.processor(capacity=2, lease=60, name="busy")
    assert busy.register()
    a, b = running_one(sched, busy), running_one(sched, busy)
    fresh = sched.processor(capacity=2, lease=60, name="fresh")
    assert fresh.register()
    return busy, a, b, fresh, sched.submit("add", 3, 3)


def test_the_task_goes_to_the_least_loaded_processor_not_the_acking_one(sched):
    busy, a, b, fresh, h = busy_and_fresh(sched)

    reply = place_ack(sched, busy.id, a)

    assert reply.placed == [(h.id, fresh.id)]
    assert pending_ids(sched, fresh.id) == [h.id] and pending_ids(sched, busy.id) == []
    assert wake_tokens(sched, fresh.id) == 1 and wake_tokens(sched, busy.id) == 0
    assert place_ack(sched, busy.id, b).placed == []  # the queue is empty now
    audit_ok(sched)


def test_it_places_at_most_one_task_per_freed_slot(sched):
    p = sched.processor(capacity=4, lease=60)
    assert p.register()
    tasks = [running_one(sched, p) for _ in range(3)]
    queued = sched.submit_many("add", [(i, i) for i in range(5)])

    call = ops.ack_many(sched.ns, sched.now_ms(), p.id, "s0", "r-two", [(t, "done", "1") for t in tasks[:2]],
                        ops.NEXT_PLACE, 0)
    reply = ops.decode_ack(sched.call(call))

    assert reply.statuses == ["done", "done"]
    assert [tid for tid, _ in reply.placed] == [h.id for h in queued[:2]]
    assert len(queue_ids(sched)) == 3
    audit_ok(sched)


def test_a_stale_ack_frees_nothing_and_places_nothing(sched, clock):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = running_one(sched, p)
    sched.submit("add", 5, 5)
    assert ack(sched, p.id, task).status == "done"

    again = place_ack(sched, p.id, task)

    assert again.status == "stale" and again.placed == []
    assert len(queue_ids(sched)) == 1
    audit_ok(sched)


def test_a_lapsed_processor_places_nothing_and_wakes_the_scheduler(sched, clock):
    p = sched.processor(capacity=1, lease=5)
    assert p.register()
    task = running_one(sched, p)
    h = sched.submit("add", 5, 5)
    sched.client.delete(sched.keys.wake)
    clock.advance(6)

    reply = place_ack(sched, p.id, task)

    assert reply.status == "done" and reply.placed == []
    assert queue_ids(sched) == [h.id]
    assert scheduler_woken(sched), "a slot came free that the ack did not fill: a scheduler must look"
    audit_ok(sched)


def test_a_replayed_ack_places_nothing_more(sched):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = running_one(sched, p)
    queued = sched.submit_many("add", [(1, 1), (2, 2)])

    first = place_ack(sched, p.id, task, rid="r-replay")
    replay = place_ack(sched, p.id, task, rid="r-replay")

    assert first.placed == [(queued[0].id, p.id)]
    assert replay.statuses == ["done"] and replay.placed == []
    assert queue_ids(sched) == [queued[1].id]
    audit_ok(sched)


def test_the_queues_of_the_processor_take_turns(sched):
    p = sched.processor(capacity=1, queues=("a", "b"), lease=60)
    assert p.register()
    in_a = [sched.submit("add", i, i, _queue="a") for i in range(3)]
    in_b = [sched.submit("add", i, i, _queue="b") for i in range(3)]
    assert len(sched.dispatch(limit=1)) == 1
    took = []
    for _ in range(4):  # each queue holds at least 2 more after dispatch took one
        got = start(sched, p.id)
        assert got.task is not None
        reply = place_ack(sched, p.id, got.task)
        assert len(reply.placed) == 1
        took.append(reply.placed[0][0])

    queue_of = {h.id: "a" for h in in_a} | {h.id: "b" for h in in_b}
    sides = [queue_of[tid] for tid in took]
    assert sides.count("a") == 2 and sides.count("b") == 2, sides
    assert all(x != y for x, y in zip(sides, sides[1:], strict=False)), f"one queue starved the other: {sides}"
    audit_ok(sched)


def test_a_queue_the_processor_does_not_serve_stays(sched):
    p = sched.processor(capacity=1, queues=("a",), lease=60)
    assert p.register()
    other = sched.processor(capacity=1, queues=("b",), lease=60)
    assert other.register()
    h = sched.submit("add", 1, 1, _queue="a")
    assert sched.dispatch() == [(h.id, p.id)]
    task = start(sched, p.id).task
    in_b = sched.submit("add", 2, 2, _queue="b")
    sched.client.delete(sched.keys.processor_wake(other.id))

    assert place_ack(sched, p.id, task).placed == []
    assert queue_ids(sched, "b") == [in_b.id]  # dispatch's, or eager submit's, to place
    audit_ok(sched)


def test_a_bad_next_mode_is_refused_before_anything_is_sent(sched):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = running_one(sched, p)
    with pytest.raises(ValueError, match="next_mode"):
        ops.ack(sched.ns, sched.now_ms(), p.id, "s0", "r-bad", task, "done", "1", "9")
    assert sched.handle(task.id).state == "running"


def test_placing_then_starting_in_one_call_and_more_says_whether_tasks_are_left(sched):
    """The slot's busy path: ack, fill the freed slot, start what landed in its own inbox, all in
    one call; ``more`` tells the slot whether its next ack, too, will likely find a task."""
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = running_one(sched, p)
    queued = sched.submit_many("add", [(1, 1), (2, 2)])

    reply = place_ack(sched, p.id, task, want=1)

    assert reply.placed == [(queued[0].id, p.id)]
    assert [t.id for t in reply.started] == [queued[0].id] and queued[0].state == "running"
    assert reply.started[0].attempt == 1
    assert pending_ids(sched, p.id) == [] and wake_tokens(sched, p.id) == 0  # the token went with it
    assert reply.more is True
    last = place_ack(sched, p.id, reply.started[0], want=1)
    assert [t.id for t in last.started] == [queued[1].id] and last.more is False
    done = place_ack(sched, p.id, last.started[0], want=1)
    assert done.started == [] and done.placed == [] and done.more is False
    assert sched.counts()["done"] == 3
    audit_ok(sched)


def test_placing_elsewhere_starts_nothing_here(sched):
    busy, a, _, fresh, h = busy_and_fresh(sched)

    reply = place_ack(sched, busy.id, a, want=1)

    assert reply.placed == [(h.id, fresh.id)] and reply.started == [] and reply.more is False
    assert h.state == "assigned"
    audit_ok(sched)


def test_a_replayed_place_and_start_answers_the_same_task(sched):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = running_one(sched, p)
    h = sched.submit("add", 4, 4)

    first = place_ack(sched, p.id, task, want=1, rid="r-again")
    again = place_ack(sched, p.id, task, want=1, rid="r-again")

    assert [t.id for t in first.started] == [h.id]
    assert again.started == first.started and again.placed == []
    assert sched.counts()["running"] == 1
    audit_ok(sched)


def test_an_older_task_in_the_inbox_starts_first_and_the_placed_one_waits_its_turn(sched):
    p = sched.processor(capacity=2, lease=60)
    assert p.register()
    running = running_one(sched, p)
    older = sched.submit("add", 5, 5)
    assert sched.dispatch() == [(older.id, p.id)]  # pending in the inbox, not started
    newer = sched.submit("add", 6, 6)

    reply = place_ack(sched, p.id, running, want=1)

    assert reply.placed == [(newer.id, p.id)]
    assert [t.id for t in reply.started] == [older.id]
    assert pending_ids(sched, p.id) == [newer.id] and newer.state == "assigned"
    assert wake_tokens(sched, p.id) == 1  # the placed task's token, for a slot to take it
    audit_ok(sched)


def test_a_freed_slot_left_unfilled_wakes_a_scheduler_only_when_tasks_are_left(sched):
    """The ack's own placement tells whether its queues still hold tasks: a task this processor may
    not run (its requires) stays, and a scheduler is woken to look; an empty queue wakes none."""
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    first = running_one(sched, p)
    sched.client.delete(sched.keys.wake)
    assert place_ack(sched, p.id, first).placed == []
    assert not scheduler_woken(sched), "nothing is left: no scheduler needed"

    second = running_one(sched, p)
    left = sched.submit("add", 2, 2, _requires={"gpu": "a100"})
    sched.client.delete(sched.keys.wake)  # what submit pushed for a scheduler
    reply = place_ack(sched, p.id, second)
    assert reply.placed == [] and reply.more
    assert queue_ids(sched) == [left.id]
    assert scheduler_woken(sched), "a slot came free that the ack did not fill, and a task is left"
    audit_ok(sched)
