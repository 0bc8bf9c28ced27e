# Generated from luasched/_async/policies.py by tools/unasync.py: edit that file, then run the tool.
"""What a Scheduler says about placement, besides the tasks themselves: pauses, limiters,
fairness weights and a queue's priority aging. Each change is one script call (lua/pause.lua,
lua/policy.lua), so every placing call sees it whole or not at all. And the namespace's upkeep
(purge, purge_finished).

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ..core import flows, pauses, policies
from ..core.base import SchedulerBase
from ..core.explain import decode_names, names_read
from ..core.options import check_int, seconds, to_ms
from ..core.replies import LimitInfo, Paused
from ..core.tasks import new_request_id
from ..routing import translated
from .transport import Transport


class Policies(Transport, SchedulerBase):
    """The placement policies of one namespace (a part of Scheduler)."""

    def pause(self, queue: str | None = None, *, key: str | None = None) -> bool:
        """Stop placing the tasks of ``queue``, or of every queue (no queue); with ``key``, only
        the tasks of that task key (in ``queue``, or in every queue). Once this returns, no
        dispatch, submit, ack or take-next places one. Tasks keep arriving and wait queued
        (delayed ones still come due into their queue); running tasks finish. True when it paused
        something not paused already. One script: every placing call sees it or not."""
        return bool(self.call(pauses.pause(self.ns, self.now_ms(), "pause", queue, key)))

    def resume(self, queue: str | None = None, *, key: str | None = None) -> bool:
        """Lift the pause of exactly that scope (``queue`` or every queue, ``key`` or every key)
        and wake the scheduler loops to place what waited. Pauses of other scopes stay: a queue
        paused by itself stays paused when the namespace is resumed, a key paused in every queue
        stays paused when one queue is resumed, and so on. True when that scope was paused."""
        return bool(self.call(pauses.pause(self.ns, self.now_ms(), "resume", queue, key)))

    def paused(self) -> list[Paused]:
        """The pauses in force: the whole namespace first (``queue`` and ``key`` None), then each
        queue, then each key paused in every queue, then each key paused in one queue."""
        with translated("paused"):
            return pauses.decode_paused(self.client.hgetall(self.keys.paused))

    def limit(self, name: str, *, rate: float | None = None, per: float | timedelta = 1.0,
                    burst: int = 1, max_running: int | None = None) -> bool:
        """Create or update the limiter ``name``; True when it was created, False when updated.

        ``rate`` placements per ``per`` seconds with a burst of ``burst``: at most
        ``burst + rate * t / per`` placements in any window of t seconds. ``max_running``: at most
        that many of its tasks assigned or running at once, across every processor. Give one or
        both. A name ending in ``*`` is a pattern: each name with that prefix that has no limiter
        of its own gets one of these settings (``limit("user:*", max_running=1)`` runs each
        user's tasks one at a time, given ``_limits=(f"user:{uid}",)``). A task counts against
        the limiters its ``limits`` name; a submit naming one that does not exist is refused
        (UnknownLimiter)."""
        limiter = policies.Limiter(name, rate, per, burst, max_running)  # type: ignore[arg-type]  # checked
        return policies.decode_limit(self.call(policies.limit(self.ns, self.now_ms(), limiter)))

    def remove_limit(self, name: str) -> bool:
        """Remove the limiter (or pattern) ``name``; True when there was one. The tasks that name
        it are then placed as if it had never been: unlimited by it."""
        return bool(int(self.call(policies.unlimit(self.ns, self.now_ms(), name))))

    def set_weight(self, key: str, weight: float) -> None:
        """Set a task key's fairness weight (a number > 0, at most 1e6; the default is 1), in
        every queue: among keys waiting at the same priority, placements are shared in
        proportion to their weights."""
        self.call(policies.weight(self.ns, self.now_ms(), key, weight))

    def set_queue(self, queue: str, *, priority_aging: float | timedelta | None = policies.KEEP,
                        max_pending: int | None = policies.KEEP) -> None:
        """Set a queue's options; an option not given keeps its setting.

        ``priority_aging``: None for strict priorities (a queue's default), or a number of
        seconds (or timedelta) A: a waiting task counts one level more urgent for every A seconds
        it has waited, so no task starves behind a stream of more urgent work.

        ``max_pending``: None for no cap (the default), or N >= 0: a submit, submit_many or map
        that would bring the queue's waiting tasks (queued plus delayed) above N raises
        QueueFull and writes nothing. Retries and recovered tasks are never refused, so they may
        take the queue past N for a while."""
        self.call(policies.queue_policy(self.ns, self.now_ms(), queue, priority_aging, max_pending))

    def limits(self) -> list[LimitInfo]:
        """The limiters and their state now (sorted by name): each configured limiter and
        pattern, and each concrete limiter made from a pattern that holds running tasks or
        holds back work (its ``pattern`` says which)."""
        return policies.decode_limits(self.call(policies.limits(self.ns, self.now_ms())))

    def task_names(self, queues: Iterable[str]) -> dict[str, list[str]]:
        """Queue -> the task names ever submitted to it, sorted (routing matches them with the
        names the processors serving it registered). One read of O(names)."""
        queues = list(queues)
        if not queues:
            return {}
        return decode_names(self._send(names_read(self.ns, queues), self.reads.reader()), queues)

    def purge(self) -> int:
        """Delete every key of this namespace: tasks, queues, processors, results. Returns how
        many keys went. Processors still running lose their registration (their acks go stale).
        Uses SCAN from the client (an admin operation, O(keys in the server)); on a cluster,
        redis-py's SCAN visits every primary."""
        deleted = 0
        with translated("purge"):
            batch: list[Any] = []
            for key in self.client.scan_iter(match=self.keys.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.client.unlink(*batch)
        return deleted

    def purge_finished(self, *, older_than: float | timedelta = 0, limit: int | None = None) -> int:
        """Delete the dead letters (tasks that ended failed) that failed at least ``older_than``
        (seconds or a timedelta) ago, the oldest first, at most ``limit`` of them (None: all):
        their records, errors and results go, as a done or cancelled task's do after ``keep``.
        Returns how many went. A member of a group that has not finished is kept (the tasks
        waiting for the group read its error). Runs as calls of lua/purge_finished.lua of 500
        dead letters each (bounded server time, never a walk of all tasks) until none is left.
        ``counts()["failed"]`` goes down by as many and ``counts()["purged"]`` up; the finished
        totals (``done``, the metrics' ``luasched_tasks_finished_total``) never go down."""
        older_ms = to_ms(seconds(older_than, "older_than"))
        if limit is not None:
            check_int(limit, "limit", 1, 2**62)
        flow = flows.purge_finished(self.ns, self.now_ms(), older_ms, limit, new_request_id)
        return self.drive(flow)  # type: ignore[no-any-return]
