"""A client you give luasched may speak RESP2 or RESP3 (redis-py's ``protocol=3``; redis-py 8's
``legacy_responses=False`` shapes too): the main calls answer the same with each, on both front
ends and both servers (issue 21: groups failed with "too many values to unpack" on RESP3)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
import redis

import luasched
from luasched import aio

#: Each client variant: its keyword arguments. redis-py 8 also offers its "unified" reply shapes.
PROTOCOLS: dict[str, dict[str, Any]] = {"resp2": {"protocol": 2}, "resp3": {"protocol": 3}}
if "legacy_responses" in inspect.signature(redis.Redis.__init__).parameters:
    PROTOCOLS["resp3-unified"] = {"protocol": 3, "legacy_responses": False}
    PROTOCOLS["resp2-unified"] = {"protocol": 2, "legacy_responses": False}


def add(x: int) -> int:
    return x + 1


def boom(x: int) -> int:
    raise ValueError(f"no {x}")


def expected(ids: dict[str, Any], processor_id: str) -> dict[str, Any]:
    """What every client variant must observe (see ``observe``)."""
    return {
        "result": 2,
        "results": [1, 2, 3],
        "as_completed": sorted((i, "done") for i in ids["group"]),
        "progress": {"total": 3, "done": 3, "failed": 0, "cancelled": 0, "pending": 0},
        "failed": [(ids["boom"], "boom", "ValueError", 1)],
        "counts": {"done": 4, "failed": 1, "queued": 0, "processors": 1},
        "queue_lengths": {"default": 0},
        "audit": True,
        "processors": [(processor_id, 8)],
        "record": ("done", [1], 1),
        "outcome": ("done", 2),
        "explain": "done",
        "paused": [(None, None), ("q2", None)],
        "limits": ["api"],
        "retry_failed": [ids["boom"]],
        "after_retry": "queued",
    }


def observe_sync(client: Any, namespace: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    s = luasched.Scheduler(client, namespace=namespace)
    s.task(add)
    s.task(boom)
    p = s.processor(capacity=8)
    p.start()
    try:
        h = s.submit("add", 1)
        bad = s.submit("boom", 7, _max_attempts=1)
        g = s.map("add", [(i,) for i in range(3)])
        seen: dict[str, Any] = {"result": h.result(timeout=20)}
        seen["results"] = g.results(timeout=20)
        seen["as_completed"] = sorted((o.task_id, o.state) for o in g.as_completed(timeout=20))
        seen["progress"] = g.progress()
        with pytest.raises(luasched.TaskFailed):
            bad.result(timeout=20)
        seen["failed"] = [(f.id, f.name, f.error_type, f.attempts) for f in s.failed()]
        counts = s.counts()
        seen["counts"] = {k: counts[k] for k in ("done", "failed", "queued", "processors")}
        seen["queue_lengths"] = s.queue_lengths()
        seen["audit"] = s.audit().ok
        seen["processors"] = [(i.id, i.capacity) for i in s.processors()]
        record = s.task_record(h.id)
        seen["record"] = (record.state, record.args, record.attempts)
        outcome = h.outcome()
        seen["outcome"] = (outcome.state, outcome.value())
        seen["explain"] = h.explain().reason
        s.pause()
        s.pause("q2")
        seen["paused"] = [(x.queue, x.key) for x in s.paused()]
        s.resume()
        s.resume("q2")
        s.limit("api", rate=10)
        seen["limits"] = [x.name for x in s.limits()]
    finally:
        assert p.stop(timeout=10)
    seen["retry_failed"] = s.retry_failed()
    seen["after_retry"] = bad.state
    ids = {"group": g.ids, "boom": bad.id}
    s.close()
    return seen, ids, p.id


async def observe_async(client: Any, namespace: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    s = aio.Scheduler(client, namespace=namespace)
    s.task(add)
    s.task(boom)
    p = s.processor(capacity=8)
    await p.start()
    try:
        h = await s.submit("add", 1)
        bad = await s.submit("boom", 7, _max_attempts=1)
        g = await s.map("add", [(i,) for i in range(3)])
        seen: dict[str, Any] = {"result": await h.result(timeout=20)}
        seen["results"] = await g.results(timeout=20)
        seen["as_completed"] = sorted([(o.task_id, o.state) async for o in g.as_completed(timeout=20)])
        seen["progress"] = await g.progress()
        with pytest.raises(luasched.TaskFailed):
            await bad.result(timeout=20)
        seen["failed"] = [(f.id, f.name, f.error_type, f.attempts) for f in await s.failed()]
        counts = await s.counts()
        seen["counts"] = {k: counts[k] for k in ("done", "failed", "queued", "processors")}
        seen["queue_lengths"] = await s.queue_lengths()
        seen["audit"] = (await s.audit()).ok
        seen["processors"] = [(i.id, i.capacity) for i in await s.processors()]
        record = await s.task_record(h.id)
        seen["record"] = (record.state, record.args, record.attempts)
        outcome = await h.outcome()
        seen["outcome"] = (outcome.state, outcome.value())
        seen["explain"] = (await h.explain()).reason
        await s.pause()
        await s.pause("q2")
        seen["paused"] = [(x.queue, x.key) for x in await s.paused()]
        await s.resume()
        await s.resume("q2")
        await s.limit("api", rate=10)
        seen["limits"] = [x.name for x in await s.limits()]
    finally:
        assert await p.stop(timeout=10)
    seen["retry_failed"] = await s.retry_failed()
    seen["after_retry"] = await bad.state()
    ids = {"group": g.ids, "boom": bad.id}
    await s.close()
    return seen, ids, p.id


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_main_calls_answer_alike_on_each_protocol_sync(protocol, make_client, namespace):
    client = make_client(**PROTOCOLS[protocol])
    seen, ids, processor_id = observe_sync(client, namespace)
    assert seen == expected(ids, processor_id)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_main_calls_answer_alike_on_each_protocol_asyncio(protocol, make_async_client, namespace):
    async def main() -> tuple[dict[str, Any], dict[str, Any], str]:
        client = make_async_client(**PROTOCOLS[protocol])
        try:
            return await observe_async(client, namespace)
        finally:
            await client.aclose()

    seen, ids, processor_id = asyncio.run(asyncio.wait_for(main(), 60))
    assert seen == expected(ids, processor_id)
