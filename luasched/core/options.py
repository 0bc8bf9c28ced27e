"""Every option of luasched, its unit and its check, once: frozen dataclasses that refuse bad
input when they are made, so a constructor or a call raises before it writes anything.

Durations are given in seconds (an int, a float or a ``timedelta``) and kept in seconds; the
scripts take milliseconds (``to_ms``). Names carry their unit (``lease_s``, ``keep_s``). The
checks of what names a task (its id, name, key, limiters) and of its ``requires`` are in ``checks``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import NotReplicated
from .checks import Unique, check_limits, check_unique, check_until

# the checks of a task's names live in .checks; those named "x as x" are re-exported from here
from .checks import check_key as check_key
from .checks import check_limiter_name as check_limiter_name
from .checks import check_task_id as check_task_id
from .checks import check_task_name as check_task_name
from .kinds import Label, check_labels, decode_requires, encode_requires

DEFAULT_QUEUE = "default"
MAX_CAPACITY = 4096
#: At most this many tasks, processors or ids per script call (each script checks it too).
MAX_LIMIT = 10000
MAX_DURABILITY = 16
POOLS = ("thread", "process")
#: A task's priority when none is given (0 is placed first, 9 last).
DEFAULT_PRIORITY = 5
#: The scripts that write nothing: they may run on a replica, and no WAIT follows them.
READ_ONLY = frozenset({"counts", "metrics", "audit", "audit_slice", "processors", "limits", "explain", "schedules"})

# Matched with fullmatch: "$" would also match before a final newline.
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

Clock = Callable[[], float]


# --- the checks ------------------------------------------------------------------------------


def seconds(value: object, what: str, *, allow_none: bool = False, minimum: float = 0.0) -> float | None:
    """A duration given as seconds or a timedelta, checked; ``what`` names the argument."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{what} must be a finite number of seconds >= {minimum}, not {value!r}")
    return float(value)


def to_ms(value: float | None) -> int:
    """Seconds (None: none) as the whole milliseconds the scripts take."""
    return 0 if value is None else round(value * 1000)


def check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {value}")
    return value


def check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def check_limit(limit: object) -> int:
    """How many things one script call may handle: 1 to MAX_LIMIT."""
    return check_int(limit, "limit", 1, MAX_LIMIT)


