"""Routing: a task is placed only on a live processor that serves its queue, has its task name
and whose labels meet its requires; among those, the least loaded. A task no registered
processor can run stays queued, uses no attempt, and lets the tasks behind it go. On the
embedded server and on a real one."""

from __future__ import annotations

import pytest

from luasched.core import ops

from .util import ack, audit_ok, queue_ids, raw_record, start


def fleet(make_sched, clock, **kwargs):
    """Two apps on one namespace: 'old' knows task a, 'new' knows a and b (a deploy in progress)."""
    old = make_sched(clock=clock, **kwargs)
    new = make_sched(clock=clock, **kwargs)
    for sched, names in ((old, ("a",)), (new, ("a", "b"))):
        for name in names:
            sched.task(name=name)(lambda x=None: x)
    return old, new


def test_a_task_goes_only_to_a_processor_that_has_its_task_name(make_sched, clock):
    old, new = fleet(make_sched, clock)
    p_old = old.processor(capacity=4)
    p_new = new.processor(capacity=4)
    assert p_old.register() and p_new.register()

    hb = new.submit("b")
    assert new.dispatch() == [(hb.id, p_new.id)]  # both idle, p_old idle longest: but it lacks b
    ha = new.submit("a")
    assert new.dispatch() == [(ha.id, p_old.id)]  # a: either may, the least loaded takes it
    audit_ok(new)


def test_least_loaded_among_the_processors_that_may_run_it(make_sched, clock):
    old, new = fleet(make_sched, clock)
    p_old = old.processor(capacity=4)
    n1, n2 = new.processor(capacity=4), new.processor(capacity=4)
    for p in (p_old, n1, n2):
        assert p.register()
    first = new.submit("b")
    (placed,) = new.dispatch()
    assert placed[0] == first.id and placed[1] in (n1.id, n2.id)
    other = n2.id if placed[1] == n1.id else n1.id

    hb = new.submit("b")

    # p_old is idle and idle longest (load 0) but lacks b; of n1 and n2, the one with no task
    assert new.dispatch() == [(hb.id, other)]
    audit_ok(new)


def test_a_task_no_processor_can_run_lets_the_tasks_behind_it_go(make_sched, clock):
    old, _new = fleet(make_sched, clock)
    p = old.processor(capacity=4)
    assert p.register()
    stray = old.submit("b")  # nobody registered has b
    behind = old.submit_many("a", [(1,), (2,)])

    assert old.dispatch() == [(behind[0].id, p.id), (behind[1].id, p.id)]

    assert queue_ids(old) == [stray.id]  # in its place, no attempt used
    assert raw_record(old, stray.id)["s"] == "queued" and "n" not in raw_record(old, stray.id)
    found = old.explain(stray.id)
    assert found.reason == "no_processor"
    assert found.detail["condition"] == "task name" and found.detail["task"] == "b"
    assert "no processor serving it has task b" in found.text
    audit_ok(old)


def test_a_task_waits_in_order_while_the_processors_that_may_run_it_are_busy(make_sched, clock):
    old, new = fleet(make_sched, clock)
    p_new = new.processor(capacity=1)
    p_old = old.processor(capacity=4)
    assert p_new.register() and p_old.register()
    hold = new.submit("b")
    assert new.dispatch() == [(hold.id, p_new.id)]  # p_new is now full
    waiting = new.submit("b")
    behind = new.submit("a")

    # b may run only on p_new, which is busy: b waits at the head, and a waits behind it
    assert new.dispatch() == []
    found = new.explain(waiting.id)
    assert found.reason == "waiting_slot"
    assert queue_ids(new) == [waiting.id, behind.id]
    audit_ok(new)


def test_a_processor_that_registers_with_the_task_takes_what_waited_for_it(make_sched, clock):
    old, new = fleet(make_sched, clock)
    assert old.processor().register()
    stray = old.submit("b")
    assert old.dispatch() == []
    p_new = new.processor()
    assert p_new.register()

    assert old.dispatch() == [(stray.id, p_new.id)]
    audit_ok(old)


def test_submit_places_at_once_only_on_a_processor_that_may_run_it(make_sched, clock):
    old, new = fleet(make_sched, clock, dispatch_on_submit=True)
    p_old = old.processor(capacity=4)
    assert p_old.register()

    hb = new.submit("b")
    ha = new.submit("a")

    assert (hb.state, ha.state) == ("queued", "assigned")  # b has no processor; a was placed at once
    assert raw_record(new, ha.id)["p"] == p_old.id
    audit_ok(new)


