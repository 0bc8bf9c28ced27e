"""saq: one asyncio worker process (concurrency 10 by default), woken by BLMOVE."""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import version
from typing import Any

from saq import Queue

from .base import URL_ENV, Base, mark_started


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def started(ctx: dict[str, Any], *, mark: str) -> None:
    mark_started(mark)  # not "key": saq's Job has a field of that name


settings = {
    "queue": Queue.from_url(os.environ.get(URL_ENV, "redis://127.0.0.1:1/0")),
    "functions": [noop, started],
}


class Adapter(Base):
    name = "saq"
    version = version("saq")
    concurrency = "1 process, asyncio, concurrency=10 (default)"
    batch_api = None
    remaining_keys = (("llen", "saq:default:queued"), ("llen", "saq:default:active"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.queue = Queue.from_url(self.url)
        self.loop.run_until_complete(self.queue.connect())

    def submit_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.queue.enqueue("noop")

        self.loop.run_until_complete(go())

    def submit_marker(self, key: str) -> None:
        self.loop.run_until_complete(self.queue.enqueue("started", mark=key))

    def worker_commands(self) -> list[list[str]]:
        return [["saq", "bench.peers.saq_.settings", "--workers", "1"]]

    def close(self) -> None:
        self.loop.run_until_complete(self.queue.disconnect())
        self.loop.close()
        super().close()
