"""Tasks that wait for others (core/deps, lib/lifecycle finish and settle): chords (group.then),
chains (handle.then) and _after, every _on_failure, cancel and expiry of a waiting task, and
bad input refused with nothing written. Each test on the embedded server and on a real one."""

from __future__ import annotations

import json

import pytest

import luasched
from luasched.core import ops

from .util import ack, audit_ok, error_json, raw_record, snapshot, start


def finish(sched: luasched.Scheduler, pid: str, outcome: str = "done", payload: str = "null") -> str:
    """Dispatch, start and ack the next task for processor pid; returns its id."""
    sched.dispatch()
    task = start(sched, pid).task
    assert task is not None, "nothing to start"
    assert ack(sched, pid, task, outcome, payload).statuses
    return task.id


def args_of(sched: luasched.Scheduler, task_id: str) -> object:
    return json.loads(raw_record(sched, task_id)["a"])


@pytest.fixture
def proc(sched: luasched.Scheduler) -> str:
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    return p.id


def test_a_chord_callback_waits_then_gets_the_results_in_submission_order(sched, proc):
    group = sched.map("add", [(1,), (2,), (3,)])
    callback = group.then("total", 10, scale=2)
    assert callback.state == "waiting"
    assert sched.counts()["waiting"] == 1
    why = callback.explain()
    assert why.reason == "waiting_dependencies"
    assert why.detail["waiting_for"] == [{"group": group.id}] and why.detail["left"] == 1
    assert why.detail["fed"] is True and why.detail["on_failure"] == "fail"
    assert f"group {group.id}" in why.text
    audit_ok(sched)

    finished = {finish(sched, proc, "done", json.dumps(f"r-{i}")): f"r-{i}" for i in range(3)}
    assert callback.state == "queued" and sched.counts()["waiting"] == 0
    assert args_of(sched, callback.id) == {"args": [[finished[m] for m in group.ids], 10], "kwargs": {"scale": 2}}
    audit_ok(sched)
    assert finish(sched, proc) == callback.id  # an ordinary task now


def test_the_members_results_are_kept_until_the_callback_has_them(sched, proc):
    group = sched.map("add", [(1,), (2,)])
    group.then("total")
    first = finish(sched, proc, "done", "1")
    assert sched.client.ttl(sched.keys.task(first)) == -1  # kept for the callback, however long the rest take
    finish(sched, proc, "done", "2")
    assert sched.client.ttl(sched.keys.task(first)) > 0  # the callback has it: the usual keep again


def test_a_chain_three_deep_feeds_each_result_on(sched, proc):
    first = sched.submit("add", 1)
    second = first.then("add", 2)
    third = second.then("add", 3)
    assert (second.state, third.state) == ("waiting", "waiting")
    assert finish(sched, proc, "done", "11") == first.id
    assert (second.state, third.state) == ("queued", "waiting")
    assert args_of(sched, second.id) == [11, 2]
    assert finish(sched, proc, "done", '{"n": 13}') == second.id
    assert args_of(sched, third.id) == [{"n": 13}, 3]
    assert finish(sched, proc, "done", "16") == third.id
    assert third.result() == 16
    audit_ok(sched)


def test_after_waits_for_every_parent_without_their_results(sched, proc):
    a, b = sched.submit("add", 1), sched.submit("add", 2)
    group = sched.map("add", [(3,)])
    child = sched.submit("add", 4, 5, _after=[a, b.id, group])
    assert child.explain().detail["waiting_for"] == [{"task": a.id}, {"task": b.id}, {"group": group.id}]
    for left in (2, 1):
        finish(sched, proc)
        assert child.state == "waiting" and child.explain().detail["left"] == left
    finish(sched, proc)
    assert child.state == "queued" and args_of(sched, child.id) == [4, 5]
    audit_ok(sched)


def test_a_parent_that_has_ended_already_releases_at_once(sched, proc):
    parent = sched.submit("add", 1)
    finish(sched, proc, "done", "7")
    child = parent.then("add", 1)
    assert child.state == "queued" and args_of(sched, child.id) == [7, 1]
    assert sched.submit("add", _after=[parent]).state == "queued"
    audit_ok(sched)


