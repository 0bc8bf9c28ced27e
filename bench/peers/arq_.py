"""arq: one asyncio worker process (max_jobs=10 by default); polls its queue every poll_delay."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from .base import URL_ENV, Base, mark_started


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def started(ctx: dict[str, Any], key: str) -> None:
    mark_started(key)


def _settings() -> RedisSettings:
    import os

    return RedisSettings.from_dsn(os.environ[URL_ENV])


class WorkerSettings:
    """arq's defaults: poll_delay 0.5 s, max_jobs 10."""

    functions = [noop, started]
    redis_settings = _settings() if URL_ENV in __import__("os").environ else RedisSettings()


class WorkerSettingsPoll10:
    """The defaults but a 10 ms poll_delay (arq reads only a settings class's own attributes)."""

    functions = WorkerSettings.functions
    redis_settings = WorkerSettings.redis_settings
    poll_delay = 0.01


class Adapter(Base):
    name = "arq"
    version = version("arq")
    concurrency = "1 process, asyncio, max_jobs=10 (default)"
    batch_api = None
    remaining_keys = (("zcard", "arq:queue"),)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(self.url)))

    def label(self) -> str:
        return "arq (poll 10 ms)" if self.variant == "poll10" else "arq (default, poll 0.5 s)"

    def submit_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("noop")

        self.loop.run_until_complete(go())

    def submit_marker(self, key: str) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("started", key))

    def worker_commands(self) -> list[list[str]]:
        settings = "WorkerSettingsPoll10" if self.variant == "poll10" else "WorkerSettings"
        return [["arq", f"bench.peers.arq_.{settings}"]]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()
        super().close()