def check_name(value: object, what: str) -> str:
    """A queue or namespace name: 1-64 letters, digits and ``_.:-`` (no comma, no space)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-64 characters of letters, digits, '_.:-'")
    return value


def is_queue_name(value: str) -> bool:
    """Whether ``value`` is a well-formed queue (or namespace) name."""
    return _NAME.fullmatch(value) is not None


def check_queue(queue: object, what: str = "queue") -> str:
    return check_name(queue, what)


def check_namespace(namespace: object) -> str:
    return check_name(namespace, "namespace")


# --- a task's options ------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskOptions:
    """How a task is run: its queue, attempts, timeout and retry backoff, and how it is placed:
    its ``priority`` (0 to 9, lower first), its ``key`` (the tenant or entity it belongs to: None
    is the queue's one implicit key), the ``limits`` it counts against (limiter names) and what
    it ``requires`` of the processor that runs it: the labels' conditions encoded once
    (``checks.requires_text``: the user's mapping is checked where it comes in; '' for none).
    ``unique``: True (its name and arguments) or a callable of its arguments making the unique
    key each submit holds until ``unique_until`` ("finished" or "started"): core/unique."""

    queue: str = DEFAULT_QUEUE
    max_attempts: int = 3
    timeout_s: float | None = None
    backoff_s: float = 1.0
    priority: int = DEFAULT_PRIORITY
    key: str | None = None
    limits: tuple[str, ...] = ()
    expires_s: float | None = None  # not started within this many seconds of submit: never started
    requires: str = ""  # kinds.encode_requires of its conditions (TaskOptions stays hashable)
    unique: Unique = None
    unique_until: str = "finished"

    def __post_init__(self) -> None:
        check_queue(self.queue)
        check_unique(self.unique)
        check_until(self.unique_until)
        seconds(self.expires_s, "expires", allow_none=True, minimum=0.001)
        check_int(self.max_attempts, "max_attempts", 1, 1000)
        seconds(self.timeout_s, "timeout", allow_none=True, minimum=0.001)
        seconds(self.backoff_s, "retry_backoff")
        check_int(self.priority, "priority", 0, 9)
        if self.key is not None:
            check_key(self.key)
        object.__setattr__(self, "limits", check_limits(self.limits))
        if not isinstance(self.requires, str):
            raise TypeError(f"TaskOptions.requires is the encoded text (checks.requires_text), "
                            f"not a {type(self.requires).__name__}")
        if self.requires:
            try:
                canonical = encode_requires(decode_requires(self.requires))
            except (TypeError, ValueError):
                canonical = ""
            if canonical != self.requires:
                raise ValueError(f"TaskOptions.requires {self.requires!r} is not as checks.requires_text writes it")

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with the changes that are not None."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_TASK_OPTIONS = TaskOptions()


def policy_field(o: TaskOptions) -> str:
    r"""A task's priority, limits, requires and key in one submit value: '' for the defaults
    (most tasks: one value, not four, per task), else
    ``<priority>\n<limits comma-joined>\n<requires>\n<key>``: limit names hold no whitespace
    and the requires' compact JSON (``kinds.encode_requires``, '' for none) no raw newline; the
    key, last, may hold anything. lua/submit.lua reads it as ``^(%d)\n([^\n]*)\n([^\n]*)\n(.*)$``."""
    if o.priority == 5 and o.key is None and not o.limits and not o.requires:
        return ""
    return f"{o.priority}\n{','.join(o.limits)}\n{o.requires}\n{o.key or ''}"


# --- a processor's options -------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessorOptions:
    """A processor's settings. ``capacity``: slots (tasks at once). ``queues``: the queues it
    serves. ``lease_s``: how long it stays registered without a heartbeat (it heartbeats every
    third of it). ``name``: shown in status (default: the host name and the process id).
    ``take_next``: an ack takes the next task from the queues itself. ``pool``: "thread" or
    "process" (each slot runs its tasks in a child process, killed at the task's timeout; needs
    ``app``, the "module:attribute" of the Scheduler). ``log_tasks``: one INFO line per task done
    (failed attempts, retries and dead letters are logged either way).
    ``batch``: one slot starts and acks up to ``capacity`` tasks per round trip.
    ``dispatch_on_ack``: an ack fills the slots it freed from the queues, least-loaded first, so
    that a backlog drains at one round trip per task with no scheduler in the way (excludes
    ``take_next``); None, the default, means on unless ``take_next`` (False: the plain mode, where
    only dispatch, submit with ``dispatch_on_submit`` and the scheduler loop place).
    ``scheduler``: a started processor also does the scheduler's duties (a scheduler loop: it
    places what no submit or ack placed, promotes delayed tasks and reaps lapsed processors), so
    that processors alone are a complete deployment; any number of processors and scheduler loops
    may do them at once. ``summary_every_s``: that loop logs a summary line this often (None:
    never; see ``LoopOptions``). ``connect_timeout_s``: how long ``start()`` waits for Redis
    while it refuses connections, is loading or refuses writes (None, the default: as long as it
    takes; a wrong password or an untrusted certificate fails at once). ``default_timeout_s``:
    the timeout of the tasks this processor runs that have none of their own (None, the default:
    such a task may run as long as it likes). ``labels``: what the processor is or has, e.g.
    ``{"gpu": "a100", "vram_gb": 80}`` (core/kinds). ``capacity`` defaults to 4 thread slots (or
    coroutines on asyncio)."""

    capacity: int = 4
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    lease_s: float = 10.0
    name: str | None = None
    take_next: bool = False
    pool: str = "thread"
    app: str | None = None
    log_tasks: bool = False
    batch: bool = False
    dispatch_on_ack: bool | None = None
    scheduler: bool = True
    summary_every_s: float | None = 60.0
    connect_timeout_s: float | None = None
    default_timeout_s: float | None = None
    labels: Mapping[str, Label] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int(self.capacity, "capacity", 1, MAX_CAPACITY)
        object.__setattr__(self, "labels", check_labels(self.labels))
        object.__setattr__(self, "connect_timeout_s",
                           seconds(self.connect_timeout_s, "connect_timeout", allow_none=True))
        object.__setattr__(self, "default_timeout_s",
                           seconds(self.default_timeout_s, "default_timeout", allow_none=True, minimum=0.001))
        object.__setattr__(self, "summary_every_s", check_summary_every(self.summary_every_s))
        queues: object = self.queues
        if isinstance(queues, str) or not isinstance(queues, Sequence):
            raise TypeError("queues must be a sequence of queue names, e.g. ('default',)")
        if not queues:
            raise ValueError("queues must name at least one queue")
        for q in queues:
            check_queue(q, "queue name")
        object.__setattr__(self, "queues", tuple(dict.fromkeys(queues)))
        object.__setattr__(self, "lease_s", seconds(self.lease_s, "lease", minimum=0.001))
        if self.dispatch_on_ack is None:  # the fast path, unless the other fast path was asked for
            object.__setattr__(self, "dispatch_on_ack", self.take_next is False)
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"name must be a str, not {type(self.name).__name__}")
        for flag in ("take_next", "log_tasks", "batch", "dispatch_on_ack", "scheduler"):
            check_bool(getattr(self, flag), flag)
        if self.take_next and self.dispatch_on_ack:
            raise ValueError("take_next and dispatch_on_ack exclude each other: a take-next processor "
                             "takes its queues' heads itself, bypassing the least-loaded choice that "
                             "dispatch_on_ack keeps")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if self.pool == "process" and not self.app:
            raise ValueError("pool='process' needs app='module:attribute' naming the Scheduler, "
                             "so that each child process can import the tasks")

    @classmethod
    def make(cls, *, lease: float | timedelta = 10.0, summary_every: float | timedelta | None = 60.0,
             connect_timeout: float | timedelta | None = None,
             default_timeout: float | timedelta | None = None, **options: Any) -> ProcessorOptions:
        """From ``Scheduler.processor``'s keyword arguments (``lease``, ``summary_every``, ``connect_timeout``
        and ``default_timeout`` in seconds or a timedelta); an unknown one raises TypeError naming it."""
        timed = {"lease_s", "summary_every_s", "connect_timeout_s", "default_timeout_s"}
        known = {f.name for f in dataclasses.fields(cls)} - timed
        unknown = set(options) - known
        if unknown:
            given = {"lease", "summary_every", "connect_timeout", "default_timeout"}
            raise TypeError(f"unknown processor option(s) {', '.join(sorted(unknown))}; options are "
                            f"{', '.join(sorted(known | given))}")
        return cls(lease_s=lease, summary_every_s=summary_every, connect_timeout_s=connect_timeout,  # type: ignore[arg-type]  # checked
                   default_timeout_s=default_timeout, **options)  # type: ignore[arg-type]  # checked

    @property
    def slots(self) -> int:
        """How many slots run at once: one per unit of capacity, or one batch slot."""
        return 1 if self.batch else self.capacity

    @property
    def want(self) -> int:
        """How many tasks one slot starts per call."""
        return self.capacity if self.batch else 1


# --- a scheduler's options -------------------------------------------------------------------


@dataclass(frozen=True)
class Durability:
    """After a script that writes, WAIT until ``replicas`` replicas have its writes (at most
    ``timeout_ms``), in the same round trip: a pipeline of EVALSHA + WAIT (WAIT cannot run
    inside a script). 0 replicas: no WAIT, Redis's asynchronous replication."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def of(cls, replicas: object, timeout: object) -> Durability:
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise TypeError(f"durability must be an int (replicas to wait for), not {type(replicas).__name__}")
        if not 0 <= replicas <= MAX_DURABILITY:
            raise ValueError(f"durability must be between 0 and {MAX_DURABILITY}, not {replicas}")
        timeout_s = seconds(timeout, "durability_timeout")
        if timeout_s is None or not 0 < timeout_s <= 3600:
            raise ValueError(f"durability_timeout must be a number of seconds in (0, 3600], not {timeout!r}")
        return cls(replicas, max(1, round(timeout_s * 1000)))

    def applies(self, script: str) -> bool:
        """True when a call of ``script`` must be followed by WAIT."""
        return self.replicas > 0 and script not in READ_ONLY

    def command(self) -> tuple[str, int, int]:
        """The WAIT to send right after the writes, on the same connection."""
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, acked: object, operation: str) -> None:
        """Raise NotReplicated when WAIT answered fewer replicas than required."""
        if isinstance(acked, Exception):
            raise acked
        got = int(acked)  # type: ignore[call-overload]
        if got < self.replicas:
            raise NotReplicated(
                f"{operation}: written on the primary, but {got} of {self.replicas} replicas had it "
                f"within {self.timeout_ms} ms: a failover now could lose it. The call is replay-safe: "
                f"retry it once the replicas are back",
                acked=got, wanted=self.replicas)


