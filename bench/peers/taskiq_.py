"""taskiq with taskiq-redis's ListQueueBroker: one worker process, asyncio (max_async_tasks 100)."""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import version

from taskiq_redis import ListQueueBroker

from .base import URL_ENV, Base, mark_started

broker = ListQueueBroker(url=os.environ.get(URL_ENV, "redis://127.0.0.1:1/0"))


@broker.task(task_name="noop")
async def noop() -> None:
    return None


@broker.task(task_name="started")
async def started(key: str) -> None:
    mark_started(key)


class Adapter(Base):
    name = "taskiq"
    version = f"{version('taskiq')}, taskiq-redis {version('taskiq-redis')}"
    concurrency = "1 process (taskiq worker --workers 1), asyncio, max_async_tasks=100 (default)"
    batch_api = None
    remaining_keys = (("llen", "taskiq"),)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    def submit_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await noop.kiq()

        self.loop.run_until_complete(go())

    def submit_marker(self, key: str) -> None:
        self.loop.run_until_complete(started.kiq(key))

    def worker_commands(self) -> list[list[str]]:
        return [["taskiq", "worker", "bench.peers.taskiq_:broker", "--workers", "1",
                 "--log-level", "WARNING"]]

    def close(self) -> None:
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()
        super().close()
