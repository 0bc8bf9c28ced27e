"""huey: RedisHuey (blocking reads), one consumer with one worker thread."""

from __future__ import annotations

import os
from importlib.metadata import version

from huey import RedisHuey

from .base import URL_ENV, Base, mark_started

huey = RedisHuey("bench", url=os.environ.get(URL_ENV, "redis://127.0.0.1:1/0"), results=False)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def started(key: str) -> None:
    mark_started(key)


class Adapter(Base):
    name = "huey"
    version = version("huey")
    concurrency = "1 (huey_consumer -w 1 -k thread)"
    batch_api = None
    remaining_keys = (("llen", "huey.redis.bench"),)

    def submit_one(self, n: int) -> None:
        for _ in range(n):
            noop()

    def submit_marker(self, key: str) -> None:
        started(key)

    def worker_commands(self) -> list[list[str]]:
        return [["huey_consumer", "bench.peers.huey_.huey", "-w", "1", "-k", "thread", "-q"]]