def failed_member(sched: luasched.Scheduler, proc: str, group: luasched.Group) -> None:
    finish(sched, proc, "done", "1")
    finish(sched, proc, "error", error_json("chunk 7: corrupt input"))  # one attempt: a dead letter


@pytest.mark.parametrize("policy", ["fail", "run", "skip"])
def test_on_failure_decides_what_a_failed_member_means(sched, proc, policy):
    group = sched.map("add", [(1,), (2,)], max_attempts=1)
    callback = group.then("total", _on_failure=policy)
    failed_member(sched, proc, group)
    if policy == "fail":
        assert callback.state == "failed"
        with pytest.raises(luasched.DependencyFailed, match="ended failed or cancelled") as raised:
            callback.result()
        assert raised.value.error_type == "DependencyFailed"
        assert raw_record(sched, callback.id).get("n") is None  # it used no attempt
    elif policy == "run":
        assert callback.state == "queued"
        assert args_of(sched, callback.id) == [[1, {"error": "chunk 7: corrupt input", "type": "ValueError"}]]
    else:
        assert callback.state == "cancelled"
        with pytest.raises(luasched.TaskCancelled):
            callback.result()
    assert sched.counts()["waiting"] == 0
    audit_ok(sched)


def test_a_failure_cascades_down_a_chain_in_the_same_call(sched, proc):
    first = sched.submit("add", 1, _max_attempts=1)
    second = first.then("add")
    third = second.then("add")
    skipped = second.then("add", _on_failure="skip")
    finish(sched, proc, "error", error_json())
    assert (first.state, second.state, third.state, skipped.state) == ("failed", "failed", "failed", "cancelled")
    assert sched.counts()["failed"] == 3
    audit_ok(sched)
    assert sched.retry_failed([second.id, third.id]) == []  # they never ran: nothing to run them with


def test_a_cancelled_member_counts_as_not_done(sched, proc):
    group = sched.map("add", [(1,), (2,)])
    callback = group.then("total", _on_failure="run")
    assert group.handles[0].cancel()
    finish(sched, proc, "done", "2")
    assert args_of(sched, callback.id) == [[{"error": "cancelled", "type": "TaskCancelled"}, 2]]
    audit_ok(sched)


def test_cancelling_a_waiting_task_leaves_its_parents_alone_and_ends_its_children(sched, proc):
    parent = sched.submit("add", 1)
    child = parent.then("add")
    grandchild = child.then("add")
    assert child.cancel()
    assert (child.state, grandchild.state) == ("cancelled", "failed")  # _on_failure fail
    audit_ok(sched)
    finish(sched, proc)  # the parent ends: the cancelled child is skipped
    assert parent.state == "done" and child.state == "cancelled"
    assert sched.client.exists(sched.keys.task_children(parent.id)) == 0
    audit_ok(sched)


def test_a_waiting_task_past_its_deadline_expires_in_the_reap_pass(sched, proc, clock):
    parent = sched.submit("add", 1)
    child = parent.then("add", _expires=5)
    clock.advance(6)
    sched.reap()
    assert child.state == "failed"
    with pytest.raises(luasched.TaskExpired):
        child.result()
    finish(sched, proc)
    assert child.state == "failed" and sched.counts()["expired"] == 1
    audit_ok(sched)


def test_a_member_reaped_to_failed_releases_the_callback(sched, clock):
    p = sched.processor(capacity=1, lease=5)
    assert p.register()
    group = sched.map("add", [(1,)], max_attempts=1)
    callback = group.then("total")
    sched.dispatch()
    assert start(sched, p.id).task is not None
    clock.advance(6)  # its lease lapses while the member runs on its last attempt
    sched.reap()
    assert group.handles[0].state == "failed" and callback.state == "failed"
    audit_ok(sched)


def test_a_chord_of_a_finished_group_whose_members_are_gone_gets_null(sched, proc):
    group = sched.map("add", [(1,)])
    finish(sched, proc, "done", "1")
    sched.client.delete(sched.keys.task(group.ids[0]))  # its keep ran out
    callback = group.then("total")
    assert args_of(sched, callback.id) == [[{"error": "gone", "type": "TaskFailed"}]]


