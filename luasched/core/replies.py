"""What the scripts answer, decoded: one frozen dataclass per kind of reply (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DependencyFailed, ScriptError, TaskExpired, TaskFailed, error_for_status
from .tasks import Started, decode_error


@dataclass(frozen=True)
class SubmitReply:
    """What a submit call did: how many tasks it created, the ids that existed already (a replay
    or an ``_id`` given again: nothing created), the assignments a dispatch at submit made, and
    the submits that collapsed into the live task holding their unique key (core/unique): id
    submitted -> (that task's id, "unique" or "debounced": it took the submit's arguments)."""

    created: int
    existing: list[str]
    assignments: list[tuple[str, str]]
    merged: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class DispatchReply:
    """What one dispatch call did (task id, processor id of each assignment) and the times a
    scheduler loop sleeps by: the server's now, the next delayed task due, the soonest lease
    deadline and the soonest running task's timeout (server ms, None: none)."""

    assignments: list[tuple[str, str]]
    now_ms: int
    next_due_ms: int | None  # earliest delayed task
    next_lease_ms: int | None  # earliest lease deadline
    next_deadline_ms: int | None  # earliest running task's timeout
    promoted: int = 0  # delayed tasks that fell due and were queued by this call

    def wait_s(self, cap: float, reap_every: float) -> tuple[float, bool]:
        """How long a scheduler loop may sleep, and whether a reap is due now."""
        soonest = [t for t in (self.next_lease_ms, self.next_deadline_ms) if t is not None]
        reap_at = min(soonest) if soonest else None
        reap_now = reap_at is not None and reap_at < self.now_ms
        wait = cap
        if self.next_due_ms is not None:
            wait = min(wait, (self.next_due_ms - self.now_ms) / 1000)
        if reap_at is not None:
            wait = min(wait, max((reap_at - self.now_ms) / 1000, reap_every))
        return max(wait, 0.001), reap_now


@dataclass(frozen=True)
class Lapsed:
    """A processor whose lease lapsed, removed by a reap: the ids it gave back (its pending tasks,
    then those it was running), and how many of them were on their last attempt (now failed)."""

    processor: str
    task_ids: list[str]
    failed: int = 0


@dataclass(frozen=True)
class Overdue:
    """A running task a reap took back because it ran past its timeout: the processor it ran on,
    the timeout, and when its retry is due (ms from the reap; None: that was its last attempt, it
    failed for good)."""

    task_id: str
    processor: str
    timeout_ms: int
    retry_in_ms: int | None


class Reaped(list[str]):
    """Ids of the tasks one reap call took back. ``processors`` are the lapsed processors it
    removed; ``more`` says lapsed processors or overdue tasks remain. Truthy while there was work
    or more remains, so ``while sched.reap(): pass`` leaves nothing behind. ``lapsed`` says what
    each removed processor gave back and ``overdue`` each task past its timeout (what the
    scheduler loop logs)."""

    def __init__(self, ids: Sequence[str], processors: Sequence[str], more: bool,
                 lapsed: Sequence[Lapsed] = (), overdue: Sequence[Overdue] = (), expired: int = 0) -> None:
        super().__init__(ids)
        self.processors = list(processors)
        self.more = more
        self.lapsed = list(lapsed)
        self.overdue = list(overdue)
        #: waiting tasks it ended because their deadline came (``expires``)
        self.expired = expired

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.processors) or self.more or self.expired > 0


@dataclass(frozen=True)
class StartReply:
    """What a start call did: 'task' (the tasks it started, oldest first), 'empty' (nothing in the
    inbox) or 'lost' (the processor's lease is gone: it must run nothing)."""

    status: str  # 'task' | 'empty' | 'lost'
    task: Started | None  # the first started task
    tasks: list[Started] = field(default_factory=list, compare=False)  # all of them


@dataclass(frozen=True)
class Ended:
    """An attempt an ack ended with an error: when the retry is due (ms from the ack; None: it
    was the last attempt, the task failed for good, a dead letter) and the task's max_attempts."""

    retry_in_ms: int | None
    max_attempts: int