@dataclass(frozen=True)
class SchedulerOptions:
    """A Scheduler's settings, apart from the servers it talks to. ``clock``: None to read the
    Redis server's TIME inside the scripts, or a callable returning seconds whose value the
    scripts take instead (tests drive time with it). ``keep_s``: how long finished task records
    and results are kept. ``dispatch_on_submit``: a submit also hands its tasks to idle
    processors, in the same script (the default; False leaves them to dispatch, acks and the
    scheduler loop). ``durability``: what a write waits for."""

    namespace: str = "default"
    clock: Clock | None = None
    keep_s: float = 86400.0
    dispatch_on_submit: bool = True
    durability: Durability = Durability()

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        if self.clock is not None and not callable(self.clock):
            raise TypeError(f"clock must be a callable returning seconds, not {type(self.clock).__name__}")
        object.__setattr__(self, "keep_s", seconds(self.keep_s, "keep", minimum=1.0))
        check_bool(self.dispatch_on_submit, "dispatch_on_submit")


def check_summary_every(value: object) -> float | None:
    """How often a scheduler loop logs its summary line: seconds (or a timedelta), or None: never."""
    return seconds(value, "summary_every", allow_none=True, minimum=0.001)


@dataclass(frozen=True)
class LoopOptions:
    """The scheduler loop's settings: ``limit`` tasks per dispatch call; it wakes by itself at
    least every ``max_wait_s`` (to see its stop flag) and reaps at most every ``reap_every_s``.
    Every ``summary_every_s`` it logs one INFO line of what it did meanwhile (tasks placed,
    delayed tasks promoted, tasks reaped), idle or not; None: never."""

    limit: int = 100
    max_wait_s: float = 1.0
    reap_every_s: float = 0.25
    summary_every_s: float | None = 60.0

    def __post_init__(self) -> None:
        check_limit(self.limit)
        object.__setattr__(self, "max_wait_s", seconds(self.max_wait_s, "max_wait", minimum=0.001))
        object.__setattr__(self, "reap_every_s", seconds(self.reap_every_s, "reap_every"))
        object.__setattr__(self, "summary_every_s", check_summary_every(self.summary_every_s))
