"""What every adapter shares: the Redis URL, the marker task's client, polling for tasks left.

An adapter (one module per system under bench/peers/) is a class ``Adapter`` with:

    name, version, concurrency, batch_api     strings for the tables
    submit_one(n)           n no-op tasks, one ordinary submit call each
    submit_batch(n, batch)  n no-op tasks through the bulk API, ``batch`` a call (None: no bulk API)
    submit_marker(key)      one task that RPUSHes the wall-clock time it started to ``key``
    worker_commands()       argv lists of the processes that run the tasks (started in that order)
    remaining(n)            tasks not yet finished out of n submitted (a cheap read of queue keys)
    kick()                  called on each poll once the workers are launched, until it answers
                            True (luasched take_next: one dispatch once the processors registered)
    exact_remaining         True when remaining() counts finished tasks exactly; else the driver
                            also submits a marker task last and waits for it (FIFO) as well

The driver (bench/driver.py) runs the same measurements over any adapter. It sets
BENCH_REDIS_URL before importing an adapter, so module-level brokers and apps (which the worker
processes import too) connect to the run's private server. This module depends on nothing but
redis-py, so it imports in both virtual environments.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import redis

#: Set by the driver for every worker process: the marker task writes through it.
URL_ENV = "BENCH_REDIS_URL"

_client: redis.Redis | None = None


def marker_client() -> redis.Redis:
    """The client the marker task uses inside a worker (made once per process)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[URL_ENV])
    return _client


def mark_started(key: str) -> None:
    """Body of every system's marker task: record when the task began (wall clock)."""
    marker_client().rpush(key, repr(time.time()))


class Base:
    """Defaults shared by the adapters."""

    name = "?"
    version = "?"
    concurrency = "?"
    batch_api: str | None = None
    #: (command, key) pairs whose integer replies add up to the tasks not yet finished.
    remaining_keys: tuple[tuple[str, str], ...] = ()

    def __init__(self, url: str, variant: str = "", capacity: int = 1, processes: int = 1) -> None:
        self.url = url
        self.variant = variant
        self.capacity = capacity
        self.processes = processes
        self.redis = redis.Redis.from_url(url)
        self.poll_commands: Counter[str] = Counter()
        #: True when the workers drain a backlog (RQ then runs with --burst).
        self.draining = False

    def label(self) -> str:
        return self.name + (f" ({self.variant})" if self.variant else "")

    exact_remaining = False

    def remaining(self, n: int) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for command, key in self.remaining_keys:
            getattr(pipe, command)(key)
            self.poll_commands[command] += 1
        return sum(int(v or 0) for v in pipe.execute())

    def submit_batch(self, n: int, batch: int) -> None:
        raise NotImplementedError(f"{self.name} has no bulk submit API")

    def kick(self) -> bool:
        return True

    def worker_env(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        self.redis.close()
