"""Backpressure: ``set_queue(queue, max_pending=N)``. A submit, submit_many or map that would
bring the queue's waiting tasks (queued, in its lanes, delayed) above N raises QueueFull in the
submit script itself, and writes nothing. On the embedded server and on a real one."""

from __future__ import annotations

import asyncio
import threading

import pytest

import luasched
import luasched.aio

from .util import ack, audit_ok, error_json, start


def counts(sched):
    return sched.counts()


def full(sched, queue, depth, cap, refused):
    """Assert that the block raises QueueFull naming the queue, its depth, cap and the refused."""
    return pytest.raises(luasched.QueueFull, match=rf"queue '{queue}' is full: {depth} waiting, max_pending {cap} "
                                                   rf"\({refused} more refused")


def test_a_full_queue_refuses_the_submit_and_writes_nothing(sched):
    sched.set_queue("emails", max_pending=3)
    for i in range(3):
        sched.submit("add", i, 1, _queue="emails")
    before = counts(sched)
    with full(sched, "emails", 3, 3, 1) as refused:
        sched.submit("add", 9, 9, _queue="emails", _id="the-fourth")
    exc = refused.value
    assert (exc.queue, exc.depth, exc.max_pending, exc.refused) == ("emails", 3, 3, 1)
    assert sched.client.hget(sched.keys.queue_caps, "emails") in (b"3", "3")
    assert isinstance(exc, luasched.LuaschedError)
    assert sched.client.exists(sched.keys.task("the-fourth")) == 0
    assert counts(sched) == before
    sched.submit("add", 1, 1)  # another queue has no cap
    sched.submit("add", 1, 1, _queue="other")
    audit_ok(sched)


def test_delayed_tasks_count_and_free_their_room_when_they_leave(sched, clock):
    sched.set_queue("q", max_pending=3)
    later = sched.submit("add", 1, 1, _queue="q", _delay=10)
    sched.submit("add", 2, 2, _queue="q", _delay=20)
    sched.submit("add", 3, 3, _queue="q")
    with full(sched, "q", 3, 3, 1):
        sched.submit("add", 4, 4, _queue="q")
    clock.advance(15)  # one comes due: queued now, still waiting
    sched.dispatch()
    assert sched.counts()["delayed"] == 1
    with full(sched, "q", 3, 3, 1):
        sched.submit("add", 4, 4, _queue="q")
    assert later.cancel() is True  # queued now: cancel takes it out of its queue
    sched.submit("add", 4, 4, _queue="q")  # its room is free again
    with full(sched, "q", 3, 3, 1):
        sched.submit("add", 5, 5, _queue="q")
    audit_ok(sched)


def test_a_cancelled_delayed_task_frees_its_room(sched):
    sched.set_queue("q", max_pending=1)
    waiting = sched.submit("add", 1, 1, _queue="q", _delay=60)
    with full(sched, "q", 1, 1, 1):
        sched.submit("add", 2, 2, _queue="q", _delay=60)
    assert waiting.cancel() is True
    sched.submit("add", 2, 2, _queue="q", _delay=60)
    audit_ok(sched)


def test_submit_many_and_map_are_all_or_nothing(sched):
    sched.set_queue("q", max_pending=5)
    sched.submit_many("add", [(i, i) for i in range(3)], queue="q")
    before = counts(sched)
    with full(sched, "q", 3, 5, 3):
        sched.submit_many("add", [(i, i) for i in range(3)], queue="q", ids=["m1", "m2", "m3"])
    with full(sched, "q", 3, 5, 4):
        sched.map("add", [(i, i) for i in range(4)], queue="q")
    assert counts(sched) == before
    assert not any(sched.client.exists(sched.keys.task(i)) for i in ("m1", "m2", "m3"))
    assert sched.client.keys(sched.keys.prefix + "g:*") == []  # no group was made
    group = sched.map("add", [(1, 1), (2, 2)], queue="q")  # exactly up to the cap
    assert len(group.ids) == 2
    assert counts(sched)["queued"] == 5
    audit_ok(sched)


