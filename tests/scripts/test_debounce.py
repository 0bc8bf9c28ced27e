"""Debounce: ``_debounce`` with a unique key. The first submit creates the task delayed by the
debounce; a later one while that task has not started gives it its arguments and, while it is
delayed, moves its start to now + debounce (the latest wins). A queued or assigned holder takes
the arguments and keeps its place; a holder that started is left alone. On the embedded server
and on a real one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from .util import ack, audit_ok, delayed_due_ms, error_json, queue_ids, raw_record, start


def args_of(sched, handle):
    return json.loads(raw_record(sched, handle.id)["a"])


@pytest.fixture
def proc(sched):
    p = sched.processor(capacity=2, lease=600)
    assert p.register()
    return p


def test_a_hundred_submits_in_the_window_give_one_run_with_the_last_arguments(sched, proc, clock):
    first = sched.submit("add", 0, _unique_key="save-doc-1", _debounce=10)
    assert delayed_due_ms(sched, first.id) == int(clock.now * 1000) + 10_000
    for i in range(1, 100):
        clock.advance(0.05)
        again = sched.submit("add", i, _unique_key="save-doc-1", _debounce=10)
        assert (again.id, again.created) == (first.id, False)
        assert sched.dispatch() == []  # never due while the submits keep coming
    assert delayed_due_ms(sched, first.id) == int(clock.now * 1000) + 10_000
    clock.advance(9.9)
    assert sched.dispatch() == []
    clock.advance(0.2)
    assert sched.dispatch() == [(first.id, proc.id)]
    task = start(sched, proc.id).task
    assert json.loads(task.args_json) == [99]
    assert ack(sched, proc.id, task, "done", "99").status == "done"
    counts = sched.counts()
    assert (counts["submitted"], counts["deduplicated"], counts["done"]) == (1, 99, 1)
    assert first.result(timeout=5) == 99
    audit_ok(sched)


def test_a_timedelta_debounce_and_the_latest_debounce_wins(sched, clock):
    first = sched.submit("add", 1, _unique_key="k", _debounce=timedelta(seconds=30))
    assert delayed_due_ms(sched, first.id) == int(clock.now * 1000) + 30_000
    sched.submit("add", 2, _unique_key="k", _debounce=2)
    assert delayed_due_ms(sched, first.id) == int(clock.now * 1000) + 2_000
    assert args_of(sched, first) == [2]


def test_a_queued_holder_takes_the_arguments_and_keeps_its_place(sched):
    before = sched.submit("add", 0)
    held = sched.submit("add", 1, _unique_key="k")  # not debounced: queued at once
    after = sched.submit("add", 2)
    again = sched.submit("add", 5, _unique_key="k", _debounce=10)
    assert (again.id, again.created) == (held.id, False)
    assert args_of(sched, held) == [5]
    assert queue_ids(sched) == [before.id, held.id, after.id]  # due already: not pushed back
    assert delayed_due_ms(sched, held.id) is None
    audit_ok(sched)


def test_an_assigned_holder_starts_with_the_latest_arguments(sched, proc):
    held = sched.submit("add", 1, _unique_key="k")
    assert sched.dispatch() == [(held.id, proc.id)]
    sched.submit("add", 7, _unique_key="k", _debounce=10)
    task = start(sched, proc.id).task
    assert json.loads(task.args_json) == [7]


def test_a_running_holder_is_left_alone(sched, proc):
    held = sched.submit("add", 1, _unique_key="k", _debounce=1)
    sched.client.zadd(sched.keys.delayed, {held.id: 0})  # due now
    assert sched.dispatch() == [(held.id, proc.id)]
    task = start(sched, proc.id).task
    again = sched.submit("add", 9, _unique_key="k", _debounce=1)
    assert (again.id, again.created) == (held.id, False)
    assert args_of(sched, held) == [1]
    assert ack(sched, proc.id, task, "done", "1").status == "done"
    audit_ok(sched)


def test_a_holder_waiting_for_its_retry_is_left_alone(sched, proc, clock):
    held = sched.submit("add", 1, _unique_key="k", _retry_backoff=5)
    assert sched.dispatch() == [(held.id, proc.id)]
    assert ack(sched, proc.id, start(sched, proc.id).task, "error", error_json()).status == "retry"
    due = delayed_due_ms(sched, held.id)
    again = sched.submit("add", 9, _unique_key="k", _debounce=60)
    assert (again.id, again.created) == (held.id, False)
    assert args_of(sched, held) == [1] and delayed_due_ms(sched, held.id) == due
    audit_ok(sched)


def test_a_key_freed_at_start_lets_a_debounced_submit_create(sched, proc, clock):
    first = sched.submit("add", 1, _unique_key="k", _debounce=1, _unique_until="started")
    clock.advance(2)
    assert sched.dispatch() == [(first.id, proc.id)]
    start(sched, proc.id)
    second = sched.submit("add", 2, _unique_key="k", _debounce=1, _unique_until="started")
    assert second.created and second.id != first.id
    assert delayed_due_ms(sched, second.id) == int(clock.now * 1000) + 1000
    audit_ok(sched)


def test_a_holder_of_another_task_name_keeps_its_arguments(sched):
    held = sched.submit("add", 1, _unique_key="shared", _debounce=10)
    other = sched.submit("mul", 2, _unique_key="shared", _debounce=10)
    assert (other.id, other.created) == (held.id, False)
    assert args_of(sched, held) == [1]


def test_debounced_duplicates_in_one_batch_leave_one_task_with_the_last_arguments(sched, clock):
    handles = sched.submit_many("add", [(1,), (2,), (3,)], unique_key="k", debounce=10)
    assert [h.created for h in handles] == [True, False, False]
    assert len({h.id for h in handles}) == 1
    assert args_of(sched, handles[0]) == [3]
    assert delayed_due_ms(sched, handles[0].id) == int(clock.now * 1000) + 10_000
    counts = sched.counts()
    assert (counts["submitted"], counts["delayed"], counts["deduplicated"]) == (1, 1, 2)
    later = sched.submit_many("add", [(4,), (5,)], unique_key="k", debounce=10)
    assert {h.id for h in later} == {handles[0].id}
    assert args_of(sched, handles[0]) == [5]
    audit_ok(sched)


def test_the_deadline_follows_the_latest_debounced_submit(sched, clock):
    held = sched.submit("add", 1, _unique_key="k", _debounce=10, _expires=60)
    clock.advance(30)
    sched.submit("add", 2, _unique_key="k", _debounce=10, _expires=60)
    assert raw_record(sched, held.id)["dx"] == str(int(clock.now * 1000) + 60_000)
    assert sched.client.zscore(sched.keys.deadlines, held.id) == int(clock.now * 1000) + 60_000
    audit_ok(sched)