def test_take_next_takes_only_what_its_kind_may_run(make_sched, clock):
    old, _new = fleet(make_sched, clock)
    p = old.processor(capacity=2, take_next=True)
    assert p.register()
    first = old.submit("a", 0)
    assert old.dispatch() == [(first.id, p.id)]
    task = start(old, p.id).task
    stray = old.submit("b")
    good = old.submit("a", 1)

    reply = ack(old, p.id, task, next_mode=ops.NEXT_TAKE)

    assert [t.id for t in reply.started] == [good.id]  # it passes b, which it has no function for
    assert queue_ids(old) == [stray.id]
    audit_ok(old)


@pytest.mark.parametrize("priority", [5, 2])
def test_in_lanes_too_a_task_no_processor_can_run_lets_the_tasks_behind_it_go(make_sched, clock, priority):
    old, _new = fleet(make_sched, clock)
    p = old.processor(capacity=4)
    assert p.register()
    stray = old.submit("b", _priority=priority, _key="t1")
    behind = old.submit("a", 1, _priority=priority, _key="t1")

    assert old.dispatch() == [(behind.id, p.id)]
    assert old.explain(stray.id).reason == "no_processor"
    assert old.explain(stray.id).detail["condition"] == "task name"
    audit_ok(old)


def gpu_fleet(make_sched, clock, **kwargs):
    """One app, three processors: a100 (vram 80), t4 (vram 16), and one with no labels."""
    sched = make_sched(clock=clock, **kwargs)
    sched.task(name="render")(lambda x=None: x)
    procs = {"a100": sched.processor(capacity=4, labels={"gpu": "a100", "vram_gb": 80}),
             "t4": sched.processor(capacity=4, labels={"gpu": "t4", "vram_gb": 16}),
             "cpu": sched.processor(capacity=4)}
    for p in procs.values():
        assert p.register()
    return sched, procs


def test_a_task_goes_only_to_a_processor_whose_labels_meet_its_requires(make_sched, clock):
    sched, procs = gpu_fleet(make_sched, clock)
    busy = sched.submit_many("render", [(1,), (2,)], requires={"gpu": "a100"})
    assert sorted(sched.dispatch()) == sorted((h.id, procs["a100"].id) for h in busy)  # cpu idle: not it

    big = sched.submit("render", 3, _requires={"vram_gb": (">=", 40)})
    anygpu = sched.submit("render", 4, _requires={"gpu": True})
    placed = dict(sched.dispatch())

    assert placed[big.id] == procs["a100"].id  # the only one with 40 GB or more, though it is busier
    assert placed[anygpu.id] == procs["t4"].id  # both gpus may: the least loaded takes it
    assert raw_record(sched, big.id)["rq"] == '[["vram_gb",">=",40]]'
    audit_ok(sched)


def test_a_requirement_no_processor_meets_waits_and_says_which_label(make_sched, clock):
    sched, procs = gpu_fleet(make_sched, clock)
    h100 = sched.submit("render", 1, _requires={"gpu": "h100", "vram_gb": (">=", 40)})
    behind = sched.submit("render", 2)

    assert sched.dispatch() == [(behind.id, procs["a100"].id)]
    found = sched.explain(h100.id)
    assert found.reason == "no_processor"
    assert (found.detail["condition"], found.detail["label"]) == ("label", "gpu")
    assert found.detail["requires"] == "gpu == h100, vram_gb >= 40"
    assert "no processor serving it has labels that meet gpu == h100, vram_gb >= 40" in found.text

    assert procs["cpu"].set_labels({"gpu": "h100", "vram_gb": 80})  # a new card in the box
    assert sched.dispatch() == [(h100.id, procs["cpu"].id)]
    audit_ok(sched)


def test_submit_places_a_task_with_requires_at_once_on_a_processor_that_meets_them(make_sched, clock):
    sched, procs = gpu_fleet(make_sched, clock, dispatch_on_submit=True)

    h = sched.submit("render", 1, _requires={"gpu": "t4"})
    stays = sched.submit("render", 2, _requires={"gpu": "v100"})

    assert h.state == "assigned" and raw_record(sched, h.id)["p"] == procs["t4"].id
    assert stays.state == "queued"
    audit_ok(sched)


def test_a_kind_that_lacks_a_queued_task_name_turns_routing_on_for_the_queue(make_sched, clock):
    old, new = fleet(make_sched, clock)
    p_new = new.processor(capacity=1)
    assert p_new.register()
    hb, ha = new.submit("b"), new.submit("a")
    routed = lambda: new.client.hexists(new.keys.routed, "default")  # noqa: E731
    assert not routed()  # one kind, with every name: placement reads no task's name
    assert {ops.text(n) for n in new.client.smembers(new.keys.queue_names("default"))} == {"a", "b"}

    p_old = old.processor(capacity=4)
    assert p_old.register()  # a kind without b now serves the queue

    assert routed()
    assert dict(new.dispatch()) == {hb.id: p_new.id, ha.id: p_old.id}
    p_old.deregister()
    assert not routed()
    audit_ok(new)
