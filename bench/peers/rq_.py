"""RQ: a SimpleWorker (tasks run in the worker process itself, one at a time)."""

from __future__ import annotations

import rq
from redis import Redis
from rq import Queue

from .base import Base, mark_started


def noop() -> None:
    return None


def started(key: str) -> None:
    mark_started(key)


class Adapter(Base):
    name = "rq"
    version = rq.__version__
    concurrency = "1 (rq worker --worker-class rq.SimpleWorker: tasks in the worker process, one at a time)"
    batch_api = "Queue.enqueue_many (one pipeline per batch)"
    remaining_keys = (("llen", "rq:queue:default"), ("zcard", "rq:wip:default"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.queue = Queue("default", connection=Redis.from_url(self.url))

    def submit_one(self, n: int) -> None:
        for _ in range(n):
            self.queue.enqueue(noop)

    def submit_batch(self, n: int, batch: int) -> None:
        for start in range(0, n, batch):
            self.queue.enqueue_many([Queue.prepare_data(noop) for _ in range(min(batch, n - start))])

    def submit_marker(self, key: str) -> None:
        self.queue.enqueue(started, key)

    def worker_commands(self) -> list[list[str]]:
        burst = ["--burst"] if self.draining else []  # a drain: exit when the queue is empty
        return [["rq", "worker", "--worker-class", "rq.SimpleWorker", "-u", self.url, "--quiet",
                 *burst, "default"]]
