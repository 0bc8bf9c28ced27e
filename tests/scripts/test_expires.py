"""Deadlines: ``expires`` / ``_expires``. A task not started by its deadline is never started: it
ends failed with TaskExpired, using no attempt, and counts in ``counts()["expired"]`` as well as
in failed. The placing scripts check the task they are about to place, start checks the task it
is about to start, and reap ends the expired tasks that still wait, in bounded calls, from the
deadline index. On the embedded server and on a real one."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

import luasched
import luasched.aio
from luasched.core import ops
from luasched.core.tasks import new_request_id

from .util import ack, audit_ok, pending_ids, queue_ids, raw_record, start


def in_index(sched):
    return [ops.text(x) for x in sched.client.zrange(sched.keys.deadlines, 0, -1)]


def assert_expired(sched, task):
    rec = raw_record(sched, task.id)
    assert rec["s"] == "failed"
    assert "n" not in rec  # no attempt used
    error = json.loads(rec["e"])
    assert error["type"] == "TaskExpired"
    with pytest.raises(luasched.TaskExpired) as got:
        task.result(timeout=5)
    assert isinstance(got.value, luasched.TaskFailed)
    assert got.value.error_type == "TaskExpired"
    assert task.id not in in_index(sched)


def test_a_queued_task_past_its_deadline_is_never_placed(sched, clock):
    p = sched.processor(capacity=2, lease=600)
    gone = sched.submit("add", 1, 1, _expires=5)
    kept = sched.submit("add", 2, 2, _expires=timedelta(seconds=60))
    assert in_index(sched) == [gone.id, kept.id]
    assert raw_record(sched, gone.id)["dx"] == str(int(clock.now * 1000) + 5000)
    clock.advance(6)
    assert p.register()
    assert sched.dispatch() == [(kept.id, p.id)]  # the expired head ended on the way
    assert_expired(sched, gone)
    counts = sched.counts()
    assert (counts["expired"], counts["failed"], counts["assigned"]) == (1, 1, 1)
    audit_ok(sched)


def test_a_task_started_in_time_keeps_running_past_its_deadline(sched, clock):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    task = sched.submit("add", 1, 1, _expires=5)
    assert sched.dispatch() == [(task.id, p.id)]
    started = start(sched, p.id).task
    assert started.id == task.id
    assert in_index(sched) == []  # started: its deadline no longer applies
    clock.advance(10)
    assert sched.reap().expired == 0
    assert ack(sched, p.id, started, "done", "2").status == "done"
    assert task.result(timeout=5) == 2
    assert sched.counts()["expired"] == 0
    audit_ok(sched)


def test_an_assigned_task_whose_deadline_passes_is_not_started(sched, clock):
    p = sched.processor(capacity=2, lease=600)
    assert p.register()
    late = sched.submit("add", 1, 1, _expires=5)
    other = sched.submit("add", 2, 2)
    assert len(sched.dispatch()) == 2
    clock.advance(6)
    got = start(sched, p.id)
    assert got.task.id == other.id  # the expired one was skipped, and ended
    assert_expired(sched, late)
    assert pending_ids(sched, p.id) == []
    audit_ok(sched)  # the load fell by one: the idle ranking says so


def test_reap_ends_waiting_tasks_in_bounded_calls(sched, clock):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    assigned = sched.submit("add", 0, 0, _expires=5)
    assert sched.dispatch() == [(assigned.id, p.id)]
    queued = sched.submit_many("add", [(i, i) for i in range(4)], expires=5)
    delayed = sched.submit("add", 9, 9, _delay=30, _expires=5)
    never = sched.submit("add", 8, 8)  # no deadline
    clock.advance(6)
    first = sched.reap(limit=3)
    assert first.expired == 3
    assert first.more and bool(first)
    rest = sched.reap(limit=100)
    assert rest.expired == 3
    assert not rest.more
    for task in [assigned, *queued, delayed]:
        assert_expired(sched, task)
    assert queue_ids(sched) == [never.id]
    assert sched.counts()["expired"] == 6
    assert sched.counts()["delayed"] == 0
    audit_ok(sched)


def test_dispatch_names_the_next_deadline_so_the_loop_wakes_for_it(sched, clock):
    sched.submit("add", 1, 1, _expires=30)
    reply = ops.decode_dispatch(sched.call(ops.dispatch(sched.ns, sched.now_ms(), 10, new_request_id())))
    assert reply.next_deadline_ms == int(clock.now * 1000) + 30_000


def test_an_expired_head_releases_what_its_placement_took(sched, clock):
    sched.limit("one", max_running=1)
    p = sched.processor(capacity=2, lease=600)
    gone = sched.submit("add", 1, 1, _limits=("one",), _expires=5)
    kept = sched.submit("add", 2, 2, _limits=("one",))
    clock.advance(6)
    assert p.register()
    assert sched.dispatch() == [(kept.id, p.id)]  # the count the expired one took is free again
    assert_expired(sched, gone)
    assert [x.running for x in sched.limits() if x.name == "one"] == [1]
    audit_ok(sched)


@pytest.mark.parametrize("mode", [ops.NEXT_TAKE, ops.NEXT_PLACE])
def test_an_ack_that_takes_or_places_the_next_skips_expired_tasks(sched, clock, mode):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    first = sched.submit("add", 0, 0)
    assert sched.dispatch() == [(first.id, p.id)]
    running = start(sched, p.id).task
    gone = sched.submit("add", 1, 1, _expires=5)
    kept = sched.submit("add", 2, 2)
    clock.advance(6)
    reply = ack(sched, p.id, running, "done", "0", next_mode=mode)
    assert reply.next is not None and reply.next.id == kept.id
    assert_expired(sched, gone)
    audit_ok(sched)


def test_a_cancelled_task_leaves_the_deadline_index(sched):
    task = sched.submit("add", 1, 1, _expires=60)
    assert task.cancel() is True
    assert in_index(sched) == []
    audit_ok(sched)


def test_a_group_of_expired_members_finishes(sched, clock):
    group = sched.map("add", [(1, 1), (2, 2)], expires=1)
    clock.advance(2)
    assert sched.reap().expired == 2
    assert group.progress()["failed"] == 2
    with pytest.raises(luasched.TaskExpired):
        group.results(timeout=5)
    audit_ok(sched)


def test_the_decorator_sets_a_default_that_submit_overrides(sched, clock):
    @sched.task(expires=10)
    def quick(x):
        return x

    a = sched.submit(quick, 1)
    b = sched.submit(quick, 2, _expires=100)
    now = int(clock.now * 1000)
    assert raw_record(sched, a.id)["dx"] == str(now + 10_000)
    assert raw_record(sched, b.id)["dx"] == str(now + 100_000)
    assert "dx" not in raw_record(sched, sched.submit("add", 1, 1).id)


def test_asyncio_raises_task_expired(make_async_client, namespace, clock):
    async def run():
        client = make_async_client()
        sched = luasched.aio.Scheduler(client, namespace=namespace, dispatch_on_submit=False, clock=clock)
        try:
            task = await sched.submit("add", 1, 1, _expires=1)
            clock.advance(2)
            assert (await sched.reap()).expired == 1
            with pytest.raises(luasched.TaskExpired):
                await task.result(timeout=5)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_explain_names_the_deadline_then_the_expiry(sched, clock):
    task = sched.submit("add", 1, 1, _expires=5)
    waiting = sched.explain(task.id)
    assert waiting.state == "queued"
    assert waiting.detail["expires_ms"] == int(clock.now * 1000) + 5000
    clock.advance(6)
    assert sched.reap().expired == 1
    ended = sched.explain(task.id)
    assert (ended.state, ended.reason) == ("failed", "expired")
    assert ended.detail["error_type"] == "TaskExpired"
    assert "expires_ms" not in ended.detail
    record = sched.task_record(task.id)
    assert record.expires_ms == int(clock.now * 1000) - 1000


def test_an_expired_task_spends_no_rate_and_no_fair_turn(sched, clock):
    sched.limit("slow", rate=1, per=60, burst=1)  # one placement a minute
    p = sched.processor(capacity=2, lease=600)
    gone = sched.submit("add", 1, 1, _limits=("slow",), _key="a", _expires=5)
    kept = sched.submit("add", 2, 2, _limits=("slow",), _key="a")
    clock.advance(6)
    assert p.register()
    assert sched.dispatch() == [(kept.id, p.id)]  # the expired head took no token of the rate
    assert_expired(sched, gone)
    tags = {ops.text(k): float(v) for k, v in sched.client.hgetall(sched.keys.virtual_times).items()}
    assert tags == {"5:default": 0.0}  # one placement served the lane once: its tag was 0
    audit_ok(sched)


def test_a_retry_of_a_task_started_in_time_is_not_expired(sched, clock):
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    task = sched.submit("add", 1, 1, _expires=2, _retry_backoff=1)
    assert sched.dispatch() == [(task.id, p.id)]
    started = start(sched, p.id).task
    assert "dx" not in raw_record(sched, task.id)  # the deadline no longer applies
    assert ack(sched, p.id, started, "error", '{"type": "E", "message": "m", "traceback": ""}').status == "retry"
    clock.advance(3)  # past the old deadline; the retry is due
    assert sched.dispatch() == [(task.id, p.id)]
    again = start(sched, p.id).task
    assert again is not None and again.attempt == 2
    assert sched.counts()["expired"] == 0
    audit_ok(sched)
