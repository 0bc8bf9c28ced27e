"""Celery: the Redis transport, one worker with the solo pool (tasks in the worker process)."""

from __future__ import annotations

import os

import celery
from celery import Celery

from .base import URL_ENV, Base, mark_started

app = Celery("bench", broker=os.environ.get(URL_ENV, "redis://127.0.0.1:1/0"))
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="started")
def started(key: str) -> None:
    mark_started(key)


class Adapter(Base):
    name = "celery"
    version = celery.__version__
    concurrency = "1 (celery worker --pool solo; prefetch 4, the default)"
    batch_api = None
    remaining_keys = (("llen", "celery"), ("hlen", "unacked"))

    def submit_one(self, n: int) -> None:
        for _ in range(n):
            noop.delay()

    def submit_marker(self, key: str) -> None:
        started.delay(key)

    def worker_commands(self) -> list[list[str]]:
        return [["celery", "-A", "bench.peers.celery_", "worker", "--pool", "solo", "--loglevel",
                 "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"]]
