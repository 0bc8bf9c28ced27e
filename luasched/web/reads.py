"""What the dashboard reads and writes, each O(page) in Redis: the Scheduler's own calls (sync or
asyncio, the sync ones on a worker thread), pages of the task indexes, and the audit stream."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from starlette.concurrency import run_in_threadpool

from luasched import metrics
from luasched.core.calls import text
from luasched.core.fields import TASK
from luasched.core.flows import GROUP_COUNTERS, group_progress

#: The states whose tasks have an index the dashboard can page through, and the key of each
#: (queued: one list per queue, so it also needs the queue's name).
LISTABLE = ("queued", "delayed", "running", "failed", "waiting")
#: Tasks on one page of /tasks.
PAGE_SIZE = 50
#: About how many entries the audit stream keeps (XADD MAXLEN ~).
AUDIT_LOG_MAX = 1000
#: The queues whose head's age the overview shows (the first, by name).
MAX_QUEUES = 200
#: The task ids of a processor's inbox that /processors shows (pending, and running, each).
INBOX_SHOWN = 10
#: How long /events waits for an admin action before reading the counts again, in ms.
EVENTS_BLOCK_MS = 1000


@dataclass(frozen=True)
class Listed:
    """One row of /tasks: the id, its index's score (a time in ms, None for a queue list), and
    the task's name and state from its record."""

    id: str
    score_ms: int | None
    name: str
    state: str


