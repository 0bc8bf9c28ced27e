"""Schedules, sans I/O: checking a schedule, computing its fire times, the calls of
lua/schedule.lua, lua/fire.lua and lua/schedules.lua and their replies, and the audit of the
schedule index.

How a tick happens exactly once: a schedule's record holds its pending tick (``next_ms``, also
its score in the ``schd`` index) and, for a cron, the fire times that follow it (``times``). The
fire script, one atomic call, claims every due pending tick, creates its task (id
``<name>@<fire ms>``), and moves the record to the next time, all by the server's clock. Python
computes cron times only ahead of time, as a list the record holds, and writes each new list with
a compare-and-set (the record's ``gen`` and pending tick must be what it computed from), so any
number of loops, whatever their clocks, fire each tick once. See docs/schedules.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .fields import SCHEDULE, TASK
from .ops import Call, Namespace, text
from .options import TaskOptions, check_limit, check_name, check_task_name, policy_field, seconds, to_ms

#: How a tick meets an earlier tick's task that has not finished: create nothing (``skip``),
#: create its task anyway (``allow``), or wait behind it, at most one tick (``buffer_one``).
OVERLAPS = ("skip", "allow", "buffer_one")
#: The newest due tick of a schedule still fires this late (ms), whatever its ``catchup``: a loop
#: woken late (Redis's timer resolution, a busy machine, a failover) still fires it.
LATE_GRACE_MS = 10_000
#: How many cron fire times a record holds ahead (one refill per that many ticks).
TIMES_AHEAD = 32
#: A refill passes over at most this many missed cron times per call (a long downtime takes more).
MAX_SKIP = 20_000
#: The shortest interval of an ``every`` schedule, seconds.
MIN_EVERY_S = 1.0
#: A schedule's name also names its ticks' tasks: <name>@<fire ms> (64 + 1 + 13 characters).
NAME_WHAT = "schedule name"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule, checked: what task it makes (its name, JSON arguments and options) and when
    (``cron`` in ``tz``, or every ``every_ms``), with its overlap rule and catch-up window."""

    name: str
    task: str
    args_json: str
    options: TaskOptions
    cron: str | None
    every_ms: int | None
    tz: str
    overlap: str
    catchup_ms: int

    @property
    def spec(self) -> str:
        """The cadence as a person reads it."""
        if self.cron is not None:
            return f"cron {self.cron}"
        return f"every {self.every_ms / 1000:g}s"  # type: ignore[operator]  # every_ms set without cron

    def first(self, now_ms: int) -> tuple[int, list[int]]:
        """The pending tick and the times after it, from ``now_ms`` on (see ``first_times``)."""
        return first_times(self.cron, self.every_ms, self.tz, now_ms)


#: A cron's times when it never fires again after its pending tick (lua/fire.lua fires that tick
#: as its last, and the schedule retires).
END = "end"


def first_times(cron: str | None, every_ms: int | None, tz: str, now_ms: int) -> tuple[int, list[int]]:
    """A cadence's first tick after ``now_ms`` and, for a cron, the TIMES_AHEAD times after it. An
    interval ticks at the multiples of ``every_ms`` since the epoch (so its ticks, and their task
    ids, are the same whoever computes them)."""
    if every_ms is not None:
        return (now_ms // every_ms + 1) * every_ms, []
    times = cron_times(cron or "", tz, now_ms, TIMES_AHEAD + 1)
    if not times:
        raise ValueError(f"cron {cron!r} never fires after {now_ms} ms")
    return times[0], times[1:]


def check_cron(expr: object) -> str:
    """A 5-field cron expression, or 6 fields with the seconds first (cronsim's syntax)."""
    if not isinstance(expr, str):
        raise TypeError(f"cron must be a str, not {type(expr).__name__}")
    if len(expr.split()) not in (5, 6):
        raise ValueError(f"cron {expr!r} must have 5 fields (minute hour day month weekday) or 6 (seconds first)")
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"cron {expr!r} is not a cron expression: {exc}") from None
    return " ".join(expr.split())


def zone(tz: object) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise TypeError(f"tz must be a time zone name such as 'Europe/Paris', not {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz {tz!r} is not a known time zone (IANA names such as 'America/New_York')") from None


