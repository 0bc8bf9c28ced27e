"""Unique tasks: a submit whose unique key a live task holds creates nothing and answers that
task's handle; the key is freed by exactly the script that moves its holder past its
``unique_until`` point (start, or done / failed / cancelled / expired), on every path, and a
retry keeps it. On the embedded server and on a real one."""

from __future__ import annotations

import json

import pytest

import luasched

from .util import ack, audit_ok, error_json, raw_record, start


def holder(sched, key):
    found = sched.client.hget(sched.keys.unique_index, key)
    return None if found is None else luasched.core.ops.text(found)


def started(sched, p, handle):
    """Place handle's task on p and start it there; its Started."""
    assert sched.dispatch() == [(handle.id, p.id)]
    task = start(sched, p.id).task
    assert task.id == handle.id
    return task


@pytest.fixture
def proc(sched):
    p = sched.processor(capacity=2, lease=5)
    assert p.register()
    return p


def test_a_held_key_collapses_the_submit_into_its_holder(sched):
    first = sched.submit("add", 1, 2, _unique_key="order-7")
    assert first.created
    again = sched.submit("add", 5, 6, _unique_key="order-7")
    assert (again.id, again.created) == (first.id, False)
    assert again == first
    other = sched.submit("add", 1, 2, _unique_key="order-8")
    assert other.created and other.id != first.id
    assert holder(sched, "order-7") == first.id
    assert raw_record(sched, first.id)["u"] == "order-7"
    shown = sched.task_record(first.id)
    assert (shown.unique_key, shown.unique_until) == ("order-7", "finished")
    assert json.loads(raw_record(sched, first.id)["a"]) == [1, 2]  # no debounce: untouched
    counts = sched.counts()
    assert (counts["submitted"], counts["queued"], counts["deduplicated"]) == (2, 2, 1)
    audit_ok(sched)


def test_unique_true_keys_by_name_and_arguments(sched):
    @sched.task(unique=True)
    def total(a, b=0):
        return a + b

    @sched.task(unique=True)
    def other(a, b=0):
        return a - b

    a = sched.submit(total, 1, b={"x": 1, "y": 2})
    assert sched.submit(total, 1, b={"y": 2, "x": 1}).id == a.id  # dict order does not count
    assert sched.submit(total, 2, b={"x": 1, "y": 2}).created
    assert sched.submit(other, 1, b={"x": 1, "y": 2}).created  # another task: another key
    by_key = {k: v for k, v in sched.client.hgetall(sched.keys.unique_index).items()}
    assert len(by_key) == 3
    assert all(luasched.core.ops.text(k).startswith(("total:", "other:")) for k in by_key)
    audit_ok(sched)


def test_a_unique_callable_makes_the_key_from_the_arguments(sched):
    @sched.task(unique=lambda user, amount: f"user-{user}")
    def charge(user, amount):
        return amount

    a = sched.submit(charge, 7, 10)
    b = sched.submit(charge, 7, 99)
    assert (b.id, b.created) == (a.id, False)
    assert holder(sched, "charge:user-7") == a.id
    assert sched.submit(charge, 8, 10).created


def test_done_frees_the_key(sched, proc):
    h = sched.submit("add", 1, 2, _unique_key="k")
    task = started(sched, proc, h)
    assert sched.submit("add", 1, 2, _unique_key="k").id == h.id  # running: still held
    assert ack(sched, proc.id, task, "done", "3").status == "done"
    assert holder(sched, "k") is None
    assert "u" not in raw_record(sched, h.id)
    assert sched.submit("add", 1, 2, _unique_key="k").created
    audit_ok(sched)


def test_a_retry_keeps_the_key_and_the_last_failure_frees_it(sched, proc, clock):
    h = sched.submit("add", 1, 2, _unique_key="k", _max_attempts=2, _retry_backoff=1)
    task = started(sched, proc, h)
    assert ack(sched, proc.id, task, "error", error_json()).status == "retry"
    assert holder(sched, "k") == h.id  # not finished: still held
    assert sched.submit("add", 1, 2, _unique_key="k").id == h.id
    audit_ok(sched)
    clock.advance(2)
    task = started(sched, proc, h)
    assert ack(sched, proc.id, task, "error", error_json()).status == "failed"
    assert holder(sched, "k") is None
    assert sched.submit("add", 1, 2, _unique_key="k").created
    audit_ok(sched)


def test_retry_failed_revives_a_task_without_its_key(sched, proc):
    h = sched.submit("add", 1, 2, _unique_key="k", _max_attempts=1)
    assert ack(sched, proc.id, started(sched, proc, h), "error", error_json()).status == "failed"
    newer = sched.submit("add", 1, 2, _unique_key="k")
    assert sched.retry_failed([h.id]) == [h.id]
    assert holder(sched, "k") == newer.id
    assert "u" not in raw_record(sched, h.id)
    audit_ok(sched)


def test_cancel_frees_the_key(sched):
    h = sched.submit("add", 1, 2, _unique_key="k", _delay=30)
    assert h.cancel()
    assert holder(sched, "k") is None
    assert sched.submit("add", 1, 2, _unique_key="k").created
    audit_ok(sched)


def test_expiry_frees_the_key(sched, proc, clock):
    h = sched.submit("add", 1, 2, _unique_key="k", _expires=5)
    clock.advance(6)
    assert sched.reap().expired == 1
    assert raw_record(sched, h.id)["s"] == "failed"
    assert holder(sched, "k") is None
    assert sched.submit("add", 1, 2, _unique_key="k").created
    audit_ok(sched)


