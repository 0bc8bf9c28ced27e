"""The race test with the asyncio front end: concurrent dispatchers (coroutines, each on its own
client) and asyncio processors on a real redis-server; every task runs exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import redis.asyncio

from luasched import aio

pytestmark = [pytest.mark.real_redis]

TASKS = 1000


def test_concurrent_async_dispatchers_hand_out_each_task_once(redis_server, namespace):
    async def main() -> None:
        clients: list[redis.asyncio.Redis] = []

        def make(**kwargs) -> aio.Scheduler:
            client = redis.asyncio.Redis(port=redis_server.port, protocol=2)
            clients.append(client)
            return aio.Scheduler(client, namespace=namespace, **kwargs)

        runs: Counter[int] = Counter()
        worker = make()

        @worker.task
        async def record(i: int) -> int:
            runs[i] += 1
            await asyncio.sleep(0)
            return i

        processors = [worker.processor(capacity=2, lease=30.0) for _ in range(4)]
        for p in processors:
            await p.start()
        handed: list[tuple[str, str]] = []
        stop = asyncio.Event()

        async def dispatcher() -> None:
            sched = make()
            while not stop.is_set():
                got = await sched.dispatch(25)
                handed.extend(got)
                if not got:
                    await asyncio.sleep(0.001)

        dispatchers = [asyncio.create_task(dispatcher()) for _ in range(4)]
        producer, eager = make(), make(dispatch_on_submit=True)
        handles = await producer.submit_many("record", [(i,) for i in range(TASKS // 2)])
        handles += [await eager.submit("record", i) for i in range(TASKS // 2, TASKS)]
        try:
            values = [await h.result(timeout=60) for h in handles]
        finally:
            stop.set()
            await asyncio.gather(*dispatchers)
            for p in processors:
                await p.stop(timeout=10)
        assert values == list(range(TASKS))
        assert sorted(runs) == list(range(TASKS)) and set(runs.values()) == {1}
        ids = [task_id for task_id, _ in handed]
        assert len(ids) == len(set(ids)), "dispatch handed a task out twice"
        audit = await producer.audit()
        assert audit.ok, audit.problems
        assert audit.counts["done"] == TASKS and audit.counts["processors"] == 0
        for client in clients:
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 120))
