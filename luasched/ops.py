"""Sans-I/O core: for each script a pure builder of its call and a pure decoder of its reply.

The sync (scheduler.py, processor.py) and asyncio (aio.py) front ends only send what is built
here and hand back what comes in. Operations of several steps (waiting for a result) are
generators that yield requests and receive replies; ``drive`` loops run them on either transport.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .core.fields import GROUP, GROUP_EVENT, PROCESSOR, STATS, TASK
from .errors import ResultTimeout, ScriptError, TaskCancelled, TaskFailed, TaskNotFound
from .keys import Keys
from .tasks import DEFAULT_QUEUE, TaskOptions, decode_error, to_ms

MAX_LIMIT = 10000


@dataclass(frozen=True)
class Call:
    """One script call: the script's name, its KEYS and its ARGV."""

    script: str
    keys: tuple[str, ...]
    args: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """One plain Redis command, e.g. ``Command("blpop", (key, 5))``."""

    name: str
    args: tuple[Any, ...]


Request = Call | Command
Flow = Generator[Request, Any, Any]


def text(value: Any) -> Any:
    """A reply with every bytes turned into str (clients made with or without decode_responses).
    Replies are lists of many short strings (a batch's tasks): a flat list costs no call per item."""
    kind = type(value)
    if kind is list:
        return [v.decode() if type(v) is bytes else text(v) if type(v) is list else v for v in value]
    if kind is bytes:
        return value.decode()
    return value