def test_waiting_for_what_does_not_exist_is_refused_and_writes_nothing(sched):
    real = sched.submit("add", 1)
    before = snapshot(sched, real.id)
    with pytest.raises(luasched.TaskNotFound, match="no-such"):
        sched.submit("add", _after=[real, "no-such"])
    with pytest.raises(luasched.TaskNotFound, match="no-such"):
        sched.handle("no-such").then("add")
    with pytest.raises(luasched.GroupNotFound, match="no-group"):
        luasched.Group(sched, "no-group", []).then("add")
    assert snapshot(sched, real.id) == before
    audit_ok(sched)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"_after": [], }, ValueError, "empty"),
    ({"_after": "abc"}, TypeError, "list"),
    ({"_after": [3]}, TypeError, "TaskHandles"),
    ({"_after": ["bad id"]}, ValueError, "task id"),
    ({"_on_failure": "run"}, TypeError, "goes with _after"),
    ({"_after": ["x"], "_on_failure": "retry"}, ValueError, "_on_failure"),
    ({"_after": ["x"], "_delay": 5}, ValueError, "_delay"),
])
def test_bad_dependencies_raise_at_the_call(sched, options, error, match):
    before = snapshot(sched)
    with pytest.raises(error, match=match):
        sched.submit("add", 1, **options)
    assert snapshot(sched) == before


def test_then_takes_no_after_and_checks_the_signature_with_the_result_first(sched):
    @sched.task
    def total(results, scale=1):
        return sum(results) * scale

    parent = sched.submit("add", 1)
    with pytest.raises(TypeError, match="_after"):
        parent.then(total, _after=[parent])
    with pytest.raises(TypeError, match="total"):
        parent.then(total, 1, 2)  # three positional arguments with the result: one too many
    assert parent.then(total, 3).state == "waiting"


def test_then_on_a_group_of_another_namespace_is_refused(sched, make_client):
    other = luasched.Scheduler(make_client(), namespace=sched.namespace + "-other", dispatch_on_submit=False)
    group = other.map("add", [(1,)])
    with pytest.raises(ValueError, match="namespace"):
        sched.submit("add", _after=[group])
    with pytest.raises(ValueError, match="namespace"):
        sched.submit("add", _after=[other.submit("add", 1)])
    other.purge()


def test_the_waiting_index_agrees_with_audit_when_broken(sched):
    parent = sched.submit("add", 1)
    child = parent.then("add")
    sched.client.hset(sched.keys.task(child.id), "dn", "0")  # a counter that lost a parent
    found = sched.audit()
    assert not found.ok and any(child.id in p and "waits for" in p for p in found.problems)
    assert ops.text(sched.client.zrange(sched.keys.waiting, 0, -1)) == [child.id]


def test_a_waiting_task_is_not_counted_against_its_queues_cap(sched, proc):
    sched.set_queue("default", max_pending=1)
    parent = sched.submit("add", 1)
    with pytest.raises(luasched.QueueFull):
        sched.submit("add", 2)
    child = sched.submit("add", 3, _after=[parent])  # in no queue yet
    assert child.state == "waiting"
    finish(sched, proc)  # released into the queue, whatever its cap: like a retry, it is never refused
    assert child.state == "queued"
    audit_ok(sched)


def test_a_task_released_by_an_expiry_in_a_dispatch_is_placed_by_that_dispatch(sched, clock):
    """The property machine's case: the parent, in queue b, expires as dispatch meets it; the
    child it releases into queue a (read before b, empty then) is placed by the same call."""
    p = sched.processor(capacity=2, queues=("a", "b"), lease=600)
    assert p.register()
    parent = sched.submit("add", 1, _queue="b", _expires=2)
    child = parent.then("add", _queue="a", _on_failure="run")
    clock.advance(3)
    assert sched.dispatch(6) == [(child.id, p.id)]
    assert parent.state == "failed" and child.state == "assigned"
    audit_ok(sched)
