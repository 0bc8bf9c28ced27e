"""lib/lanes: which waiting task goes next. Priorities (strict, and with aging), FIFO within a
lane, weighted fairness between keys, pauses by key, and a queue that uses no policy staying
plain. Each test on the embedded server and on a real one; the audit checks the lane indexes
after each step."""

from __future__ import annotations

from collections import Counter

import pytest

import luasched
from luasched.core import ops
from luasched.core.replies import Paused

from .util import ack, audit_ok, record, start


def lane_keys(sched: luasched.Scheduler) -> list[str]:
    """The keys lanes mode keeps (none while every queue is plain)."""
    found = []
    for pattern in ("lanes:*", "ln:*", "rdy:*", "lvl:*", "kp:*", "lpk:*"):
        found += ops.text(list(sched.client.scan_iter(sched.keys.prefix + pattern)))
    return sorted(found)


def run_one_by_one(sched: luasched.Scheduler, pid: str, n: int) -> list[str]:
    """Place, start and finish n tasks through one slot; the ids in the order they were placed."""
    order = []
    for _ in range(n):
        placed = sched.dispatch(limit=1)
        if not placed:
            break
        order.append(placed[0][0])
        got = start(sched, pid)
        assert got.task is not None
        ack(sched, pid, got.task)
    return order


def test_lower_priorities_go_first_and_each_lane_is_fifo(sched):
    p = sched.processor(capacity=100, lease=60)
    assert p.register()
    low = [sched.submit("add", i, 0, _priority=7) for i in range(3)]
    plain = [sched.submit("add", i, 0) for i in range(2)]
    urgent = [sched.submit("add", i, 0, _priority=2) for i in range(3)]
    first = sched.submit("add", 9, 9, _priority=0)
    assert sched.counts()["queued"] == 9
    audit_ok(sched)

    placed = [t for t, _ in sched.dispatch()]
    assert placed == [first.id] + [h.id for h in urgent] + [h.id for h in plain] + [h.id for h in low]
    assert record(sched, low[0].id)["pr"] == "7" and "pr" not in record(sched, plain[0].id)
    audit_ok(sched)
    assert lane_keys(sched) == [], "an emptied queue kept lane keys"


def test_a_queue_without_policies_keeps_no_lanes(sched):
    p = sched.processor(capacity=100, lease=60)
    assert p.register()
    handles = sched.submit_many("add", [(i, i) for i in range(5)])
    assert lane_keys(sched) == []
    assert [t for t, _ in sched.dispatch()] == [h.id for h in handles]


def test_plain_tasks_already_waiting_take_part_when_a_lane_appears(sched):
    p = sched.processor(capacity=100, lease=60)
    assert p.register()
    plain = sched.submit_many("add", [(i, i) for i in range(2)])
    low = sched.submit("add", 1, 1, _priority=8)
    urgent = sched.submit("add", 2, 2, _priority=1)
    audit_ok(sched)
    assert [t for t, _ in sched.dispatch()] == [urgent.id] + [h.id for h in plain] + [low.id]
    audit_ok(sched)


def test_priority_aging_lets_an_old_task_pass_newer_urgent_ones(sched, clock):
    p = sched.processor(capacity=1, lease=3600)
    assert p.register()
    sched.set_queue("default", priority_aging=10)
    old = sched.submit("add", 0, 0, _priority=9)
    clock.advance(55)  # 5 bounds: it counts as priority 4 now
    newer = [sched.submit("add", i, 0, _priority=3) for i in range(2)]
    later = sched.submit("add", 1, 0, _priority=5)
    assert run_one_by_one(sched, p.id, 4) == [newer[0].id, newer[1].id, old.id, later.id]

    sched.set_queue("default", priority_aging=None)  # strict again: age does not count
    old = sched.submit("add", 0, 0, _priority=9)
    clock.advance(1000)
    newer = sched.submit("add", 1, 0, _priority=8)
    assert run_one_by_one(sched, p.id, 2) == [newer.id, old.id]
    audit_ok(sched)


def test_a_retried_task_keeps_its_priority_and_its_place(sched, clock):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    first = sched.submit("add", 1, 1, _priority=2, _retry_backoff=1)
    assert sched.dispatch() == [(first.id, p.id)]
    got = start(sched, p.id)
    behind = [sched.submit("add", i, 0, _priority=2) for i in range(2)]
    plain = sched.submit("add", 3, 3)
    assert ack(sched, p.id, got.task, "error", '{"type": "E", "message": "x"}').statuses == ["retry"]
    clock.advance(2)  # the retry comes due: back at the head of its lane
    assert run_one_by_one(sched, p.id, 4) == [first.id, behind[0].id, behind[1].id, plain.id]
    audit_ok(sched)


