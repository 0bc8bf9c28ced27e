"""policy.lua, limits.lua and pause.lua's keys, through the Scheduler: what limit(), remove_limit(),
set_weight(), set_queue() and pause(key=) write reads back the same (limits(), paused()), and a
submit naming a limiter that does not exist raises UnknownLimiter and writes nothing. How the
policies place tasks is tests/scripts/test_lanes*.py's. On the embedded server and on a real one."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

import luasched
import luasched.aio
from luasched.core.replies import LimitInfo, Paused

from .util import audit_ok, snapshot


def test_limit_creates_updates_lists_and_removes(sched):
    assert sched.limits() == []
    assert sched.limit("api", rate=5, per=2, burst=3) is True
    assert sched.limit("slow", rate=0.1, per=timedelta(minutes=1)) is True
    assert sched.limit("user:*", max_running=1) is True
    assert sched.limits() == [LimitInfo("api", 5.0, 2.0, 3, None, 0, 0, None),
                              LimitInfo("slow", 0.1, 60.0, 1, None, 0, 0, None),
                              LimitInfo("user:*", None, 1.0, 1, 1, 0, 0, None)]
    assert sched.limit("api", max_running=2) is False  # updated: every setting is the new one
    assert sched.limits()[0] == LimitInfo("api", None, 1.0, 1, 2, 0, 0, None)
    assert sched.remove_limit("api") is True
    assert sched.remove_limit("api") is False
    assert sched.remove_limit("user:*") is True
    assert [x.name for x in sched.limits()] == ["slow"]
    audit_ok(sched)


def test_a_pattern_lists_the_names_it_governs_while_they_hold_tasks(sched):
    sched.limit("user:*", max_running=2)
    p = sched.processor(capacity=2, lease=60)
    assert p.register()
    task = sched.submit("add", 1, 1, _limits=("user:7",))
    assert sched.dispatch() == [(task.id, p.id)]
    rows = {x.name: x for x in sched.limits()}
    assert rows["user:7"] == LimitInfo("user:7", None, 1.0, 1, 2, 1, 0, "user:*")
    assert rows["user:*"].pattern is None
    audit_ok(sched)


def test_weights_and_queue_aging_are_written_and_cleared(sched):
    weights, qconf = sched.keys.prefix + "weights", sched.keys.prefix + "qconf"
    sched.set_weight("acme", 2.5)
    assert sched.client.hget(weights, "acme") in (b"2.5", "2.5")
    sched.set_weight("acme", 1)  # the default again
    assert sched.client.hget(weights, "acme") is None
    sched.set_queue("emails", priority_aging=1.5)
    assert sched.client.hget(qconf, "emails") in (b"1500", "1500")
    sched.set_queue("emails", priority_aging=timedelta(minutes=1))
    assert sched.client.hget(qconf, "emails") in (b"60000", "60000")
    sched.set_queue("emails", priority_aging=None)  # strict again
    assert sched.client.hget(qconf, "emails") is None
    audit_ok(sched)


def test_pauses_by_key_read_back_and_resume_by_scope(sched, clock):
    since = int(clock.now * 1000)
    assert sched.pause(key="t:1") is True
    assert sched.pause("a", key="t:1") is True
    assert sched.pause("a", key="t:1") is False
    assert sched.pause("a") is True
    assert sched.paused() == [Paused("a", since), Paused(None, since, "t:1"), Paused("a", since, "t:1")]
    audit_ok(sched)
    assert sched.resume("a") is True  # the queue's own pause; its key's stays
    assert sched.resume(key="t:1") is True
    assert sched.paused() == [Paused("a", since, "t:1")]
    assert sched.resume("a", key="t:1") is True
    assert sched.resume("a", key="t:1") is False
    assert sched.paused() == []
    assert sched.client.exists(sched.keys.paused) == 0
    audit_ok(sched)


def test_a_task_naming_no_limiter_is_refused_and_nothing_is_written(sched):
    sched.limit("user:*", max_running=1)
    sched.limit("api", rate=1)
    before = snapshot(sched)
    with pytest.raises(luasched.UnknownLimiter, match="no limiter named 'nope'") as refused:
        sched.submit("add", 1, 2, _limits=("api", "nope"))
    assert isinstance(refused.value, ValueError)
    assert refused.value.name == "nope"
    with pytest.raises(ValueError, match="no limiter named 'usr:1'"):
        sched.submit_many("add", [(1, 2), (3, 4)], limits=("usr:1",))
    with pytest.raises(luasched.UnknownLimiter):
        sched.submit_many("add", [(i, i) for i in range(1500)] + [luasched.Args(0, 0)], limits=("api", "x"))
    assert snapshot(sched) == before
    assert sched.counts()["submitted"] == 0
    made = sched.submit("add", 1, 2, _limits=("api", "user:42"))  # a name a pattern governs
    assert made.state == "queued"
    audit_ok(sched)


def test_submits_sharing_a_call_raise_only_for_their_own_unknown_limiter(sched):
    """However the threads' submits are coalesced, each bad one raises and each good one is made."""
    sched.limit("ok", max_running=100)
    barrier = threading.Barrier(16)
    made: list[str] = []
    refused: list[int] = []

    def submit(i: int) -> None:
        barrier.wait()
        try:
            made.append(sched.submit("add", i, i, _limits=("ok",) if i % 2 else ("missing",)).id)
        except luasched.UnknownLimiter:
            refused.append(i)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(refused) == list(range(0, 16, 2))
    assert len(made) == 8 and sched.counts()["submitted"] == 8
    audit_ok(sched)


def test_a_shared_call_refused_is_sent_again_one_task_at_a_time(sched):
    """The coalescer's call itself: the tasks of a refused call go one by one; only the task
    naming the missing limiter is refused (its submit raises when it reads its refusal)."""
    sched.limit("ok", max_running=1)
    news = [sched.submission("add", (i, i), {"_limits": ("ok",) if i != 1 else ("missing",)}) for i in range(3)]
    sched._submit_shared(news)
    assert set(sched._refused) == {news[1].id}
    assert sched.counts()["submitted"] == 2
    with pytest.raises(luasched.TaskNotFound):
        sched.task_record(news[1].id)


def test_the_asyncio_scheduler_sets_and_reads_the_same_policies(make_async_client, namespace, clock):
    async def main() -> None:
        sched = luasched.aio.Scheduler(make_async_client(), namespace=namespace, clock=clock,
                                       dispatch_on_submit=False)
        try:
            assert await sched.limit("api", rate=2, burst=2) is True
            assert await sched.limits() == [LimitInfo("api", 2.0, 1.0, 2, None, 0, 0, None)]
            await sched.set_weight("acme", 3)
            await sched.set_queue("default", priority_aging=2)
            assert await sched.pause("default", key="acme") is True
            assert await sched.paused() == [Paused("default", int(clock.now * 1000), "acme")]
            with pytest.raises(luasched.UnknownLimiter):
                await sched.submit("add", 1, 2, _limits=("nope",))
            handle = await sched.submit("add", 1, 2, _key="acme", _priority=0, _limits=("api",))
            assert await handle.state() == "queued"
            assert await sched.remove_limit("api") is True
            assert await sched.resume("default", key="acme") is True
        finally:
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))
