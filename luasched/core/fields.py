"""The stored field names of luasched's records: the one table that Python and Lua share.

Each kind of record is a frozen dataclass: its attributes are the names the code uses, its
values the names stored in Redis (``TASK.state == "s"``). A stored name means one thing: the
same stored name appears in two kinds only for the same attribute (``done`` of the stats and of
a group: tasks finished done). The task record keeps single letters: every queued task has one,
and its memory per task is a measured figure (bench/README.md, ~169 B); the other records are
few (one per processor or group) and spell their names out.

The Lua scripts get the same names as constants, ``<KIND>_<ATTRIBUTE>`` in capitals with the
kind's prefix from LUA_KINDS (``TASK_STATE``, ``PROC_CAPACITY``, ``GROUP_TOTAL``,
``STAT_SUBMITTED``, ``RATE_DONE``, ``EVENT_TASK``, ``METRIC_DURATION``): luasched/luatree.py makes them into the
pseudo-library ``fields`` that a Lua file includes like any other, and writes each one a file
uses as its literal in what it sends (lua/lib/util.lua's header says why).

Counters by final state are named by the state: a script that finishes a task adds one to the
field named by its state (``done``, ``failed``, ``cancelled``) of the stats, the 10 s rate bucket
and its group, so those attributes hold their own names (tests/unit/test_keys.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class Task:
    """``t:<id>`` HASH. queue, attempts, max_attempts, backoff_ms and timeout_ms are left out
    while they hold their defaults (lua/lib/util.lua): a smaller record per queued task."""

    name: str = "f"  # the registered task name
    queue: str = "q"
    args: str = "a"  # arguments, JSON
    state: str = "s"
    attempts: str = "n"  # attempts started
    max_attempts: str = "m"
    timeout_ms: str = "o"
    backoff_ms: str = "b"
    processor: str = "p"  # the processor holding it (assigned or running)
    group: str = "g"
    result: str = "r"  # JSON
    error: str = "e"  # JSON
    last_processor: str = "by"  # the processor that ran the last attempt
    waiter: str = "w"  # a result() waiter wants a token on w:<id>
    cancel_request: str = "x"  # the request id that cancelled it
    created_ms: str = "ct"
    started_ms: str = "st"
    finished_ms: str = "ft"
    priority: str = "pr"  # 0..9, lower first (absent: 5)
    key: str = "k"  # the tenant or entity it belongs to (absent: none)
    limits: str = "l"  # the limiters it counts against, comma-joined (absent: none)
    held: str = "h"  # the limiters whose running counts its attempt holds now, comma-joined
    expires_ms: str = "dx"  # not started by then, it is never started (absent: no deadline)
    requires: str = "rq"  # the labels its processor must meet, kinds.encode_requires (absent: none)
    parents: str = "dp"  # what it waits for, comma-joined: t:<id> (a task), g:<gid> (a group)
    deps_left: str = "dn"  # of those, how many have not finished (while it is waiting)
    deps_bad: str = "dz"  # of those, how many ended failed or cancelled
    on_failure: str = "df"  # fail, run or skip: what it does when one of them did not end done
    feed: str = "dr"  # '1': the results of what it waits for come in as its first argument
    children: str = "dc"  # '1': tasks wait for it (their ids in tc:<id>)
    schedule: str = "sc"  # the schedule that made it (absent: none): its end may fire a buffered tick
    trace: str = "tp"  # the trace context of its submit, JSON (luasched.tracing; absent: not traced)
    # its unique key while it holds it (core/unique): one of the two, by when the key is freed
    unique: str = "u"  # held until the task finishes (done, failed, cancelled, expired)
    unique_started: str = "us"  # held until the task starts (unique_until="started")
    # when it became ready to start, had it waited elsewhere first (promoted from delayed when
    # submitted with a delay, or its dependencies settled): the start of its queue wait
    ready_ms: str = "rd"
    # when it was placed on its processor (the latest attempt's placement: written as it became
    # assigned, or as it started at once on the processor that took it; gone when given back)
    placed_ms: str = "pt"
    # the attempts that ended without finishing it (a retry, a lease lapse, a timeout; a revived
    # dead letter's last attempt), the last 20, core/timeline decodes (absent: none)
    attempts_log: str = "al"


@dataclass(frozen=True)
class Processor:
    """``p:<pid>`` HASH. ack_memo and start_memo are prefixes: one field per slot, the prefix
    followed by the slot's name (what an ack / a start of that slot answered, for its replay).
    reaped_call is a prefix too: one field per attempt that reap ended past its timeout while the
    slot running it has not acked (``reaped:<attempt>:<task id>`` -> when the attempt started,
    ms); ``stuck`` counts them, and they count in the processor's load until that ack."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("ack_memo", "start_memo", "reaped_call")

    capacity: str = "c"
    queues: str = "qs"  # comma-joined
    lease_ms: str = "ls"
    name: str = "name"
    registered_ms: str = "rt"
    heartbeat_ms: str = "hb"  # the last heartbeat
    deadline_ms: str = "dl"  # the lease deadline, the same as its score in procs
    turn: str = "rr"  # which of its queues a take starts with
    default_timeout_ms: str = "dto"  # the timeout of a task that has none of its own (absent: none)
    stuck: str = "stuck"  # slots still running an attempt that reap ended (absent: none)
    kind: str = "kd"  # its kind: its task names and labels (core/kinds; absent: registered without)
    ack_memo: str = "ack:"
    start_memo: str = "start:"
    reaped_call: str = "reaped:"