class Source:
    """The dashboard's way to a Scheduler, sync or asyncio: ``run`` calls one of its methods (or a
    redis-py client's) without blocking the event loop."""

    def __init__(self, sched: Any) -> None:
        self.sched = sched
        self.is_async = inspect.iscoroutinefunction(type(sched).counts)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return await fn(*args, **kwargs)
        return await run_in_threadpool(fn, *args, **kwargs)

    def reader(self) -> Any:
        """The client for reads: a replica when the Scheduler has ``read_redis``, else the primary."""
        return self.sched.reads.reader()

    async def memory(self) -> dict[str, str]:
        """Redis's used memory and maxmemory policy (empty on a server without INFO, the embedded one)."""
        try:
            info = await self.run(self.reader().info, "memory")
        except redis.exceptions.ResponseError:
            return {}
        return {name: text(info.get(name, "")) for name in
                ("used_memory_human", "maxmemory_human", "maxmemory_policy")}

    async def page(self, state: str, page: int, queue: str = "") -> tuple[list[Listed], bool]:
        """Page ``page`` (from 1) of the tasks in ``state``, and whether a next page exists:
        one range read of its index and one pipelined read of the page's records."""
        keys = self.sched.keys
        start, stop = (page - 1) * PAGE_SIZE, page * PAGE_SIZE  # one more than a page: is there a next?
        client = self.reader()
        if state == "queued":
            ids = text(await self.run(client.lrange, keys.queue(queue), start, stop))
            scored: list[tuple[str, int | None]] = [(task_id, None) for task_id in ids]
        else:
            index = {"delayed": keys.delayed, "running": keys.running, "failed": keys.failed,
                     "waiting": keys.waiting}[state]
            raw = await self.run(client.zrange, index, start, stop, withscores=True)
            scored = [(text(member), int(score)) for member, score in raw]
        more = len(scored) > PAGE_SIZE
        scored = scored[:PAGE_SIZE]
        pipe = client.pipeline(transaction=False)
        for task_id, _ in scored:
            pipe.hmget(keys.task(task_id), [TASK.name, TASK.state])
        found = await self.run(pipe.execute) if scored else []
        rows = [Listed(task_id, score, text(name or b"?"), text(st or b"gone"))
                for (task_id, score), (name, st) in zip(scored, found, strict=True)]
        return rows, more

    async def log_action(self, who: str, what: str, target: str, count: int) -> None:
        """Append one admin action to the namespace's audit stream, on the primary."""
        entry = {"who": who, "what": what, "target": target, "count": str(count), "at_ms": str(int(time.time() * 1000))}
        await self.run(self.sched.client.xadd, self.sched.keys.audit_log, entry, maxlen=AUDIT_LOG_MAX,
                       approximate=True)

    async def actions(self, limit: int = 100) -> list[dict[str, str]]:
        """The latest ``limit`` admin actions, newest first."""
        raw = await self.run(self.reader().xrevrange, self.sched.keys.audit_log, count=limit)
        return [{text(k): text(v) for k, v in entry.items()} | {"id": text(entry_id)}
                for entry_id, entry in raw]

    async def wait_for_action(self, last_id: str) -> str:
        """Block (up to EVENTS_BLOCK_MS) for an admin action after ``last_id``; the id to wait after next."""
        got = await self.run(self.reader().xread, {self.sched.keys.audit_log: last_id}, count=1,
                             block=EVENTS_BLOCK_MS)
        if got:
            return str(text(got[0][1][-1][0]))
        return last_id

    async def metrics(self) -> bytes:
        """The namespace's Prometheus exposition (luasched.metrics: one read-only script)."""
        if self.is_async:
            return metrics.render(await metrics.collect_async(self.sched))
        return bytes(await run_in_threadpool(metrics.exposition, self.sched))

    async def snapshot(self) -> str:
        """The counts and queue lengths as the JSON /events sends."""
        counts, queues = await self.run(self.sched.counts_and_queues)
        counts.pop("now_ms", None)  # changes on every read: it would make every snapshot new
        return json.dumps({"counts": counts, "queues": queues}, sort_keys=True)

    async def group(self, group_id: str) -> tuple[dict[str, int], list[str]] | None:
        """A group's progress from its counters and its first PAGE_SIZE member ids (None: no
        such group, or its keys expired): two reads, whatever the group's size."""
        keys, client = self.sched.keys, self.reader()
        pipe = client.pipeline(transaction=False)
        pipe.hmget(keys.group(group_id), list(GROUP_COUNTERS))
        pipe.lrange(keys.group_ids(group_id), 0, PAGE_SIZE - 1)
        counters, ids = text(await self.run(pipe.execute))
        if counters[0] is None:
            return None
        return group_progress(counters, None), list(ids)

    async def oldest(self, queues: list[str]) -> dict[str, int]:
        """Queue -> when the task at its head was created (ms), for the first MAX_QUEUES queues that
        have a plain head (a queue with a policy keeps its tasks in lanes: left out): two
        pipelined reads, O(queues)."""
        keys, client = self.sched.keys, self.reader()
        names = sorted(queues)[:MAX_QUEUES]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.lindex(keys.queue(name), 0)
        heads = [(name, text(head)) for name, head in zip(names, await self.run(pipe.execute) if names else [],
                                                          strict=True) if head is not None]
        if not heads:
            return {}
        pipe = client.pipeline(transaction=False)
        for _, task_id in heads:
            pipe.hget(keys.task(task_id), TASK.created_ms)
        created = await self.run(pipe.execute)
        return {name: int(ms) for (name, _), ms in zip(heads, created, strict=True) if ms is not None}

    async def inboxes(self, pids: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        """Processor id -> the first INBOX_SHOWN ids of its pending and of its running tasks: one
        pipelined read, O(processors x INBOX_SHOWN) (a processor's inbox is bounded by its capacity)."""
        if not pids:
            return {}
        keys, pipe = self.sched.keys, self.reader().pipeline(transaction=False)
        for pid in pids:
            pipe.lrange(keys.inbox(pid), 0, INBOX_SHOWN - 1)
            pipe.srandmember(keys.inbox_running(pid), INBOX_SHOWN)
        found = text(await self.run(pipe.execute))
        return {pid: (list(found[2 * i]), sorted(found[2 * i + 1])) for i, pid in enumerate(pids)}