def test_a_lapsed_lease_requeues_and_keeps_the_key_then_reaped_to_failed_frees_it(sched, proc, clock):
    h = sched.submit("add", 1, 2, _unique_key="k", _max_attempts=2)
    started(sched, proc, h)
    clock.advance(6)  # the lease (5 s) lapses with the task running
    assert h.id in sched.reap()
    assert raw_record(sched, h.id)["s"] == "queued"  # attempt 1 of 2 used: back in its queue
    assert holder(sched, "k") == h.id
    audit_ok(sched)
    again = sched.processor(capacity=1, lease=5)
    assert again.register()
    started(sched, again, h)
    clock.advance(6)
    assert h.id in sched.reap()
    assert raw_record(sched, h.id)["s"] == "failed"  # its last attempt: reaped to failed
    assert holder(sched, "k") is None
    audit_ok(sched)


def test_unique_until_started_frees_the_key_at_start(sched, proc):
    h = sched.submit("add", 1, 2, _unique_key="k", _unique_until="started")
    assert raw_record(sched, h.id)["us"] == "k"
    assert sched.task_record(h.id).unique_until == "started"
    assert sched.submit("add", 1, 2, _unique_key="k").id == h.id  # queued: held
    task = started(sched, proc, h)
    assert holder(sched, "k") is None
    assert "us" not in raw_record(sched, h.id)
    assert sched.task_record(h.id).unique_key is None
    second = sched.submit("add", 1, 2, _unique_key="k")
    assert second.created and second.id != h.id  # the first still runs
    audit_ok(sched)
    assert ack(sched, proc.id, task, "done", "3").status == "done"
    assert holder(sched, "k") == second.id  # the first's ack leaves the second's key alone
    audit_ok(sched)


def test_unique_until_started_as_a_task_option(sched, proc):
    @sched.task(unique=True, unique_until="started")
    def job(n):
        return n

    h = sched.submit(job, 1)
    started(sched, proc, h)
    assert sched.submit(job, 1).created


def test_submit_many_collapses_duplicates_into_the_first(sched):
    handles = sched.submit_many("add", [(1,), (2,), (3,)], unique_key="k")
    assert [h.created for h in handles] == [True, False, False]
    assert {h.id for h in handles} == {handles[0].id}
    assert json.loads(raw_record(sched, handles[0].id)["a"]) == [1]
    counts = sched.counts()
    assert (counts["submitted"], counts["deduplicated"]) == (1, 2)
    audit_ok(sched)


def test_submit_many_with_unique_true_collapses_equal_arguments(sched):
    @sched.task(unique=True)
    def job(n):
        return n

    handles = sched.submit_many(job, [(1,), (2,), (1,), (2,), (3,)])
    assert [h.created for h in handles] == [True, True, False, False, True]
    assert handles[2].id == handles[0].id and handles[3].id == handles[1].id
    assert sched.counts()["submitted"] == 3


def test_map_stands_a_collapsed_item_as_its_holder(sched, proc):
    @sched.task(unique=True)
    def job(n):
        return n

    outside = sched.submit(job, 1)
    group = sched.map(job, [(1,), (2,), (2,)])
    assert group.ids[0] == outside.id and group.ids[1] == group.ids[2]
    assert group.members == [group.ids[1]]
    assert group.progress()["total"] == 1
    assert len(sched.dispatch()) == 2
    for slot in ("a", "b"):
        task = start(sched, proc.id, slot).task
        assert ack(sched, proc.id, task, "done", json.dumps(json.loads(task.args_json)[0]), slot=slot).status == "done"
    assert group.results(timeout=5) == [1, 2, 2]
    assert sorted(o.task_id for o in group.as_completed(timeout=5)) == sorted({outside.id, group.ids[1]})
    audit_ok(sched)


def test_audit_sees_an_index_out_of_step(sched):
    h = sched.submit("add", 1, 2, _unique_key="k")
    sched.client.hdel(sched.keys.unique_index, "k")
    problems = sched.audit().problems
    assert any("holds unique key 'k', which the index gives to no task" in p for p in problems)
    sched.client.hset(sched.keys.unique_index, "k", h.id)
    audit_ok(sched)
    sched.client.hset(sched.keys.unique_index, "ghost", "nosuchtask")
    assert any("unique key 'ghost' names task nosuchtask" in p for p in sched.audit().problems)
    sched.client.hdel(sched.keys.unique_index, "ghost")
    assert h.cancel()
    sched.client.hset(sched.keys.unique_index, "k", h.id)  # a finished task's key left behind
    assert any("names task " + h.id + ", whose record holds no key" in p for p in sched.audit().problems)


def test_a_stale_index_entry_does_not_block_the_key(sched):
    h = sched.submit("add", 1, 2, _unique_key="k")
    assert h.cancel()
    sched.client.hset(sched.keys.unique_index, "k", h.id)  # out of step (audit says so)
    fresh = sched.submit("add", 1, 2, _unique_key="k")
    assert fresh.created and holder(sched, "k") == fresh.id
    audit_ok(sched)


def test_a_replayed_submit_creates_nothing_twice(sched):
    a = sched.submit("add", 1, _unique_key="k", _id="mine")
    b = sched.submit("add", 1, _unique_key="k", _id="mine")  # the same call again
    assert a.id == b.id == "mine"
    assert sched.counts()["submitted"] == 1
    audit_ok(sched)