def test_a_key_that_arrives_late_is_served_within_a_few_placements(sched):
    """The issue's test: A submits 1,000, then B 10, one slot: B's 10 are all placed within the
    first ~25 placements, not after A's 1,000."""
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    a = sched.submit_many("add", [(i, 0) for i in range(1000)], key="tenant-a")
    b = sched.submit_many("add", [(i, 1) for i in range(10)], key="tenant-b")
    order = run_one_by_one(sched, p.id, 25)
    b_ids = {h.id for h in b}
    assert b_ids <= set(order), f"B's tasks placed within 25: {len(b_ids & set(order))} of 10"
    a_order = [t for t in order if t not in b_ids]
    assert a_order == [h.id for h in a[:len(a_order)]]  # each key's own tasks in order
    audit_ok(sched)


def test_weights_share_placements_in_proportion(sched):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    sched.set_weight("heavy", 3)
    heavy = {h.id for h in sched.submit_many("add", [(i, 0) for i in range(100)], key="heavy")}
    sched.submit_many("add", [(i, 1) for i in range(100)], key="light")
    order = run_one_by_one(sched, p.id, 40)
    share = sum(t in heavy for t in order)
    assert 29 <= share <= 31, f"weight 3 against 1 got {share} of 40"


def test_an_idle_key_banks_no_credit(sched):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    a = {h.id for h in sched.submit_many("add", [(i, 0) for i in range(200)], key="a")}
    run_one_by_one(sched, p.id, 100)  # a alone for 100 placements
    sched.submit_many("add", [(i, 1) for i in range(50)], key="b")
    order = run_one_by_one(sched, p.id, 20)
    runs = Counter(t in a for t in order)
    assert runs[True] == 10 and runs[False] == 10, "a key joining late got more than its share"
    audit_ok(sched)


def test_a_lane_held_back_rejoins_where_it_left(sched):
    """A lane a placing call moved out of the ready index (here: its key paused) keeps its tag:
    back, it does not skip ahead of keys served less than it."""
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    sched.set_weight("a", 0.25)  # each placement of a counts as four of b's
    a = [h.id for h in sched.submit_many("add", [(i, 0) for i in range(5)], key="a")]
    b = [h.id for h in sched.submit_many("add", [(i, 1) for i in range(5)], key="b")]
    assert run_one_by_one(sched, p.id, 1) == [a[0]]  # a's tag 4, b's 0 (the virtual time)
    sched.pause(key="a")
    sched.pause(key="b")
    assert sched.dispatch() == []  # both lanes met paused: out of the ready index
    sched.resume(key="a")
    sched.resume(key="b")
    assert run_one_by_one(sched, p.id, 5) == b[:4] + [a[1]], "a lane back from a pause skipped ahead"
    audit_ok(sched)


def test_a_paused_key_waits_and_the_others_go_on(sched, make_sched, clock):
    p = sched.processor(capacity=100, queues=("default", "other"), lease=60)
    assert p.register()
    mine = [sched.submit("add", i, 0, _key="acme") for i in range(2)]
    theirs = sched.submit("add", 1, 1, _key="globex")
    assert sched.pause(key="acme") is True
    assert sched.pause(key="acme") is False
    assert sched.pause("other", key="globex") is True
    elsewhere = sched.submit("add", 2, 2, _key="globex", _queue="other")
    assert sched.paused() == [Paused(None, int(clock.now * 1000), "acme"),
                              Paused("other", int(clock.now * 1000), "globex")]
    assert sched.dispatch() == [(theirs.id, p.id)]
    eager = make_sched(clock=clock, dispatch_on_submit=True)
    late = eager.submit("add", 3, 3, _key="acme")
    assert late.state == "queued", "a submit placed a task of a paused key"
    audit_ok(sched)

    sched.client.delete(sched.keys.wake)
    assert sched.resume(key="acme") is True
    assert sched.client.llen(sched.keys.wake) == 1, "resume woke no scheduler loop"
    assert [t for t, _ in sched.dispatch()] == [mine[0].id, mine[1].id, late.id]
    assert elsewhere.state == "queued"
    assert sched.resume("other", key="globex") is True
    assert sched.dispatch() == [(elsewhere.id, p.id)]
    audit_ok(sched)


@pytest.mark.parametrize("next_mode", [ops.NEXT_TAKE, ops.NEXT_PLACE])
def test_an_ack_takes_or_places_by_the_same_rules(sched, next_mode):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    first = sched.submit("add", 1, 1)
    assert sched.dispatch() == [(first.id, p.id)]
    got = start(sched, p.id)
    low = sched.submit("add", 2, 2, _priority=9)
    urgent = sched.submit("add", 3, 3, _priority=0)
    reply = ack(sched, p.id, got.task, next_mode=next_mode)
    taken = {t.id for t in reply.started} | {t for t, _ in reply.placed}  # place starts what it places
    assert taken == {urgent.id}, f"{next_mode} took {taken}, not the most urgent task"
    assert low.state == "queued"
    audit_ok(sched)


def test_cancelling_a_queued_task_keeps_its_lane_indexed_right(sched):
    p = sched.processor(capacity=100, lease=60)
    assert p.register()
    a = [sched.submit("add", i, 0, _key="a", _priority=3) for i in range(3)]
    assert a[0].cancel() and a[2].cancel()
    audit_ok(sched)
    assert a[1].cancel()
    audit_ok(sched)
    assert lane_keys(sched) == []
    assert sched.dispatch() == []