def test_a_replayed_submit_is_not_counted_again(sched):
    sched.set_queue("q", max_pending=1)
    sched.submit("add", 1, 1, _queue="q", _id="once")
    handle = sched.submit("add", 1, 1, _queue="q", _id="once")  # the same id: nothing new, no refusal
    assert handle.id == "once"
    assert counts(sched)["queued"] == 1


def test_tasks_in_lanes_count(sched):
    sched.set_queue("q", max_pending=2)
    sched.submit("add", 1, 1, _queue="q", _priority=1)
    sched.submit("add", 2, 2, _queue="q", _key="tenant-a")
    with full(sched, "q", 2, 2, 1):
        sched.submit("add", 3, 3, _queue="q")
    audit_ok(sched)


def test_placed_tasks_leave_room(sched):
    sched.set_queue("default", max_pending=2)
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    sched.submit_many("add", [(1, 1), (2, 2)])
    with full(sched, "default", 2, 2, 1):
        sched.submit("add", 3, 3)
    assert len(sched.dispatch()) == 1  # one assigned: no longer waiting
    sched.submit("add", 3, 3)
    audit_ok(sched)


def test_retries_are_never_refused_and_count_while_delayed(sched):
    sched.set_queue("default", max_pending=1)
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    task = sched.submit("add", 1, 1, _retry_backoff=30)
    assert sched.dispatch() == [(task.id, p.id)]
    started = start(sched, p.id).task
    sched.submit("add", 2, 2)  # the queue is empty again: room for one
    assert ack(sched, p.id, started, "error", error_json()).status == "retry"
    assert counts(sched)["delayed"] == 1  # the retry waits, over the cap: never refused
    assert sched.client.hget(sched.keys.delayed_counts, "default") in (b"1", "1")
    with full(sched, "default", 2, 1, 1):
        sched.submit("add", 3, 3)
    audit_ok(sched)


def test_removing_the_cap_and_changing_aging_alone(sched):
    sched.set_queue("q", max_pending=1)
    sched.submit("add", 1, 1, _queue="q")
    sched.set_queue("q", priority_aging=5)  # the cap is kept
    with full(sched, "q", 1, 1, 1):
        sched.submit("add", 2, 2, _queue="q")
    sched.set_queue("q", max_pending=0)
    with full(sched, "q", 1, 0, 1):
        sched.submit("add", 2, 2, _queue="q")
    sched.set_queue("q", max_pending=None)
    sched.submit_many("add", [(i, i) for i in range(10)], queue="q")
    assert sched.client.hget(sched.keys.prefix + "qconf", "q") in (b"5000", "5000")  # aging kept
    audit_ok(sched)


def test_submits_racing_from_8_threads_never_pass_the_cap(make_sched):
    """Eight threads submit one by one into a queue capped at 100 (coalesced submits share script
    calls; a refused call is resent task by task): exactly 100 are created, the rest refused."""
    sched = make_sched()
    sched.set_queue("race", max_pending=100)
    made, refused = [], []
    lock = threading.Lock()

    def producer():
        for i in range(40):
            try:
                h = sched.submit("add", i, i, _queue="race")
            except luasched.QueueFull as exc:
                assert exc.queue == "race" and exc.max_pending == 100
                with lock:
                    refused.append(exc)
            else:
                with lock:
                    made.append(h.id)

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 100
    assert len(set(made)) == 100
    assert len(refused) == 220
    assert sched.counts()["queued"] == 100
    assert sched.counts()["submitted"] == 100
    audit_ok(sched)


def test_asyncio_raises_the_same(make_async_client, namespace):
    async def run():
        client = make_async_client()
        sched = luasched.aio.Scheduler(client, namespace=namespace, dispatch_on_submit=False)
        try:
            await sched.set_queue("q", max_pending=1)
            await sched.submit("add", 1, 1, _queue="q")
            with pytest.raises(luasched.QueueFull) as refused:
                await sched.submit_many("add", [(2, 2)], queue="q")
            assert (refused.value.queue, refused.value.depth) == ("q", 1)
            made = await asyncio.gather(*(sched.submit("add", i, i, _queue="q") for i in range(5)),
                                        return_exceptions=True)
            assert all(isinstance(x, luasched.QueueFull) for x in made)  # coalesced, then each refused
            assert (await sched.counts())["queued"] == 1
        finally:
            await client.aclose()

    asyncio.run(run())