def make_spec(name: object, task: str, args_json: str, options: TaskOptions, cron: object, every: object,
              tz: object, overlap: object, catchup: object) -> ScheduleSpec:
    """A ScheduleSpec from ``Scheduler.schedule``'s arguments, every one checked."""
    check_name(name, NAME_WHAT)
    check_task_name(task)
    if (cron is None) == (every is None):
        raise ValueError(f"schedule {name}: give exactly one of cron= or every=")
    every_ms = None
    if every is not None:
        every_s = seconds(every, "every", minimum=MIN_EVERY_S)
        every_ms = to_ms(every_s)
    zone(tz)
    if overlap not in OVERLAPS:
        raise ValueError(f"schedule {name}: overlap must be one of {', '.join(OVERLAPS)}, not {overlap!r}")
    catchup_ms = to_ms(seconds(catchup, "catchup"))
    expr = None if cron is None else check_cron(cron)
    return ScheduleSpec(name, task, args_json, options, expr, every_ms, tz, overlap, catchup_ms)  # type: ignore[arg-type]


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a wall-clock time of ``tz`` names: its first occurrence when it occurs twice
    (fall back); when it does not exist (spring forward), the instant the clocks jumped."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == wall:
        return first
    low = int((wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc) - _EPOCH).total_seconds())
    high = int((first.astimezone(timezone.utc) - _EPOCH).total_seconds())
    before = (_EPOCH + timedelta(seconds=low)).astimezone(tz).utcoffset()
    while high - low > 1:  # the transition: the first second whose offset is the later one
        mid = (low + high) // 2
        if (_EPOCH + timedelta(seconds=mid)).astimezone(tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return _EPOCH + timedelta(seconds=high)


def cron_times(expr: str, tz: str, after_ms: int, count: int) -> list[int]:
    """The next ``count`` fire times (ms) after ``after_ms`` of a cron on the wall clock of
    ``tz``: each wall-clock time the expression names is one tick. A time that does not exist
    (spring forward) fires at the instant the clocks jumped, and ticks that land on one instant
    are one tick; a time that occurs twice (fall back) fires once, at its first occurrence."""
    where = zone(tz)
    start = (_EPOCH + timedelta(milliseconds=after_ms)).astimezone(where).replace(tzinfo=None)
    out: list[int] = []
    for wall in CronSim(expr, start):
        at = round((_instant(wall, where) - _EPOCH).total_seconds() * 1000)
        if at > after_ms and (not out or at > out[-1]):
            out.append(at)
            if len(out) >= count:
                return out
    return out  # an expression that never fires again (cronsim stops after some years)


def cron_refill(expr: str, tz: str, cursor_ms: int, now_ms: int, catchup_ms: int) -> tuple[int, int, list[int]]:
    """For a cron whose pending tick ``cursor_ms`` has no known successor: how many ticks from
    it on are missed for sure (each followed by a tick due at least ``catchup_ms`` before
    ``now_ms``, at most MAX_SKIP), the pending tick after them, and the times that follow it."""
    missed, pending = 0, cursor_ms
    while True:
        ahead = cron_times(expr, tz, pending, TIMES_AHEAD)
        if not ahead:
            return missed, pending, []
        k = 0
        while k < len(ahead) and ahead[k] <= now_ms - catchup_ms and missed < MAX_SKIP:
            missed += 1
            pending = ahead[k]
            k += 1
        if k < len(ahead) or missed >= MAX_SKIP:
            return missed, pending, ahead[k:]


# --- the calls -------------------------------------------------------------------------------


def _now(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


def upsert(ns: Namespace, now_ms: int | None, rid: str, s: ScheduleSpec, next_ms: int, times: Sequence[int]) -> Call:
    """Create schedule ``s`` or change it; its pending tick and the cron times after it as
    computed from now (kept when an existing schedule's cadence is unchanged)."""
    o = s.options
    return ns.call("schedule", ns.prefix, _now(now_ms), rid, "upsert", s.name, s.task, s.args_json, o.queue,
                   o.max_attempts, to_ms(o.timeout_s), to_ms(o.backoff_s), policy_field(o), to_ms(o.expires_s),
                   s.spec, s.cron or "", s.every_ms or "", s.tz, s.overlap, s.catchup_ms, next_ms,
                   ",".join(map(str, times)))


def control(ns: Namespace, now_ms: int | None, rid: str, op: str, name: str) -> Call:
    """pause, remove (and resume: see ``resume``) of schedule ``name``."""
    return ns.call("schedule", ns.prefix, _now(now_ms), rid, op, name)


def resume(ns: Namespace, now_ms: int | None, rid: str, name: str, gen: str, next_ms: int,
           times: Sequence[int]) -> Call:
    """Resume schedule ``name`` from now: its pending tick and times computed from now, for its
    cadence of generation ``gen`` (refused as stale when it changed meanwhile)."""
    return ns.call("schedule", ns.prefix, _now(now_ms), rid, "resume", name, gen, next_ms,
                   ",".join(map(str, times)) or END)


def refill(ns: Namespace, now_ms: int | None, rid: str, name: str, gen: str, cursor_ms: int, missed: int,
           next_ms: int, times: Sequence[int]) -> Call:
    """Refill a cron's times; none (the cron never fires again after its pending tick): END, so
    that the pending tick fires as the last and the schedule retires, due never (+inf)."""
    return ns.call("schedule", ns.prefix, _now(now_ms), rid, "refill", name, gen, cursor_ms, missed, next_ms,
                   ",".join(map(str, times)) or END)


def decode_status(reply: Any) -> str:
    return str(text(reply)[0])


def fire(ns: Namespace, now_ms: int | None, limit: int, rid: str) -> Call:
    """Fire the due ticks of every schedule (at most ``limit`` ticks)."""
    return ns.call("fire", ns.prefix, _now(now_ms), check_limit(limit), rid, "", "", LATE_GRACE_MS)


def trigger(ns: Namespace, now_ms: int | None, rid: str, name: str, task_id: str) -> Call:
    """One task of schedule ``name`` now, outside its cadence."""
    return ns.call("fire", ns.prefix, _now(now_ms), 1, rid, name, task_id, LATE_GRACE_MS)


@dataclass(frozen=True)
class Refill:
    """A cron schedule whose pending tick has no known successor: the fire script stopped there."""

    name: str
    gen: str
    cursor_ms: int
    cron: str
    tz: str
    catchup_ms: int


@dataclass(frozen=True)
class Fired:
    """What one fire call did: the server's time, the next due tick over all schedules (None:
    none), the tasks it created, the schedules whose cron times ran out, and whether it stopped
    at its limit with ticks left."""

    now_ms: int
    next_due_ms: int | None
    created: list[str]
    refills: list[Refill]
    more: bool


def decode_fire(reply: Any) -> Fired:
    now, due, created, refills, more = text(reply)
    rows = [Refill(refills[i], refills[i + 1], int(refills[i + 2]), refills[i + 3], refills[i + 4],
                   int(refills[i + 5])) for i in range(0, len(refills), 6)]
    return Fired(int(now), int(float(due)) if due else None, list(created), rows, more == "1")


def listing(ns: Namespace, limit: int, name: str = "") -> Call:
    """The schedules in the order of their index, at most ``limit``; with ``name``, that one alone."""
    return ns.call("schedules", ns.prefix, limit, name)


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule and where it is: its ``spec`` (``cron ...`` or ``every Ns``) in ``tz``, the
    task it makes, its ``next_ms`` (the pending tick's fire time, ms since the epoch; None when
    unknown), whether it is ``paused``, its last tick's task and that task's state now (None:
    none yet; "gone" once its record expired), and its counters: ``runs`` (tasks made by ticks
    and triggers), ``skipped`` (ticks that made none: an unfinished task before them, or a
    refusal) and ``missed`` (ticks that fell due while no loop ran, past the catch-up window)."""

    name: str
    spec: str
    tz: str
    task: str
    overlap: str
    catchup_s: float
    next_ms: int | None
    paused: bool
    last_task_id: str | None
    last_state: str | None
    runs: int
    skipped: int
    missed: int
    buffered_ms: int | None = None

    @property
    def next_fire(self) -> datetime | None:
        """The pending tick's fire time (UTC), or None."""
        return None if self.next_ms is None else _EPOCH + timedelta(milliseconds=self.next_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "tz": self.tz, "task": self.task, "overlap": self.overlap,
                "catchup_s": self.catchup_s, "next_ms": self.next_ms,
                "next_fire": None if self.next_fire is None else self.next_fire.isoformat(),
                "paused": self.paused, "last_task_id": self.last_task_id, "last_state": self.last_state,
                "runs": self.runs, "skipped": self.skipped, "missed": self.missed, "buffered_ms": self.buffered_ms}


def _int(value: str | None) -> int | None:
    """A stored number of ms; None for none, and for never (a retired schedule's pending tick)."""
    return int(float(value)) if value not in (None, "", "inf", "+inf") else None


def decode_listing(reply: Any) -> list[ScheduleInfo]:
    out = []
    for name, _score, flat, state in text(reply)[1]:
        r = dict(zip(flat[::2], flat[1::2], strict=True))
        if not r:
            continue  # the audit reports it
        last = r.get(SCHEDULE.last_task) or None
        out.append(ScheduleInfo(name, r.get(SCHEDULE.spec, ""), r.get(SCHEDULE.tz, ""), r.get(SCHEDULE.task_name, ""),
                                r.get(SCHEDULE.overlap, ""), int(r.get(SCHEDULE.catchup_ms) or 0) / 1000,
                                _int(r.get(SCHEDULE.next_ms)), r.get(SCHEDULE.paused) == "1", last,
                                (state or "gone") if last else None, int(r.get(SCHEDULE.runs) or 0),
                                int(r.get(SCHEDULE.skipped) or 0), int(r.get(SCHEDULE.missed) or 0),
                                _int(r.get(SCHEDULE.buffered_ms))))
    return out


def args_json(task: str, args: Sequence[Any], kwargs: dict[str, Any] | None,
              encode: Callable[[str, Sequence[Any], dict[str, Any]], str]) -> str:
    """The JSON arguments of a schedule's task (``encode``: core.tasks.encode_args)."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"schedule: args must be a tuple or list of arguments, not {type(args).__name__}")
    return encode(task, args, dict(kwargs or {}))


# --- the audit -------------------------------------------------------------------------------

UNFINISHED = ("queued", "delayed", "assigned", "running", "waiting")


def check_schedules(problem: Callable[[str], None], reply: Any) -> None:
    """The schedule index (``schd``, read whole by lua/schedules.lua) against the records: each
    indexed schedule has a well-formed record whose pending tick is its score (+inf while paused);
    a cron keeps its times ascending after it; a last task that has not finished exists and was
    made by it; a buffered tick waits only under buffer_one, behind an earlier tick's task."""
    more, rows = text(reply)
    if more == "1":
        problem("the schedule index holds more schedules than one audit call reads")
    for name, score, flat, state in rows:
        r = dict(zip(flat[::2], flat[1::2], strict=True))
        if not r:
            problem(f"schedule {name} is in the schedule index but has no record")
            continue
        paused = r.get(SCHEDULE.paused) == "1"
        nxt = _int(r.get(SCHEDULE.next_ms))
        if r.get(SCHEDULE.next_ms) in ("inf", "+inf") and score in ("inf", "+inf"):
            pass  # retired: its cron never fires again
        elif nxt is None:
            problem(f"schedule {name} has no pending tick")
        elif paused and score not in ("inf", "+inf"):
            problem(f"schedule {name} is paused but indexed at {score}, not +inf")
        elif not paused and float(score) > nxt:
            problem(f"schedule {name} is indexed at {score}, after its pending tick {nxt}")
        if (r.get(SCHEDULE.cron) is None) == (r.get(SCHEDULE.every_ms) is None):
            problem(f"schedule {name} has {'both' if r.get(SCHEDULE.cron) else 'neither'} a cron and an interval")
        times = [int(t) for t in r.get(SCHEDULE.times, "").split(",") if t and t != END]
        if nxt is not None and times and (times[0] <= nxt or times != sorted(set(times))):
            problem(f"schedule {name}'s cron times are not ascending after its pending tick")
        if r.get(SCHEDULE.overlap) not in OVERLAPS:
            problem(f"schedule {name} has overlap {r.get(SCHEDULE.overlap)!r}")
        last = r.get(SCHEDULE.last_task)
        if last and state == "":
            pass  # finished and expired: nothing to check
        elif last and state is not None and state not in UNFINISHED + ("done", "failed", "cancelled"):
            problem(f"schedule {name}'s last task {last} is in state {state!r}")
        buffered = _int(r.get(SCHEDULE.buffered_ms))
        if buffered is not None:
            if r.get(SCHEDULE.overlap) != "buffer_one":
                problem(f"schedule {name} buffers a tick without overlap buffer_one")
            if not last:
                problem(f"schedule {name} buffers a tick behind no task")
        for counter in (SCHEDULE.runs, SCHEDULE.skipped, SCHEDULE.missed):
            if int(r.get(counter) or 0) < 0:
                problem(f"schedule {name} counts {r.get(counter)} {counter}")


#: The task record field naming the schedule that made a task (lua/lib/lifecycle's finish reads it).
TASK_SCHEDULE = TASK.schedule
