"""The asyncio front end on the real topologies: a read/write split over a replica (with
durability), a Sentinel URL, and a 3-master Cluster (pipelines of scripts through the node that
holds the namespace)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from luasched import aio
from tests.servers import Cluster, RedisServer, Replicated, probe, start_replicated
from tests.topology.conftest import need_redis_server

pytestmark = pytest.mark.real_redis
_names = itertools.count()


@pytest.fixture(scope="module")
def watched() -> Iterator[Replicated]:
    """A master, one replica and one sentinel, for the whole module."""
    need_redis_server()
    group = start_replicated(replicas=1, sentinels=1)
    yield group
    group.cleanup()


def calls(server: RedisServer) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) - int(v.get("failed_calls", 0))
            for k, v in server.info("commandstats").items()}


async def run_some(s: aio.Scheduler, n: int) -> list[int]:
    @s.task
    async def square(x: int) -> int:
        return x * x

    p = s.processor(capacity=4, batch=True)
    await p.register()
    hs = await s.submit_many(square, [(i,) for i in range(n)])
    ids = [h.id for h in hs]
    while sum(o.state == "done" for o in await s.outcomes(ids)) < n:  # one round trip per look
        await s.dispatch()
        await p.process_available()
    await p.deregister()
    return [await h.result(timeout=10) for h in hs]


def test_async_reads_go_to_the_replica_and_writes_wait_for_it(watched: Replicated) -> None:
    master, replica = watched.master, watched.replicas[0]

    async def main() -> None:
        s = aio.Scheduler(master.url, f"aio-repl-{next(_names)}", read_redis=replica.url,
                          durability=1, durability_timeout=5.0)
        assert await run_some(s, 12) == [i * i for i in range(12)]
        for server in (master, replica):
            with probe(server.port) as c:
                c.config_resetstat()
        counts = await s.counts()
        outcomes = await s.outcomes([])
        assert counts["done"] == 12 and outcomes == []
        assert not (await s.audit()).problems
        on_replica, on_master = calls(replica), calls(master)
        assert on_replica.get("evalsha", 0) >= 2, on_replica
        assert on_master.get("evalsha", 0) == 0, on_master  # the reads left the primary alone
        await s.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_on_a_sentinel_url(watched: Replicated) -> None:
    async def main() -> None:
        s = aio.Scheduler(watched.sentinel_url, f"aio-sent-{next(_names)}")
        assert await run_some(s, 8) == [i * i for i in range(8)]
        assert (await s.audit()).ok
        await s.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_on_a_cluster_batches_go_to_the_namespace_node(cluster: Cluster) -> None:
    async def main() -> None:
        names = [f"aio-cl-{next(_names)}" for _ in range(3)]
        for ns in names:  # several namespaces: they spread over the shards
            s = aio.Scheduler(cluster.url, ns)
            hs = await s.submit_many("square", [(i,) for i in range(2500)])  # 3 chunks: one pipeline
            assert len(hs) == 2500 and (await s.counts())["queued"] == 2500
            assert await run_some(s, 20) == [i * i for i in range(20)]
            audit = await s.audit()
            assert audit.ok, audit.problems
            assert await s.purge() > 2500
            await s.close()

    asyncio.run(asyncio.wait_for(main(), 120))
