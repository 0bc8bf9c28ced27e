# Generated from luasched/_async/scheduler.py by tools/unasync.py: edit that file, then run the tool.
"""The Scheduler: submit tasks, hand them to processors, read their results, on one namespace.

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

import threading
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .._backends import threads as backend
from ..core import explain, flows, logs, ops, records, shapes
from ..core.audit import Audit
from ..core.explain import Explanation
from ..core.faults import Backoff, Episode
from ..core.options import (
    Clock,
    Durability,
    LoopOptions,
    ProcessorOptions,
    SchedulerOptions,
    check_limit,
    check_summary_every,
    check_task_id,
    seconds,
)
from ..core.records import TaskRecord
from ..core.replies import DispatchReply, FailedTask, Outcome, ProcessorInfo, Reaped
from ..core.tasks import new_request_id
from ..errors import TRANSIENT, GroupNotFound, LuaschedError, TaskNotFound
from ..routing import translated
from .handles import Group, TaskHandle
from .processor import Processor
from .schedules import Schedules
from .submitting import Submitting

log = logging.getLogger("luasched.scheduler")


class Scheduler(Submitting, Schedules):
    """Submits tasks, hands them to processors, and reads results, on one Redis namespace.

    ``redis``: None or "memory://" for the embedded in-process server (shared by every Scheduler
    of the process made that way); a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL; a
    ``redis+sentinel://host:port[,host:port]/service[/db]`` or ``redis+cluster://host:port[,...]``
    URL; or a ready client, Cluster client or Sentinel (then give ``service_name``). Clients may
    be made with or without ``decode_responses``.
    ``clock``: None to use the Redis server's TIME inside scripts, or a callable returning
    seconds whose value is passed to the scripts instead (tests drive time with it).
    ``keep``: how long finished task records and results are kept (seconds or timedelta).
    ``dispatch_on_submit``: also hand new tasks to idle processors in the submit call itself
    (default True: a task submitted while a processor is idle starts at once; False leaves it
    queued for an ack, dispatch or the scheduler loop to place).
    ``read_redis``: replicas for the read-only queries (counts, status, processors, failed tasks,
    outcomes, audit): a URL, client or Sentinel (its replicas), or a list of them, used in turn.
    Every script that writes and every wait for a result stays on ``redis``.
    ``durability``: after each script that writes, wait until this many replicas have its writes
    (WAIT, in the same round trip), at most ``durability_timeout``; else raise NotReplicated.
    """

    def __init__(self, redis: object = None, namespace: str = "default", clock: Clock | None = None,
                 *, keep: float | timedelta = 86400.0, dispatch_on_submit: bool = True,
                 read_redis: object = None, service_name: str | None = None, durability: int = 0,
                 durability_timeout: float | timedelta = 1.0) -> None:
        wait = Durability.of(durability, durability_timeout)
        super().__init__(SchedulerOptions(namespace, clock, keep, dispatch_on_submit, wait))  # type: ignore[arg-type]
        self._connect(redis, read_redis, service_name, wait)
        self._coalescer = backend.Coalescer(self._submit_shared)
        self._quick_made = {}
        self._refused: dict[str, LuaschedError] = {}  # task id -> why its shared submit call refused it
        self._merged: dict[str, tuple[str, str]] = {}  # task id -> (holder, how): its submit collapsed

    def __repr__(self) -> str:
        return f"<{backend.FRONT}.Scheduler namespace={self.namespace!r}>"

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self, redis: object, *, read_redis: object = None, durability: int | None = None) -> Scheduler:
        """This scheduler (namespace, clock, keep, modes, durability and registered tasks) on
        another server, reading from ``read_redis`` if given, waiting for ``durability``
        replicas instead of this one's setting if given."""
        wait = self.durability
        other = Scheduler(redis, self.namespace, self.clock, keep=self.options.keep_s,
                          dispatch_on_submit=self.dispatch_on_submit, read_redis=read_redis,
                          durability=wait.replicas if durability is None else durability,
                          durability_timeout=wait.timeout_ms / 1000)
        other.registry, other.declared = self.registry, self.declared
        return other

    # --- submitting --------------------------------------------------------------------------

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(self, check_task_id(task_id))

    def group(self, group_id: str) -> Group:
        """The group ``map`` made, by its id (its member ids are kept with it in Redis)."""
        check_task_id(group_id, "group id")
        with translated("group"):
            ids = ops.text(self.client.lrange(self.keys.group_ids(group_id), 0, -1))
        if not ids:
            raise GroupNotFound(group_id)
        return Group(self, group_id, list(ids))

    # --- scheduling --------------------------------------------------------------------------

    def dispatch(self, limit: int = 100) -> list[tuple[str, str]]:
        """Hand up to ``limit`` queued tasks to idle processors, in ONE script call.
        Returns (task id, processor id) for each assignment."""
        return (self.dispatch_detail(limit)).assignments

    def dispatch_detail(self, limit: int = 100) -> DispatchReply:
        """dispatch, with the times a scheduler loop needs (next due task, lease, timeout)."""
        return ops.decode_dispatch(self.call(ops.dispatch(self.ns, self.now_ms(), limit, new_request_id())))

    def reap(self, limit: int = 100) -> Reaped:
        """Take back tasks from processors whose lease lapsed, and attempts past their timeout.
        Returns the ids taken back (a list, with ``.processors`` removed and ``.more``).
        Bounded per call: loop ``while sched.reap(): pass`` — it is falsy once nothing is left."""
        return ops.decode_reap(self.call(ops.reap(self.ns, self.now_ms(), limit, new_request_id())))

    def wake(self) -> None:
        """Wake scheduler loops blocked in ``run`` (for example after setting their stop event)."""
        with translated("wake"):
            self.client.rpush(self.keys.wake, "1")

    def run(self, stop: threading.Event | None = None, *, limit: int = 100,
                  max_wait: float = 1.0, reap_every: float = 0.25,
                  summary_every: float | timedelta | None = 60.0) -> None:
        """The scheduler loop: dispatch, reap and fire the schedules until ``stop`` is set.

        It blocks on the namespace's wake-up list, which submit, register, a freed slot and a new
        or resumed schedule push to; it wakes by itself only when a delayed task or a schedule's
        tick falls due or a lease or task timeout may have lapsed (at most every ``max_wait`` s,
        so that ``stop`` is seen). Any number of loops may run at once: each step is one atomic
        script. It first makes the schedules declared with ``@periodic``. It logs each reap (logger
        ``luasched.scheduler``, INFO) and, every ``summary_every`` s (None: never), a summary line."""
        stop = stop if stop is not None else threading.Event()
        self.check_server("scheduler loop")
        if not self._eviction_checked:
            self.check_eviction("scheduler loop")
        self.declare_schedules()
        loop = LoopOptions(limit, max_wait, reap_every, check_summary_every(summary_every))
        summary = logs.LoopSummary(loop.summary_every_s)
        retry = Backoff()
        fault = Episode(log)
        reply: DispatchReply | None = None
        while not stop.is_set():
            try:
                reply = self._turn(stop, loop, reply, summary)
            except TRANSIENT as exc:  # a lost Redis or a refusal that passes: logged once, waited out
                reply = None
                fault.failed("scheduler loop", exc)
                backend.wait(stop, retry.next())
            else:
                if fault.since is not None:
                    fault.recovered("scheduler loop")
                    retry.reset()
            summary.tick()

    def wait_for_redis(self, timeout: float | timedelta | None = None) -> None:
        """Return once Redis answers (a read of the counts), waiting while it refuses connections, is
        loading or refuses for now, with capped backoff, at most ``timeout`` (None: as long as it takes);
        then raise the last error. A wrong password or an untrusted certificate raises at once."""
        self.patiently(log, "scheduler", seconds(timeout, "timeout", allow_none=True), self.counts)

    def _turn(self, stop: threading.Event, loop: LoopOptions, reply: DispatchReply | None,
                    summary: logs.LoopSummary) -> DispatchReply | None:
        """One turn of the loop; returns the dispatch the next turn starts from (None: dispatch)."""
        if reply is None:
            reply = self.dispatch_detail(loop.limit)
            summary.dispatched(reply)
        turn = flows.next_turn(reply, loop, self.block_s)
        due_s = self._schedules_due(reply.now_ms, loop.limit, turn.again)  # the next tick bounds the wait
        if turn.reap:
            while reaped := self.reap(loop.limit):
                logs.reaped(reaped)
                summary.took_back(reaped)
        if turn.again or turn.reap or stop.is_set():
            return None
        wait_s = min(turn.wait_s, summary.left_s(), turn.wait_s if due_s is None else due_s)  # a summary when due
        if turn.sleep or wait_s < flows.BLOCK_RESOLUTION_S:  # slept here, below Redis's timeout resolution
            backend.wait(stop, wait_s)
            return None
        if self.clock is not None:  # a dispatch carries the client's time: send it after the wait
            with translated("run"):
                self.client.blpop([self.keys.wake], timeout=wait_s)
            return None
        # Block on the wake list and dispatch right after, in one round trip.
        call = ops.dispatch(self.ns, None, loop.limit, new_request_id())
        reply = ops.decode_dispatch(self.call_after_wake(self.keys.wake, wait_s, call))
        summary.dispatched(reply)
        return reply

    def processor(self, capacity: int = ProcessorOptions.capacity,
                  queues: Sequence[str] = ProcessorOptions.queues, lease: float = ProcessorOptions.lease_s,
                  name: str | None = None, *, take_next: bool = ProcessorOptions.take_next,
                  pool: str = ProcessorOptions.pool, app: str | None = None,
                  log_tasks: bool = ProcessorOptions.log_tasks, batch: bool = ProcessorOptions.batch,
                  dispatch_on_ack: bool | None = None, scheduler: bool = ProcessorOptions.scheduler,
                  summary_every: float | timedelta | None = ProcessorOptions.summary_every_s,
                  connect_timeout: float | timedelta | None = ProcessorOptions.connect_timeout_s,
                  default_timeout: float | timedelta | None = ProcessorOptions.default_timeout_s,
                  labels: dict[str, Any] | None = None) -> Processor:
        """A processor on this namespace (call ``register``/``start`` on it); every option and
        its default is ``luasched.core.options.ProcessorOptions``'s. The asyncio processor runs
        coroutine functions concurrently up to ``capacity`` on the event loop (cancelled at their
        timeout) and plain functions in threads; the threaded one runs each slot in a thread, or
        each slot's tasks in a child process with ``pool="process"``. ``labels``: see ``set_labels``."""
        return Processor(self, ProcessorOptions.make(
            capacity=capacity, queues=queues, lease=lease, name=name, take_next=take_next, pool=pool,
            app=app, log_tasks=log_tasks, batch=batch, dispatch_on_ack=dispatch_on_ack, scheduler=scheduler,
            summary_every=summary_every, connect_timeout=connect_timeout, default_timeout=default_timeout,
            labels=labels or {}))

    # --- reading -----------------------------------------------------------------------------
    # Everything here reads a replica when ``read_redis`` is set (see ``Reads``), except what a
    # wait for results reads: that follows the primary, whose wake-ups it is answering.

    def outcome(self, task_id: str) -> Outcome:
        """A task's state and, when finished, its result or error (does not wait)."""
        return (self.outcomes([check_task_id(task_id)]))[0]

    def outcomes(self, task_ids: Sequence[str]) -> list[Outcome]:
        """Outcomes of many tasks in one round trip."""
        return self._outcomes(task_ids, self.reads.reader())

    def _outcomes(self, task_ids: Sequence[str], client: Any) -> list[Outcome]:
        if not task_ids:
            return []
        found = ops.decode_outcomes(self._send(ops.outcomes(self.ns, task_ids), client), task_ids)
        if client is not self.client:
            # A replica that lags has not seen a task submitted a moment ago: ask the primary.
            unseen = [o.task_id for o in found if o.state == "unknown"]
            if unseen:
                again = {o.task_id: o for o in self._outcomes(unseen, self.client)}
                found = [again.get(o.task_id, o) for o in found]
        return found

    def task_record(self, task_id: str) -> TaskRecord:
        """Everything Redis keeps about one task: state, options, attempts, processors, times,
        result or last error (``luasched show``). Raises TaskNotFound when there is none."""
        request = records.record(self.keys, check_task_id(task_id))
        found = records.decode_record(self._send(request, self.reads.reader()), task_id)
        if found is None and self.reads.split:  # a replica that lags may not have it yet
            found = records.decode_record(self.execute(request), task_id)
        if found is None:
            raise TaskNotFound(task_id)
        return found

    def explain(self, task_id: str) -> Explanation:
        """Why task ``task_id`` is where it is now: its state, a ``reason`` (why it waits, or
        where it is), the ``detail`` that reason rests on and a sentence for a person (see
        ``Explanation``). One read-only script call (from a replica when ``read_redis`` is set):
        O(1) to O(log n) in the tasks, never a walk of a queue; for a queued task also the cards
        of the live processors (at most 10,000). Raises TaskNotFound when there is none."""
        call = explain.explain(self.ns, self.now_ms(), check_task_id(task_id))
        return explain.decode_explain(self.call(call), task_id)

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, and processors (all, idle, lapsed): one script call."""
        return (self.counts_and_queues())[0]

    def queue_lengths(self) -> dict[str, int]:
        """Queue name -> number of tasks waiting in it."""
        return (self.counts_and_queues())[1]

    def counts_and_queues(self) -> tuple[dict[str, int], dict[str, int]]:
        """counts() and queue_lengths() from one snapshot (one script call)."""
        return ops.decode_counts(self.call(ops.counts(self.ns, self.now_ms())))

    def audit(self, *, slice_size: int = flows.AUDIT_SLICE) -> Audit:
        """Check the conservation invariant on a live server: every task in exactly one place,
        inboxes matching loads and idle rankings, counters adding up.

        An admin tool that can run while processors work and never holds Redis for long: one
        consistent snapshot of the counters, the processors and their inboxes, then the queued,
        delayed and failed tasks in slices of ``slice_size``, each read with its records in one
        call (a few ms of server time each). With ``read_redis`` it runs on a
        replica (as stale as the replica) and leaves the primary alone."""
        check_limit(slice_size)
        return self.drive(flows.audit(self.ns, self.now_ms(), slice_size))  # type: ignore[no-any-return]

    def processors(self, limit: int = 1000) -> list[ProcessorInfo]:
        """The registered processors (up to ``limit``), soonest lease deadline first."""
        return ops.decode_processors(self.call(ops.processors(self.ns, self.now_ms(), limit)))[1]

    def failed(self, limit: int = 100) -> list[FailedTask]:
        """The oldest ``limit`` dead letters, with their errors."""
        check_limit(limit)
        client = self.reads.reader()  # both reads from one server: the records match the list
        with translated("failed"):
            raw = client.zrange(self.keys.failed, 0, limit - 1, withscores=True)
        scored = shapes.scored(raw)
        if not scored:
            return []
        return ops.decode_failed(self._send(ops.failed(self.ns, [t for t, _ in scored]), client), scored)

    def retry_failed(self, task_ids: Sequence[str] = (), limit: int = 100) -> list[str]:
        """Put dead letters back on their queue with fresh attempts: the given ids, or else the
        oldest ``limit``. Returns the ids put back (ids that are not dead letters are skipped)."""
        ids = [check_task_id(t) for t in task_ids]
        call = ops.retry_failed(self.ns, self.now_ms(), ids, limit, new_request_id())
        return ops.decode_retry_failed(self.call(call))
