"""luasched.metrics on the asyncio Scheduler: collect_async and history_async read what the sync
front end reads, from the same namespace, on both backends."""

from __future__ import annotations

import asyncio

from luasched import metrics
from tests.conftest import FakeClock


def test_the_async_reads_agree_with_the_sync_ones(make_asched, make_sched, clock: FakeClock):
    sched = make_sched(clock=clock)
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    sched.submit("add", 1, 2)
    clock.advance(0.5)
    sched.dispatch()
    assert p.process_available() == 1  # unregistered name: its attempt fails, it retries
    sched.reap()  # the first reap of the minute keeps a copy of the totals
    clock.advance(60)
    sched.reap()
    now_ms = int(clock.now * 1000)

    async def main():
        s = make_asched(clock=clock)
        try:
            return await metrics.collect_async(s), await metrics.history_async(s, now_ms, 2)
        finally:
            await s.client.aclose()

    families, history = asyncio.run(asyncio.wait_for(main(), 60))

    assert metrics.render(families) == metrics.exposition(sched)
    assert history == metrics.history(sched, now_ms, 2)
    assert [(m.minute, m.since) for m in history] == [(now_ms // 60000, now_ms // 60000 - 1)]