@dataclass(frozen=True)
class Schedule:
    """``sch:<name>`` HASH: a schedule (lua/schedule.lua writes it, lua/fire.lua fires it). The
    task it makes (task_name, args and the submit fields of its options), its cadence (cron and
    tz, or every_ms), its rules (overlap, catchup_ms), and where it is: next_ms (the pending tick,
    also its score in ``schd`` unless paused), times (the cron's following fire times,
    comma-joined), gen (bumped when the cadence changes: a refill of another gen is refused),
    paused, last_task (the task of its last tick), buffered_ms (a tick held behind it,
    overlap buffer_one) and the counters runs, skipped, missed."""

    task_name: str = "fn"
    args: str = "args"
    queue: str = "queue"
    max_attempts: str = "max_attempts"
    timeout_ms: str = "timeout_ms"
    backoff_ms: str = "backoff_ms"
    policy: str = "policy"  # options.policy_field
    expires_ms: str = "expires_ms"
    spec: str = "spec"  # the cadence as a person reads it
    cron: str = "cron"  # absent: an interval
    every_ms: str = "every_ms"  # absent: a cron
    tz: str = "tz"
    overlap: str = "overlap"
    catchup_ms: str = "catchup_ms"
    next_ms: str = "next_ms"
    times: str = "times"
    gen: str = "gen"
    paused: str = "paused"  # '1' while paused (absent: not)
    last_task: str = "last_task"
    buffered_ms: str = "buffered_ms"
    runs: str = "runs"
    skipped: str = "skipped"
    missed: str = "missed"
    updated_ms: str = "updated_ms"


@dataclass(frozen=True)
class ByFinalState:
    """Counters of finished tasks, one per final state and named by it: finishing a task adds one
    to the field named by its state (HINCRBY key state 1)."""

    done: str = "done"
    failed: str = "failed"
    cancelled: str = "cancelled"


@dataclass(frozen=True)
class Group(ByFinalState):
    """``g:<gid>`` HASH: how many members, and how many finished in each final state."""

    total: str = "total"
    children: str = "then"  # '1': tasks wait for the group (their ids in gc:<gid>)


@dataclass(frozen=True)
class Stats(ByFinalState):
    """The ``stats`` HASH of a namespace: counters, and when dispatch last ran."""

    submitted: str = "submitted"
    assigned: str = "assigned"  # tasks in inboxes, not started
    seq: str = "seq"  # the idle rankings' tie-break sequence
    expired: str = "expired"  # tasks that reached their deadline before they started (also failed)
    deduplicated: str = "deduplicated"  # submits that found their unique key held: nothing created
    retried: str = "retried"  # attempts that ended without success and were retried
    recovered: str = "recovered"  # tasks reap took back: from lapsed processors, or past their timeout
    placed: str = "placed"  # tasks the placing scripts placed (dispatch, at submit, on ack; not take-next)
    revived: str = "revived"  # failed tasks retry_failed queued again (failed + revived: ever failed)
    purged: str = "purged"  # tasks that left the namespace by purge_finished (failed + revived + purged: ever failed)
    last_dispatch_ms: str = "last_dispatch_ms"


@dataclass(frozen=True)
class Rate(ByFinalState):
    """``rate:<n>`` HASH: tasks finished in the 10 s from n * 10 s, by final state."""


@dataclass(frozen=True)
class Metric:
    """The ``mt`` HASH (since the namespace began) and the ``m:<minute>`` HASHes (one minute each,
    kept for a bounded time): histograms kept by the scripts (lua/lib/metrics.lua). Every name is
    a prefix: ``<prefix><bucket>:<label>`` counts observations in bucket ``<bucket>`` (the index of
    its upper bound in core/metrics BOUNDS_MS), ``<sum prefix><label>`` sums them (ms). The label
    is a task name (duration) or a queue name (wait)."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("duration", "duration_sum", "wait", "wait_sum")

    duration: str = "d:"  # how long an attempt ran, by task name
    duration_sum: str = "ds:"
    wait: str = "wq:"  # how long a task waited before its first attempt started, by queue
    wait_sum: str = "ws:"


@dataclass(frozen=True)
class GroupEvent:
    """An entry of the ``gs:<gid>`` STREAM: a member of the group finished."""

    task: str = "t"  # its id
    state: str = "s"


TASK = Task()
PROCESSOR = Processor()
GROUP = Group()
STATS = Stats()
RATE = Rate()
GROUP_EVENT = GroupEvent()
SCHEDULE = Schedule()
METRIC = Metric()

Kind = Task | Processor | Group | Stats | Rate | GroupEvent | Schedule | Metric

#: Every kind of record by the prefix of its Lua constants.
LUA_KINDS: dict[str, Kind] = {
    "TASK": TASK, "PROC": PROCESSOR, "GROUP": GROUP, "STAT": STATS, "RATE": RATE, "EVENT": GROUP_EVENT,
    "SCHED": SCHEDULE, "METRIC": METRIC,
}


def names(kind: Kind) -> dict[str, str]:
    """attribute -> stored name, for one kind of record."""
    return {f.name: getattr(kind, f.name) for f in fields(kind)}


def lua_constants() -> dict[str, str]:
    """The Lua constants the loader makes: ``TASK_STATE`` -> ``"s"`` ..., in table order."""
    return {f"{prefix}_{attr.upper()}": stored
            for prefix, kind in LUA_KINDS.items() for attr, stored in names(kind).items()}
