"""dramatiq: the Redis broker, one worker process with one thread."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .base import URL_ENV, Base, mark_started

broker = RedisBroker(url=os.environ.get(URL_ENV, "redis://127.0.0.1:1/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop() -> None:
    return None


@dramatiq.actor(max_retries=0)
def started(key: str) -> None:
    mark_started(key)


class Adapter(Base):
    name = "dramatiq"
    version = dramatiq.__version__
    concurrency = "1 (dramatiq --processes 1 --threads 1)"
    batch_api = None
    remaining_keys = (("hlen", "dramatiq:default.msgs"),)

    def submit_one(self, n: int) -> None:
        for _ in range(n):
            noop.send()

    def submit_marker(self, key: str) -> None:
        started.send(key)

    def worker_commands(self) -> list[list[str]]:
        return [["dramatiq", "bench.peers.dramatiq_", "--processes", "1", "--threads", "1"]]
