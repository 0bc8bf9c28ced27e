"""purge_finished (lua/purge_finished.lua): dead letters deleted, the oldest first, in bounded
calls; group members whose group has not finished kept; stale entries dropped; counters that
still add up; bad input refused with nothing written. Each test on the embedded server and on a
real one."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import timedelta

import pytest

import luasched
from luasched import aio
from luasched.core import flows, ops
from luasched.core.fields import TASK
from luasched.core.tasks import new_request_id
from luasched.metrics import families, snapshot

from .util import ack, audit_ok, error_json, start
from .util import snapshot as state_snapshot


@pytest.fixture
def proc(sched: luasched.Scheduler) -> str:
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    return p.id


def fail_next(sched: luasched.Scheduler, pid: str) -> str:
    """Dispatch, start and fail the next task for processor pid (on its last attempt); its id."""
    sched.dispatch()
    task = start(sched, pid).task
    assert task is not None, "nothing to start"
    assert ack(sched, pid, task, "error", error_json()).status == "failed"
    return task.id


def dead_letters(sched: luasched.Scheduler, n: int, pid: str) -> list[str]:
    for _ in range(n):
        sched.submit("add", _max_attempts=1)
    return [fail_next(sched, pid) for _ in range(n)]


def failed_ids(sched: luasched.Scheduler) -> list[str]:
    return list(ops.text(sched.client.zrange(sched.keys.failed, 0, -1)))


def finished_failed_total(sched: luasched.Scheduler) -> float:
    for family in families(snapshot(sched)):
        for sample in family.samples:
            if sample.name == "luasched_tasks_finished_total" and sample.labels["outcome"] == "failed":
                return float(sample.value)
    raise AssertionError("no luasched_tasks_finished_total{outcome=failed}")


def test_purges_only_the_dead_letters_older_than_asked(sched, proc, clock):
    old = dead_letters(sched, 3, proc)
    clock.advance(100)
    new = dead_letters(sched, 2, proc)
    clock.advance(10)
    total_before = finished_failed_total(sched)

    assert sched.purge_finished(older_than=50) == 3

    assert sorted(failed_ids(sched)) == sorted(new)
    for task_id in old:
        assert sched.client.exists(sched.keys.task(task_id)) == 0
        assert sched.outcome(task_id).state == "unknown"
    for task_id in new:
        assert sched.outcome(task_id).state == "failed"
    counts = sched.counts()
    assert (counts["failed"], counts["purged"], counts["submitted"]) == (2, 3, 5)
    assert finished_failed_total(sched) == total_before == 5  # a counter: never goes down
    audit_ok(sched)

    assert sched.purge_finished(older_than=timedelta(seconds=10)) == 2
    assert failed_ids(sched) == []
    assert sched.counts()["purged"] == 5
    assert sched.retry_failed(new) == []  # nothing left to retry
    audit_ok(sched)


def test_older_than_zero_purges_up_to_now_and_nothing_else_finished(sched, proc):
    dead = dead_letters(sched, 2, proc)
    done = sched.submit("add")
    sched.dispatch()
    ack(sched, proc, start(sched, proc).task, "done", "1")
    queued = sched.submit("add")

    assert sched.purge_finished() == 2

    assert [sched.outcome(t).state for t in dead] == ["unknown", "unknown"]
    assert done.state == "done" and queued.state == "queued"
    audit_ok(sched)


def test_its_per_task_keys_go_with_it(sched, proc):
    h = sched.submit("add", _max_attempts=1)
    assert ops.decode_result(sched.call(ops.result(sched.ns, h.id, True)), h.id).state == "queued"  # a waiter
    fail_next(sched, proc)
    assert sched.client.exists(sched.keys.task_wake(h.id)) == 1

    assert sched.purge_finished() == 1

    assert sched.client.exists(sched.keys.task(h.id), sched.keys.task_wake(h.id),
                               sched.keys.task_children(h.id)) == 0
    audit_ok(sched)


def test_limit_caps_how_many_go_oldest_first(sched, proc, clock):
    ids = []
    for _ in range(5):
        ids += dead_letters(sched, 1, proc)
        clock.advance(1)

    assert sched.purge_finished(limit=2) == 2

    assert sorted(failed_ids(sched)) == sorted(ids[2:])
    assert sched.purge_finished(limit=10) == 3
    audit_ok(sched)


def test_loops_in_chunks_smaller_than_the_dead_letters(sched, proc, monkeypatch):
    monkeypatch.setattr(flows, "PURGE_CHUNK", 3)
    dead_letters(sched, 10, proc)
    sent = []
    real_call = sched.call

    def counting(call):
        if call.script == "purge_finished":
            sent.append(call.args)
        return real_call(call)

    monkeypatch.setattr(sched, "call", counting)

    assert sched.purge_finished() == 10

    assert len(sent) == 4  # 3 + 3 + 3 + 1
    assert {args[1] for args in sent} == {sent[0][1]}  # one now, so one cutoff, for every call
    assert failed_ids(sched) == []
    audit_ok(sched)


def test_members_of_a_group_not_finished_are_kept_for_its_callback(sched, proc, monkeypatch):
    monkeypatch.setattr(flows, "PURGE_CHUNK", 2)
    side = sched.processor(capacity=1, lease=600, queues=["side"])
    assert side.register()
    before = dead_letters(sched, 2, proc)
    group = sched.map("add", [(1,), (2,), (3,)], max_attempts=1, queue="side")
    callback = group.then("total", _on_failure="run")
    members = [fail_next(sched, side.id) for _ in range(2)]  # two of three failed: the group goes on
    after = dead_letters(sched, 3, proc)

    # in chunks of 2, the two kept members come first of the later ones: the loop passes over them
    assert sched.purge_finished() == 5

    assert sorted(failed_ids(sched)) == sorted(members)
    assert callback.state == "waiting"
    assert all(sched.outcome(t).state == "unknown" for t in before + after)
    audit_ok(sched)

    sched.dispatch()
    ack(sched, side.id, start(sched, side.id).task, "done", "3")  # the last member: the callback is fed
    assert callback.state == "queued"
    fed = json.loads(sched.client.hget(sched.keys.task(callback.id), TASK.args))
    assert [v.get("type") if isinstance(v, dict) else v for v in fed[0]] == ["ValueError", "ValueError", 3]

    assert sched.purge_finished() == 2  # the group has ended: its dead letters may go now
    assert failed_ids(sched) == []
    audit_ok(sched)


def test_a_stale_entry_is_dropped_and_counted_apart(sched, proc):
    dead_letters(sched, 2, proc)
    evicted, kept = failed_ids(sched)  # the oldest first (the same ms: by id)
    sched.client.delete(sched.keys.task(evicted))  # as an eviction would
    assert not sched.audit().ok

    assert sched.purge_finished(older_than=3600) == 0  # nothing old enough
    reply = ops.decode_purge_finished(sched.call(ops.purge_finished(sched.ns, sched.now_ms(), 0, 0, 1, "r1")))

    assert (reply.purged, reply.skipped, reply.stale, reply.more) == (0, 0, 1, True)
    assert failed_ids(sched) == [kept]
    assert sched.counts()["purged"] == 1  # it left the namespace
    audit_ok(sched)


def test_a_replayed_call_answers_as_the_first(sched, proc):
    dead_letters(sched, 3, proc)
    call = ops.purge_finished(sched.ns, sched.now_ms(), 0, 0, 2, new_request_id())

    first = ops.decode_purge_finished(sched.call(call))
    again = ops.decode_purge_finished(sched.call(call))

    assert first == again and (first.purged, first.more) == (2, True)
    assert len(failed_ids(sched)) == 1
    audit_ok(sched)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"older_than": -1}, ValueError),
    ({"older_than": math.nan}, ValueError),
    ({"older_than": math.inf}, ValueError),
    ({"older_than": True}, TypeError),
    ({"older_than": "60"}, TypeError),
    ({"older_than": timedelta(seconds=-5)}, ValueError),
    ({"limit": 0}, ValueError),
    ({"limit": True}, TypeError),
    ({"limit": 2.5}, TypeError),
])
def test_bad_input_is_refused_with_nothing_written(sched, proc, kwargs, error):
    ids = dead_letters(sched, 2, proc)
    before = state_snapshot(sched, *ids)

    with pytest.raises(error, match="older_than|limit"):
        sched.purge_finished(**kwargs)

    assert state_snapshot(sched, *ids) == before
    assert sorted(failed_ids(sched)) == sorted(ids)


@pytest.mark.parametrize("argv", [
    ("", "-1", "0", "10", "r"), ("", "0", "-1", "10", "r"), ("", "0", "0", "0", "r"), ("", "0", "0", "10001", "r"),
    ("", "x", "0", "10", "r"), ("", "0", "0", "10", ""),
])
def test_the_script_refuses_bad_arguments(sched, proc, argv):
    ids = dead_letters(sched, 1, proc)
    call = ops.Call("purge_finished", sched.keys.fixed, (sched.keys.prefix, *argv))
    with pytest.raises(luasched.ScriptError, match="purge_finished: bad"):
        sched.call(call)
    assert failed_ids(sched) == ids


def test_the_asyncio_front_end_purges_as_well(sched, proc, make_async_client, namespace, clock):
    ids = dead_letters(sched, 3, proc)

    async def main() -> int:
        client = make_async_client()
        try:
            return await aio.Scheduler(client, namespace=namespace, clock=clock).purge_finished(limit=2)
        finally:
            await client.aclose()

    assert asyncio.run(main()) == 2
    assert len(failed_ids(sched)) == 1 and failed_ids(sched)[0] in ids
    audit_ok(sched)


def test_a_task_waiting_for_a_purged_parent_and_another_settles_as_before(sched, proc):
    first = sched.submit("add", _max_attempts=1)
    second = sched.submit("add", _queue="side")
    child = sched.submit("add", _after=[first, second], _on_failure="run")
    fail_next(sched, proc)
    assert child.state == "waiting"

    assert sched.purge_finished() == 1

    audit_ok(sched)  # what the child waits for: the purged one counts as finished
    side = sched.processor(capacity=1, lease=600, queues=["side"])
    assert side.register()
    sched.dispatch()
    ack(sched, side.id, start(sched, side.id).task, "done", "2")
    assert child.state == "queued"  # its parents' ends were counted as they came: it runs
    audit_ok(sched)


def test_sharded_purges_every_shard_up_to_the_limit_in_all(make_client, namespace):
    work = luasched.Sharded(make_client(), namespaces=[f"{namespace}.{i}" for i in range(3)],
                            dispatch_on_submit=False)
    try:
        for shard in work.schedulers:
            p = shard.processor(capacity=1, lease=600)
            assert p.register()
            dead_letters(shard, 2, p.id)
        assert work.counts()["failed"] == 6

        assert work.purge_finished(limit=4) == 4
        assert work.counts()["failed"] == 2
        with pytest.raises(ValueError, match="older_than"):
            work.purge_finished(older_than=-1)
        assert work.purge_finished(older_than=timedelta(0)) == 2
        counts = work.counts()
        assert (counts["failed"], counts["purged"]) == (0, 6)
        assert work.audit().ok
    finally:
        work.close()
