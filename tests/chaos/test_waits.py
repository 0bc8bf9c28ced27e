"""A wait for a result rides out a Redis restart: the waiter reconnects with backoff within its
timeout and gets the result the task finished with after the restart."""

from __future__ import annotations

import signal
import threading
import time

import pytest

import luasched
from tests.servers import start_redis

pytestmark = [pytest.mark.chaos, pytest.mark.real_redis, pytest.mark.timeout(120)]


@pytest.mark.parametrize("front", ["sync", "asyncio"])
def test_a_waiter_survives_a_redis_restart(front):
    server = start_redis("--appendonly", "yes", "--appendfsync", "always")
    try:
        sched = luasched.Scheduler(server.url, namespace="waits")

        @sched.task
        def double(x: int) -> int:
            return 2 * x

        h = sched.submit(double, 21)
        got: dict[str, object] = {}

        def wait() -> None:
            try:
                if front == "sync":
                    got["value"] = luasched.Scheduler(server.url, namespace="waits").handle(h.id).result(timeout=60)
                else:
                    import asyncio

                    from luasched import aio

                    async def main() -> object:
                        s = aio.Scheduler(server.url, namespace="waits")
                        try:
                            return await s.handle(h.id).result(timeout=60)
                        finally:
                            await s.close()

                    got["value"] = asyncio.run(main())
            except Exception as exc:  # reported by the assertion below
                got["error"] = exc

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)  # the waiter is blocked in BLPOP now
        server.stop(signal.SIGKILL)
        time.sleep(2.0)  # longer than redis-py's own retries: the waiter sees the loss
        restarted = start_redis("--appendonly", "yes", "--appendfsync", "always", port=server.port,
                                directory=server.dir)
        server.process = restarted.process
        sched.client.connection_pool.disconnect()
        p = sched.processor()
        p.register()
        sched.dispatch()
        assert p.process_available() == 1
        waiter.join(60)
        assert got == {"value": 42}
        sched.close()
    finally:
        server.cleanup()
