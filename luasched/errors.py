"""The exception tree of luasched, and the one map from script statuses to exceptions.

    LuaschedError
     ├── TaskFailed            the task ran and failed for good (carries the remote error)
     │    ├── TaskExpired      it was not started by its deadline (``expires``)
     │    └── DependencyFailed what it waited for failed or was cancelled (``_on_failure="fail"``)
     ├── TaskCancelled         the task was cancelled before it ran
     ├── UnknownTask           a function that was never registered with @sched.task
     ├── TaskNotFound          no task with this id in the namespace (never made, or expired)
     ├── GroupNotFound         no group with this id in the namespace (never made, or expired)
 ├── ScheduleNotFound      no schedule of this name in the namespace
     ├── SerializationError    arguments or a result that JSON cannot carry (also a TypeError)
     ├── UniqueKeyError        a submit's unique key could not be made (also a ValueError)
     ├── ResultTimeout         result() waited longer than its timeout (also a TimeoutError)
     ├── ConnectionLost        Redis could not be reached (also a ConnectionError)
     │    └── NotReplicated    written on the primary, but fewer replicas than ``durability`` had it
     ├── ServerRefused         Redis is up but refuses for now (OOM, BUSY, MISCONF, LOADING, READONLY)
     ├── UnsupportedServer     a server luasched cannot run processors on (KeyDB)
     └── ScriptError           a script refused its input: a bug in the caller or in luasched
          ├── UnknownLimiter   a task names a limiter that does not exist (also a ValueError)
          └── QueueFull        a submit would bring a queue above its max_pending

Callers never need to catch ``redis.*`` exceptions: ``luasched.routing.translated`` converts
them at the one boundary where luasched talks to Redis. This module imports nothing.
"""

from __future__ import annotations


class LuaschedError(Exception):
    """Root of every exception luasched raises on purpose."""


class TaskFailed(LuaschedError):
    """The task failed for good; ``error_type``, ``message`` and ``traceback`` come from the processor."""

    def __init__(self, task_id: str, error_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"task {task_id} failed: {error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback


class TaskExpired(TaskFailed):
    """The task was not started by its deadline (its ``expires``): it never ran, used no
    attempt, and ended failed with this error (``error_type`` "TaskExpired")."""


class DependencyFailed(TaskFailed):
    """A task that waited for others (``then``, ``_after``) never ran: one of them ended failed
    or cancelled, and its ``_on_failure`` was "fail" (``error_type`` "DependencyFailed")."""


class TaskCancelled(LuaschedError):
    """The task was cancelled; it has no result."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} was cancelled")
        self.task_id = task_id


class UnknownTask(LuaschedError):
    """A task function that was not registered with ``@sched.task`` (or a name no processor knows)."""


class TaskNotFound(LuaschedError):
    """No task with this id exists in the namespace (never submitted, or its record expired)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} in this namespace (never submitted, or expired)")
        self.task_id = task_id


class GroupNotFound(LuaschedError):
    """No group with this id exists in the namespace (never made, or its keys expired)."""

    def __init__(self, group_id: str) -> None:
        super().__init__(f"no group {group_id!r} in this namespace (never made, or expired)")
        self.group_id = group_id


class ScheduleNotFound(LuaschedError):
    """No schedule of this name exists in the namespace (never made, or removed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule {name!r} in this namespace")
        self.name = name


class SerializationError(LuaschedError, TypeError):
    """Arguments or a result that JSON cannot represent."""


class UniqueKeyError(LuaschedError, ValueError):
    """The unique key of a submit could not be made: the task's ``unique`` callable raised, or
    returned something other than a non-empty str of at most 256 characters. Nothing was
    written; the callable's own exception is the ``__cause__``."""


class ResultTimeout(LuaschedError, TimeoutError):
    """Waiting for a result took longer than the timeout given."""


class ConnectionLost(LuaschedError, ConnectionError):
    """Redis could not be reached, or the connection broke during a call."""


class NotReplicated(ConnectionLost):
    """A write reached the primary, but fewer replicas than the ``durability`` setting confirmed
    it in time, so a failover could still lose it. Every script is replay-safe: retrying the call
    (the processor and scheduler loops do) answers as the first did and waits again."""

    def __init__(self, message: str, *, acked: int, wanted: int) -> None:
        super().__init__(message)
        self.acked = acked
        self.wanted = wanted


class ServerRefused(LuaschedError):
    """Redis is up but refused the call for now, and nothing was written: ``reason`` says why.

    - ``"oom"``: out of memory (``maxmemory`` with ``noeviction``); frees when tasks finish and
      their records expire, or when an operator raises the limit;
    - ``"busy"``: a long script blocks the server (BUSY);
    - ``"misconf"``: the server cannot save and refuses writes (MISCONF, stop-writes-on-bgsave-error);
    - ``"loading"``: the server is loading its data set after a restart (LOADING);
    - ``"readonly"``: a replica, as during a failover (READONLY), or a replica given as ``redis=``;
    - ``"noreplicas"``: fewer replicas than ``min-replicas-to-write`` (NOREPLICAS), or a replica
      cut off from its primary (MASTERDOWN).

    Each of these passes. Every script is replay-safe, so retrying the call is always safe: the
    processors, scheduler loops and result waiters retry by themselves, logging the episode once.
    """

    REASONS = ("oom", "busy", "misconf", "loading", "readonly", "noreplicas")

    def __init__(self, message: str, *, reason: str, answer: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        #: what Redis answered, as it said it
        self.answer = answer


#: What a loop that must not stop rides out: it waits and sends the same request again.
TRANSIENT: tuple[type[LuaschedError], ...] = (ConnectionLost, ServerRefused)


class UnsupportedServer(LuaschedError):
    """The Redis-compatible server is one luasched cannot run processors or scheduler loops on
    (KeyDB): raised before the processor registers or the loop starts."""


class ScriptError(LuaschedError):
    """A script rejected its input or failed: a caller bug, or a bug in luasched."""


class UnknownLimiter(ScriptError, ValueError):
    """A submit named a limiter that does not exist (no limiter of that name, and no pattern
    ``prefix*`` matching it): the script refused the call whole, so none of its tasks was
    created. Make the limiter first (``Scheduler.limit``)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class QueueFull(ScriptError):
    """A submit would have brought a queue's waiting tasks (queued plus delayed) above its
    ``max_pending`` (``Scheduler.set_queue``): the script refused the call whole, so none of its
    tasks was created. ``queue`` names the queue, ``depth`` says how many tasks waited in it,
    ``max_pending`` its cap and ``refused`` how many new tasks the call would have added."""

    def __init__(self, message: str, queue: str, depth: int, max_pending: int, refused: int) -> None:
        super().__init__(message)
        self.queue = queue
        self.depth = depth
        self.max_pending = max_pending
        self.refused = refused


#: Statuses a script may answer about a task that mean an exception for the caller.
STATUS_ERRORS: dict[str, type[TaskNotFound] | type[TaskCancelled]] = {
    "unknown": TaskNotFound,
    "cancelled": TaskCancelled,
}


def error_for_status(status: str, task_id: str) -> LuaschedError:
    """The exception a script's ``status`` about ``task_id`` means (a key of STATUS_ERRORS)."""
    return STATUS_ERRORS[status](task_id)