def _now(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


@dataclass(frozen=True)
class Namespace:
    """What every call of one namespace needs: its key names and how long to keep records."""

    keys: Keys
    keep_s: int = 86400

    @property
    def prefix(self) -> str:
        return self.keys.prefix

    def call(self, script: str, *args: object) -> Call:
        return Call(script, self.keys.fixed, tuple(a if type(a) is str else str(a) for a in args))


# --- submit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTask:
    """One task to create: its id, name, encoded arguments, options and delay."""

    id: str
    name: str
    args_json: str
    options: TaskOptions
    delay_s: float = 0.0


#: At most this many one-task submits that waited share one script call (see take_batch).
COALESCE_MAX = 1000

W = TypeVar("W")


def take_batch(waiting: list[tuple[NewTask, W]], given_up: Callable[[W], bool]
               ) -> tuple[list[tuple[NewTask, W]], list[tuple[NewTask, W]]]:
    """One-task submits that waited while a submit call was in flight: those the next call
    carries (in order, at most COALESCE_MAX, an id once: a later submit of the same id goes in a
    later call and creates nothing, as a replay) and the rest. Those ``given_up`` are in neither."""
    batch: list[tuple[NewTask, W]] = []
    rest: list[tuple[NewTask, W]] = []
    ids: set[str] = set()
    for new, waiter in waiting:
        if given_up(waiter):
            continue
        if len(batch) < COALESCE_MAX and new.id not in ids:
            ids.add(new.id)
            batch.append((new, waiter))
        else:
            rest.append((new, waiter))
    return batch, rest


@dataclass(frozen=True)
class SubmitReply:
    created: int
    existing: list[str]
    assignments: list[tuple[str, str]]


SUBMIT_CHUNK = 1000


def submit(ns: Namespace, now_ms: int | None, tasks: Sequence[NewTask], *, dispatch: bool = False,
           group: str = "") -> list[Call]:
    """Calls creating ``tasks`` (chunks of SUBMIT_CHUNK, to be sent in one pipeline)."""
    calls = []
    for start in range(0, len(tasks), SUBMIT_CHUNK):
        chunk = tasks[start:start + SUBMIT_CHUNK]
        args: list[object] = [ns.prefix, _now(now_ms), "1" if dispatch else "0", group, len(chunk)]
        for t in chunk:
            o = t.options
            args += [t.id, t.name, o.queue, t.args_json, o.max_attempts, to_ms(o.timeout_s),
                     to_ms(o.backoff_s), to_ms(t.delay_s)]
        calls.append(ns.call("submit", *args))
    return calls


def decode_submit(replies: Sequence[Any]) -> SubmitReply:
    created, existing, assignments = 0, [], []
    for reply in replies:
        n, old, pairs = text(reply)
        created += int(n)
        existing += old
        assignments += _pairs(pairs)
    return SubmitReply(created, existing, assignments)


def _pairs(flat: Sequence[str]) -> list[tuple[str, str]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


# --- dispatch, reap ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchReply:
    assignments: list[tuple[str, str]]
    now_ms: int
    next_due_ms: int | None  # earliest delayed task
    next_lease_ms: int | None  # earliest lease deadline
    next_deadline_ms: int | None  # earliest running task's timeout

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


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def dispatch(ns: Namespace, now_ms: int | None, limit: int, rid: str) -> Call:
    return ns.call("dispatch", ns.prefix, _now(now_ms), check_limit(limit), rid)


def _ms(value: str) -> int | None:
    return int(float(value)) if value else None


def decode_dispatch(reply: Any) -> DispatchReply:
    pairs, now, due, lease, deadline = text(reply)
    return DispatchReply(_pairs(pairs), int(now), _ms(due), _ms(lease), _ms(deadline))


def reap(ns: Namespace, now_ms: int | None, limit: int, rid: str) -> Call:
    return ns.call("reap", ns.prefix, _now(now_ms), check_limit(limit), ns.keep_s, rid)


class Reaped(list[str]):
    """Ids of the tasks one reap call took back. ``processors`` are the lapsed processors it
    removed; ``more`` says lapsed processors or overdue tasks remain. Truthy while there was work
    or more remains, so ``while sched.reap(): pass`` leaves nothing behind."""

    def __init__(self, ids: Sequence[str], processors: Sequence[str], more: bool) -> None:
        super().__init__(ids)
        self.processors = list(processors)
        self.more = more

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.processors) or self.more


def decode_reap(reply: Any) -> Reaped:
    ids, removed, more = text(reply)
    return Reaped(ids, removed, more == "1")


# --- processors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A task a processor slot must now run."""

    id: str
    name: str
    args_json: str
    attempt: int
    timeout_ms: int


def _started_list(flat: Sequence[str]) -> list[Started]:
    """Started tasks from a flat reply: 'task', id, name, args, attempt, timeout_ms, 'task', ..."""
    return [Started(flat[i + 1], flat[i + 2], flat[i + 3], int(flat[i + 4]), int(flat[i + 5]))
            for i in range(0, len(flat), 6) if flat[i] == "task"]


def register(ns: Namespace, now_ms: int | None, pid: str, capacity: int, lease_ms: int,
             queues: Sequence[str], name: str) -> Call:
    return ns.call("register", ns.prefix, _now(now_ms), pid, capacity, lease_ms, ",".join(queues), name)


def decode_register(reply: Any) -> bool:
    return bool(text(reply)[0] == "ok")


def heartbeat(ns: Namespace, now_ms: int | None, pid: str) -> Call:
    return ns.call("heartbeat", ns.prefix, _now(now_ms), pid)


def decode_heartbeat(reply: Any) -> bool:
    return bool(text(reply)[0] == "ok")


def deregister(ns: Namespace, now_ms: int | None, pid: str, rid: str) -> Call:
    return ns.call("deregister", ns.prefix, _now(now_ms), pid, ns.keep_s, rid)


def decode_deregister(reply: Any) -> list[str] | None:
    reply = text(reply)
    return list(reply[1]) if reply[0] == "ok" else None


def start(ns: Namespace, now_ms: int | None, pid: str, slot: str, rid: str, want: int = 1) -> Call:
    """Start up to ``want`` of the processor's pending tasks (the oldest first)."""
    return ns.call("start", ns.prefix, _now(now_ms), pid, slot, rid, want)


@dataclass(frozen=True)
class StartReply:
    status: str  # 'task' | 'empty' | 'lost'
    task: Started | None  # the first started task
    tasks: list[Started] = field(default_factory=list, compare=False)  # all of them


def decode_start(reply: Any) -> StartReply:
    reply = text(reply)
    if reply[0] == "task":
        tasks = _started_list(reply)
        return StartReply("task", tasks[0], tasks)
    return StartReply(reply[0], None)


#: What an ack asks to start next: nothing, the inbox's oldest tasks, or else the queues' heads.
#: What an ack does after the acks: start nothing; start from the inbox; also take from the queues
#: (complete-and-take-next); fill the freed slots by the least-loaded rule, then start from the
#: inbox (dispatch on ack; want 0: start nothing).
NEXT_NONE, NEXT_INBOX, NEXT_TAKE, NEXT_PLACE = "none", "inbox", "take", "place"

#: One finished task as an ack reports it: the task, "done" | "error", the result or error JSON.
Finished = tuple[Started, str, str]


def ack_many(ns: Namespace, now_ms: int | None, pid: str, slot: str, rid: str,
             finished: Sequence[Finished], next_mode: str, want: int) -> Call:
    """Ack every finished task and start up to ``want`` next ones, in ONE script call."""
    if next_mode not in (NEXT_NONE, NEXT_INBOX, NEXT_TAKE, NEXT_PLACE):
        raise ValueError(f"next_mode must be one of ops.NEXT_*, not {next_mode!r}")
    args: list[object] = [ns.prefix, _now(now_ms), pid, slot, rid, ns.keep_s, next_mode,
                          want if next_mode != NEXT_NONE else 0, len(finished)]
    for task, outcome, payload in finished:
        if outcome not in ("done", "error"):
            raise ValueError(f"outcome must be 'done' or 'error', not {outcome!r}")
        args += [task.id, task.attempt, outcome, payload]
    return ns.call("ack", *args)


def ack(ns: Namespace, now_ms: int | None, pid: str, slot: str, rid: str, task: Started,
        outcome: str, payload: str, next_mode: str) -> Call:
    """Ack one task and, unless next_mode is NEXT_NONE, start one next task."""
    return ack_many(ns, now_ms, pid, slot, rid, [(task, outcome, payload)], next_mode, 1)


@dataclass(frozen=True)
class AckReply:
    status: str  # of the first acked task: 'done' | 'retry' | 'failed' | 'stale'
    next: Started | None  # the first started task
    statuses: list[str] = field(default_factory=list, compare=False)  # one per acked task
    started: list[Started] = field(default_factory=list, compare=False)  # every started task
    #: (task id, processor id) of each task the ack placed (NEXT_PLACE; none on a replay)
    placed: list[tuple[str, str]] = field(default_factory=list, compare=False)
    #: NEXT_PLACE placed tasks and the processor's queues still hold more: the next ack, too,
    #: will likely find a task to start
    more: bool = field(default=False, compare=False)


def decode_ack(reply: Any) -> AckReply:
    statuses, flat, placed, more = text(reply)
    started = _started_list(flat)
    return AckReply(statuses[0] if statuses else "", started[0] if started else None, list(statuses), started,
                    list(zip(placed[::2], placed[1::2], strict=True)), bool(int(more)))


# --- tasks: cancel, state, result ---------------------------------------------------------------


def cancel(ns: Namespace, now_ms: int | None, task_id: str, rid: str) -> Call:
    return ns.call("cancel", ns.prefix, _now(now_ms), task_id, rid, ns.keep_s)


def decode_cancel(reply: Any, task_id: str) -> bool:
    reply = text(reply)
    if reply[0] == "unknown":
        raise TaskNotFound(task_id)
    return bool(reply[0] == "cancelled")


def result(ns: Namespace, task_id: str, mark: bool) -> Call:
    return ns.call("result", ns.prefix, task_id, "1" if mark else "0")


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
            raise TaskFailed(self.task_id, err["type"], err["message"], err["traceback"])
        if self.state == "cancelled":
            raise TaskCancelled(self.task_id)
        if self.state == "unknown":
            raise TaskNotFound(self.task_id)
        raise ScriptError(f"task {self.task_id} is {self.state}, it has no result yet")


def decode_result(reply: Any, task_id: str) -> Outcome:
    reply = text(reply)
    if len(reply) > 1:
        return Outcome(task_id, reply[0], reply[1], reply[2])
    return Outcome(task_id, reply[0])


def state(ns: Namespace, task_id: str) -> Command:
    return Command("hget", (ns.keys.task(task_id), TASK.state))


def wait_result(ns: Namespace, task_id: str, timeout: float | None, slice_s: float,
                whole: float | None = None) -> Flow:
    """Wait for a task to finish; returns its Outcome. Blocks on BLPOP for at most ``slice_s`` at
    a time (below the client's socket timeout), re-checking the state between slices.

    The waiter flag set by the result script makes the finishing script push a token to
    w:<id>. A waiter that takes the token puts it back (with a TTL) for any other waiter.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    wake = ns.keys.task_wake(task_id)
    while True:
        outcome = decode_result((yield result(ns, task_id, mark=True)), task_id)
        if outcome.finished or outcome.state == "unknown":
            return outcome
        left = slice_s if deadline is None else min(slice_s, deadline - time.monotonic())
        if left <= 0:
            said = timeout if whole is None else whole
            raise ResultTimeout(f"task {task_id} did not finish within {said} s (it is {outcome.state})")
        got = yield Command("blpop", ([wake], max(left, 0.001)))
        if got:
            yield Command("rpush", (wake, "1"))
            yield Command("expire", (wake, 300))


class WaitClock:
    """The time budget of a wait that survives connection loss (a restart, a failover): how
    long is left, and how long to back off before trying again (None: no time left)."""

    def __init__(self, timeout: float | None, first_backoff_s: float = 0.05, max_backoff_s: float = 5.0) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._backoff = first_backoff_s
        self._max = max_backoff_s

    def left(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - time.monotonic(), 0.0)

    def backoff(self) -> float | None:
        pause = self._backoff
        self._backoff = min(self._backoff * 2, self._max)
        left = self.left()
        if left is not None and left <= pause:
            return None
        return pause


def outcomes(ns: Namespace, task_ids: Sequence[str]) -> Command:
    """One read of many tasks' states and payloads (a pipeline of HMGETs)."""
    return Command("pipeline", tuple(("hmget", (ns.keys.task(t), TASK.state, TASK.result, TASK.error,
                                                 TASK.last_processor)) for t in task_ids))


def decode_outcomes(replies: Sequence[Any], task_ids: Sequence[str]) -> list[Outcome]:
    out = []
    for task_id, reply in zip(task_ids, replies, strict=True):
        s, r, e, by = text(reply)
        if s is None:
            out.append(Outcome(task_id, "unknown"))
        else:
            out.append(Outcome(task_id, s, r if s == "done" else e, by or ""))
    return out


class GroupReader:
    """Follows a group's stream (XREAD BLOCK: no polling, any number of readers) and reports each
    member as it finishes, in finishing order. Sans-I/O: ask ``request()``, send it, ``feed()`` the
    reply; repeat until ``done``."""

    def __init__(self, ns: Namespace, group_id: str, task_ids: Sequence[str], timeout: float | None,
                 slice_s: float) -> None:
        self._slice_s = slice_s
        self._stream = ns.keys.group_stream(group_id)
        self._group_id = group_id
        self._want = set(task_ids)
        self._seen: set[str] = set()
        self._last = "0-0"
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    @property
    def done(self) -> bool:
        return len(self._seen) >= len(self._want)

    def request(self) -> Command:
        left = self._slice_s if self._deadline is None else min(self._slice_s, self._deadline - time.monotonic())
        if left <= 0:
            missing = len(self._want) - len(self._seen)
            raise ResultTimeout(f"group {self._group_id}: {missing} of {len(self._want)} tasks did not "
                                f"finish within {self._timeout} s")
        return Command("xread", ({self._stream: self._last}, 1000, max(int(left * 1000), 1)))

    def feed(self, reply: Any) -> list[tuple[str, str]]:
        """(task id, state) of members newly seen finished."""
        events = []
        for _, entries in text(reply) or []:
            for entry_id, fields in entries:
                self._last = entry_id
                f = _fields(fields)
                tid = f.get(GROUP_EVENT.task, "")
                if tid in self._want and tid not in self._seen:
                    self._seen.add(tid)
                    events.append((tid, f.get(GROUP_EVENT.state, "")))
        return events


def _fields(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    flat = text(value)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


#: The fields of a group record that group_progress reads, in its order.
GROUP_COUNTERS = (GROUP.total, GROUP.done, GROUP.failed, GROUP.cancelled)


def group_progress(counters: Sequence[str | None], states: Sequence[str] | None) -> dict[str, int]:
    """A group's total/done/failed/cancelled/pending from its counters (GROUP_COUNTERS), or, once
    its keys expired (no total), from its members' states."""
    n, d, f, c = counters
    if n is None:
        states = states or []
        n, d, f, c = str(len(states)), str(states.count("done")), str(states.count("failed")), \
            str(states.count("cancelled"))
    total, done, failed, cancelled = int(n), int(d or 0), int(f or 0), int(c or 0)
    return {"total": total, "done": done, "failed": failed, "cancelled": cancelled,
            "pending": total - done - failed - cancelled}


# --- counts and audit -------------------------------------------------------------------------


COUNT_NAMES = ("submitted", "queued", "delayed", "assigned", "running", "done", "failed",
               "cancelled", "processors", "idle_processors", "lapsed_processors", "last_dispatch_ms",
               "now_ms", "done_last_minute", "failed_last_minute")


def counts(ns: Namespace, now_ms: int | None) -> Call:
    return ns.call("counts", ns.prefix, _now(now_ms))


def decode_counts(reply: Any) -> tuple[dict[str, int], dict[str, int]]:
    flat, depths = text(reply)
    return ({flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)},
            {depths[i]: int(depths[i + 1]) for i in range(0, len(depths), 2)})


def retry_failed(ns: Namespace, now_ms: int | None, task_ids: Sequence[str], limit: int,
                 rid: str) -> Call:
    if task_ids and len(task_ids) > check_limit(limit):
        raise ValueError(f"retry_failed: {len(task_ids)} ids, more than limit {limit}")
    return ns.call("retry_failed", ns.prefix, _now(now_ms), check_limit(limit), rid, *task_ids)


def decode_retry_failed(reply: Any) -> list[str]:
    return list(text(reply))


@dataclass(frozen=True)
class ProcessorInfo:
    """A registered processor as ``processors`` sees it (times in server ms)."""

    id: str
    lease_deadline_ms: int
    name: str
    capacity: int
    queues: tuple[str, ...]
    pending: int
    running: int
    last_heartbeat_ms: int
    registered_ms: int

    @property
    def load(self) -> int:
        return self.pending + self.running


def processors(ns: Namespace, now_ms: int | None, limit: int) -> Call:
    return ns.call("processors", ns.prefix, _now(now_ms), check_limit(limit))


def decode_processors(reply: Any) -> tuple[int, list[ProcessorInfo]]:
    now, rows = text(reply)
    return int(now), [
        ProcessorInfo(pid, int(float(deadline)), name, int(cap), tuple(qs.split(",")) if qs else (),
                      int(pending), int(running), int(hb), int(rt))
        for pid, deadline, name, cap, qs, pending, running, hb, rt in rows
    ]


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


def failed(ns: Namespace, task_ids: Sequence[str]) -> Command:
    return Command("pipeline", tuple(("hmget", (ns.keys.task(t), TASK.name, TASK.queue, TASK.attempts, TASK.error))
                                     for t in task_ids))


def decode_failed(replies: Sequence[Any], scored: Sequence[tuple[str, float]]) -> list[FailedTask]:
    out = []
    for (task_id, failed_ms), reply in zip(scored, replies, strict=True):
        name, queue, n, e = text(reply)
        err = decode_error(e or "")
        out.append(FailedTask(task_id, name or "", queue or DEFAULT_QUEUE, int(n or 0), int(failed_ms),
                              err["type"], err["message"], err["traceback"]))
    return out


def audit(ns: Namespace, now_ms: int | None) -> Call:
    return ns.call("audit", ns.prefix, _now(now_ms))


@dataclass
class Audit:
    """What audit found: ``ok`` when the invariant holds, else ``problems`` says what is wrong."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


TWO40 = 1 << 40
PLACES = ("queued", "delayed", "assigned", "running", "done", "failed", "cancelled")


def check_audit(reply: Any) -> Audit:
    """Check the conservation invariant on one audit snapshot (a pure function)."""
    now_s, stats_flat, queues, delayed, running_flat, failed, procs, idles, idle, records, cards_flat = text(reply)
    cards = _fields(cards_flat)
    now = int(now_s)
    stats = {k: int(v) for k, v in _fields(stats_flat).items()}
    problems: list[str] = []
    where: dict[str, list[str]] = {}

    def put(task_id: str, place: str) -> None:
        where.setdefault(task_id, []).append(place)

    for q, ids in queues:
        for t in ids:
            put(t, f"queue {q}")
    for t in delayed:
        put(t, "delayed")
    for t in failed:
        put(t, "failed")
    running = _fields(running_flat)
    in_running_sets: set[str] = set()
    pending_total = 0
    lapsed: set[str] = set()
    loads: dict[str, tuple[int, int, list[str]]] = {}
    for pid, deadline, rec_flat, pending, started in procs:
        rec = _fields(rec_flat)
        card = cards.pop(pid, None)  # none: the record predates cards (dispatch then reads it)
        if float(deadline) < now:
            lapsed.add(pid)
        if not rec:
            problems.append(f"processor {pid} is registered but has no record")
            continue
        cap_s, dl, qs = rec.get(PROCESSOR.capacity), rec.get(PROCESSOR.deadline_ms), rec.get(PROCESSOR.queues)
        if dl is not None and float(dl) != float(deadline):
            problems.append(f"processor {pid}'s record says its lease ends at {dl}, the registry {deadline}")
        if card is not None and card != f"{cap_s} {dl} {qs}":
            problems.append(f"processor {pid}'s card {card!r} is out of step with its record "
                            f"({PROCESSOR.capacity} {cap_s}, {PROCESSOR.deadline_ms} {dl}, {PROCESSOR.queues} {qs})")
        for t in pending:
            put(t, f"inbox {pid} (pending)")
        for t in started:
            put(t, f"inbox {pid} (running)")
            in_running_sets.add(t)
        pending_total += len(pending)
        load, cap = len(pending) + len(started), int(rec[PROCESSOR.capacity])
        loads[pid] = (load, cap, rec[PROCESSOR.queues].split(","))
        if load > cap:
            problems.append(f"processor {pid} holds {load} tasks, over its capacity {cap}")
    for t in running:
        if t not in in_running_sets:
            problems.append(f"task {t} is in the running zset but in no processor's running set")
    for t in in_running_sets - set(running):
        problems.append(f"task {t} runs on a processor but is missing from the running zset")

    for t, places in where.items():
        if len(places) > 1:
            problems.append(f"task {t} is in {len(places)} places: {', '.join(places)}")

    expect_state = {"queue": "queued", "delayed": "delayed", "failed": "failed"}
    for task_id, s, q, p, n, m in records:
        places = where.get(task_id, [])
        if not s:
            problems.append(f"task {task_id} is in {places[0] if places else '?'} but has no record")
            continue
        if not places:
            continue
        place = places[0]
        kind = place.split(" ")[0]
        if kind == "inbox":
            owner = place.split(" ")[1]
            want = "running" if place.endswith("(running)") else "assigned"
            if s != want or p != owner:
                problems.append(f"task {task_id} is in {place} but its record says {s} on {p or 'none'}")
        elif s != expect_state[kind]:
            problems.append(f"task {task_id} is in {place} but its record says {s}")
        elif kind == "queue" and place != f"queue {q}":
            problems.append(f"task {task_id} is in {place} but belongs to queue {q}")
        if n and m and int(n) > int(m):
            problems.append(f"task {task_id} used {n} attempts of {m}")

    idle_members = set(idle)
    for q, flat in idles:
        for i in range(0, len(flat), 2):
            pid, score = flat[i], int(float(flat[i + 1]))
            if pid not in loads:
                problems.append(f"processor {pid} is idle for queue {q} but is not registered")
                continue
            load, cap, served = loads[pid]
            if q not in served:
                problems.append(f"processor {pid} is idle for queue {q} but does not serve it")
            if score // TWO40 != load:
                problems.append(f"processor {pid} is ranked with load {score // TWO40} for {q}, holds {load}")
            if load >= cap:
                problems.append(f"processor {pid} is idle for {q} but full ({load}/{cap})")
    idle_by_queue = {q: {flat[i] for i in range(0, len(flat), 2)} for q, flat in idles}
    for pid, (load, cap, served) in loads.items():
        if pid in lapsed:
            continue
        for q in served:
            if (load < cap) != (pid in idle_by_queue.get(q, set())):
                problems.append(f"processor {pid} ({load}/{cap}) is {'not ' if load < cap else ''}"
                                f"ranked idle for queue {q}")
        if (load < cap) != (pid in idle_members):
            problems.append(f"processor {pid} ({load}/{cap}) has the wrong idle-set membership")
    for pid in idle_members - set(loads):
        problems.append(f"processor {pid} is in the idle set but not registered")
    for pid in sorted(cards):  # what is left: cards of no registered processor
        problems.append(f"processor {pid} has a card but is not registered")

    queued = sum(len(ids) for _, ids in queues)
    c = {
        "submitted": stats.get(STATS.submitted, 0),
        "queued": queued,
        "delayed": len(delayed),
        "assigned": pending_total,
        "running": len(running),
        "done": stats.get(STATS.done, 0),
        "failed": len(failed),
        "cancelled": stats.get(STATS.cancelled, 0),
        "processors": len(procs),
        "idle_processors": len(idle_members),
    }
    assigned, failed_n = stats.get(STATS.assigned, 0), stats.get(STATS.failed, 0)
    if assigned != pending_total:
        problems.append(f"counter assigned is {assigned}, inboxes hold {pending_total} pending")
    if failed_n != len(failed):
        problems.append(f"counter failed is {failed_n}, the dead letters hold {len(failed)}")
    placed = sum(c[k] for k in PLACES)
    if placed != c["submitted"]:
        detail = ", ".join(f"{k} {c[k]}" for k in PLACES)
        problems.append(f"{c['submitted']} tasks were submitted but {placed} are accounted for ({detail})")
    return Audit(not problems, problems, c)