@dataclass(frozen=True)
class AckReply:
    """What an ack call did: a status per acked task, the tasks it started next, and what it
    placed (dispatch on ack)."""

    status: str  # of the first acked task: 'done' | 'retry' | 'failed' | 'stale'
    next: Started | None  # the first started task
    statuses: list[str] = field(default_factory=list, compare=False)  # one per acked task
    started: list[Started] = field(default_factory=list, compare=False)  # every started task
    #: (task id, processor id) of each task the ack placed (NEXT_PLACE; none on a replay)
    placed: list[tuple[str, str]] = field(default_factory=list, compare=False)
    #: NEXT_PLACE placed tasks and the processor's queues still hold more: the next ack, too,
    #: will likely find a task to start
    more: bool = field(default=False, compare=False)
    #: task id -> how its attempt ended, for each acked error that ended one (none on a replay)
    ended: Mapping[str, Ended] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Outcome:
    """A task's state and, once finished, its JSON result or error."""

    task_id: str
    state: str
    payload: str | None = None
    processor: str = ""  # the processor that ran the last attempt

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def value(self) -> Any:
        """The result; raises TaskFailed, TaskCancelled or TaskNotFound instead when there is none."""
        if self.state == "done":
            return json.loads(self.payload) if self.payload is not None else None
        if self.state == "failed":
            err = decode_error(self.payload or "")
            failed = {"TaskExpired": TaskExpired, "DependencyFailed": DependencyFailed}.get(err["type"], TaskFailed)
            raise failed(self.task_id, err["type"], err["message"], err["traceback"])
        if self.state in ("cancelled", "unknown"):
            raise error_for_status(self.state, self.task_id)
        raise ScriptError(f"task {self.task_id} is {self.state}, it has no result yet")


@dataclass(frozen=True)
class ProcessorInfo:
    """A registered processor as ``processors`` sees it (times in server ms). ``stuck``: slots
    still in the call of an attempt that reap ended past its timeout (a thread cannot be
    stopped, a coroutine may ignore its cancellation); each stays taken, never offered a task,
    until its call returns. ``oldest_started_ms``: when the longest-running of its running tasks
    and stuck calls started (None: none). ``default_timeout_ms``: the timeout of its tasks that
    have none of their own (None: none). ``labels`` and ``tasks``: its labels and the names of
    the tasks it can run, as it registered them (core/kinds)."""

    id: str
    lease_deadline_ms: int
    name: str
    capacity: int
    queues: tuple[str, ...]
    pending: int
    running: int
    last_heartbeat_ms: int
    registered_ms: int
    stuck: int = 0
    oldest_started_ms: int | None = None
    default_timeout_ms: int | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()

    @property
    def load(self) -> int:
        """What placement counts: pending, running and stuck."""
        return self.pending + self.running + self.stuck


@dataclass(frozen=True)
class FailedTask:
    """A dead letter: the task, when it failed (server ms), and its last error."""

    id: str
    name: str
    queue: str
    attempts: int
    failed_ms: int
    error_type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class PurgeChunk:
    """What one call of lua/purge_finished.lua did: dead letters deleted, kept (members of a
    group not finished), stale entries dropped; whether one old enough is left past them; and
    the time it took as now (the next call of the same purge uses it: one cutoff for them all)."""

    purged: int
    skipped: int
    stale: int
    more: bool
    now_ms: int


@dataclass(frozen=True)
class Paused:
    """One pause in force, since ``since_ms`` (server ms): of ``queue``, or of every queue when
    ``queue`` is None; of the tasks of ``key`` alone when it is set (None: of every task)."""

    queue: str | None
    since_ms: int
    key: str | None = None


@dataclass(frozen=True)
class LimitInfo:
    """A limiter and its state now (``Scheduler.limits``). ``rate`` placements per ``per``
    seconds with a burst of ``burst`` (None: no rate), at most ``max_running`` of its tasks
    assigned or running at once (None: no cap). ``running``: its tasks assigned or running now;
    ``waiting``: the lanes (queue, priority, key) it holds back now. ``pattern``: for a concrete
    limiter made from a pattern ``prefix*`` (one holding tasks or holding back work), that
    pattern; None for a limiter configured by its own name."""

    name: str
    rate: float | None
    per: float
    burst: int
    max_running: int | None
    running: int
    waiting: int
    pattern: str | None = None
