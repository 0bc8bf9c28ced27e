"""For each script, a pure builder of its call and a pure decoder of its reply (sans I/O).

Both front ends only send what is built here and hand back what comes in; a reply becomes one of
the dataclasses of ``replies``. Key names come from ``keys``, field names from ``fields``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import error_for_status
from . import kinds

# the vocabulary of calls (core/calls), re-exported: the builders of calls import it from here
from .calls import Call as Call
from .calls import Command as Command
from .calls import Namespace as Namespace
from .calls import Request as Request
from .calls import _now as _now
from .calls import text as text
from .fields import TASK
from .options import DEFAULT_QUEUE, TaskOptions, check_limit, policy_field, to_ms
from .replies import (
    AckReply,
    DispatchReply,
    Ended,
    FailedTask,
    Lapsed,
    Outcome,
    Overdue,
    ProcessorInfo,
    PurgeChunk,
    Reaped,
    StartReply,
    SubmitReply,
)
from .tasks import Started, decode_error

# --- submit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTask:
    """One task to create: its id, name, encoded arguments, options and delay; the unique key it
    holds (None: none) and its debounce (0: none), core/unique; what it waits for (core/deps)."""

    id: str
    name: str
    args_json: str
    options: TaskOptions
    delay_s: float = 0.0
    unique_key: str | None = None
    debounce_s: float = 0.0
    deps: str = ""
    trace: str = ""  # the submit's trace context, JSON (luasched.tracing; '' for none)


SUBMIT_CHUNK = 1000


#: What submit sends per task, after its six fixed ARGV (lua/submit.lua's header), and then per
#: task that has a unique key.
PER_TASK, UNIQUE_VALUES = 12, 4
#: Where the first task's id and its arguments' JSON sit in a submit call's args: after the six
#: fixed ARGV, the id first and the arguments fourth (``submit``).
SUBMIT_ID_AT, SUBMIT_ARGS_AT = 6, 9


def submit(ns: Namespace, now_ms: int | None, tasks: Sequence[NewTask], *, dispatch: bool = False,
           group: str = "") -> list[Call]:
    """Calls creating ``tasks`` (chunks of SUBMIT_CHUNK, to be sent in one pipeline); PER_TASK
    values each: id, name, queue, args, max_attempts, timeout_ms, backoff_ms, delay_ms, policy
    (``policy_field``: '' for default priority, no key, limits or requires), expires_ms, deps, trace; then
    UNIQUE_VALUES for each task that has a unique key: its index in the call (from 1), the key,
    its unique_until and its debounce_ms."""
    calls = []
    for start in range(0, len(tasks), SUBMIT_CHUNK):
        chunk = tasks[start:start + SUBMIT_CHUNK]
        args: list[object] = [ns.prefix, _now(now_ms), "1" if dispatch else "0", group, len(chunk), ns.keep_s]
        unique: list[object] = []
        for i, t in enumerate(chunk, 1):
            o = t.options
            args += [t.id, t.name, o.queue, t.args_json, o.max_attempts, to_ms(o.timeout_s),
                     to_ms(o.backoff_s), to_ms(t.delay_s), policy_field(o), to_ms(o.expires_s), t.deps,
                     t.trace]
            if t.unique_key is not None:
                unique += [i, t.unique_key, o.unique_until, to_ms(t.debounce_s)]
        calls.append(ns.call("submit", *args, *unique))
    return calls


def decode_submit(replies: Sequence[Any]) -> SubmitReply:
    """Also a reply without its last entry (the submits that collapsed), as scripts before it answered."""
    created, existing, assignments = 0, [], []
    merged: dict[str, tuple[str, str]] = {}
    for reply in replies:
        reply = text(reply)
        n, old, pairs = reply[:3]
        created += int(n)
        existing += old
        assignments += _pairs(pairs)
        if len(reply) > 3:
            flat = reply[3]
            merged.update((flat[i], (flat[i + 1], flat[i + 2])) for i in range(0, len(flat), 3))
    return SubmitReply(created, existing, assignments, merged)


def _pairs(flat: Sequence[str]) -> list[tuple[str, str]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


# --- dispatch, reap ---------------------------------------------------------------------------


def dispatch(ns: Namespace, now_ms: int | None, limit: int, rid: str) -> Call:
    return ns.call("dispatch", ns.prefix, _now(now_ms), check_limit(limit), rid, ns.keep_s)


def _ms(value: str) -> int | None:
    return int(float(value)) if value else None


def decode_dispatch(reply: Any) -> DispatchReply:
    """Also a reply without its last entry (promoted), as scripts before it answered."""
    pairs, now, due, lease, deadline, *promoted = text(reply)
    return DispatchReply(_pairs(pairs), int(now), _ms(due), _ms(lease), _ms(deadline), int((promoted or [0])[0]))


def reap(ns: Namespace, now_ms: int | None, limit: int, rid: str) -> Call:
    return ns.call("reap", ns.prefix, _now(now_ms), check_limit(limit), ns.keep_s, rid)


def decode_reap(reply: Any) -> Reaped:
    """Also a reply of the first three entries alone (no lapsed or overdue details)."""
    reply = text(reply)
    ids, removed, more = reply[:3]
    lapsed, overdue = [], []
    if len(reply) > 4:
        counts, late = reply[3], reply[4]
        at = 0
        for i, pid in enumerate(removed):
            n = int(counts[2 * i])
            lapsed.append(Lapsed(pid, ids[at:at + n], int(counts[2 * i + 1])))
            at += n
        overdue = [Overdue(late[i], late[i + 1], int(late[i + 2] or 0), _ms(late[i + 4]))
                   for i in range(0, len(late), 5)]
    return Reaped(ids, removed, more == "1", lapsed, overdue, int(reply[5]) if len(reply) > 5 else 0)


# --- processors -------------------------------------------------------------------------------


def _started_list(flat: Sequence[str]) -> list[Started]:
    """Started tasks from a flat reply: 'task', id, name, args, attempt, timeout_ms, 'task', ..."""
    return [Started(flat[i + 1], flat[i + 2], flat[i + 3], int(flat[i + 4]), int(flat[i + 5]))
            for i in range(0, len(flat), 6) if flat[i] == "task"]


def register(ns: Namespace, now_ms: int | None, pid: str, capacity: int, lease_ms: int,
             queues: Sequence[str], name: str, default_timeout_ms: int, kind: tuple[str, str]) -> Call:
    """``default_timeout_ms``: of the tasks it runs that have none (0: none); ``kind``: core/kinds."""
    return ns.call("register", ns.prefix, _now(now_ms), pid, capacity, lease_ms, ",".join(queues), name,
                   default_timeout_ms, *kind)


def relabel(ns: Namespace, now_ms: int | None, pid: str, kind: tuple[str, str]) -> Call:
    return ns.call("relabel", ns.prefix, _now(now_ms), pid, *kind)  # decoded as register's


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
    return ns.call("start", ns.prefix, _now(now_ms), pid, slot, rid, want, ns.keep_s)


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


def decode_ack(reply: Any) -> AckReply:
    """Also a reply without its last entry (how attempts ended), as scripts before it answered."""
    reply = text(reply)
    statuses, flat, placed, more = reply[0], reply[1], reply[2], reply[3]
    started = _started_list(flat)
    ended = reply[4] if len(reply) > 4 else None
    return AckReply(statuses[0] if statuses else "", started[0] if started else None, list(statuses), started,
                    list(zip(placed[::2], placed[1::2], strict=True)), bool(int(more)),
                    {ended[i]: Ended(_ms(ended[i + 1]), int(ended[i + 2])) for i in range(0, len(ended), 3)}
                    if ended else {})


def ack_quiet(reply: Any) -> bool | None:
    """An ack's ``more`` (a backlog waits), read alone when the reply says nothing else a slot acts
    on (no task started, no attempt stale: a waiting slot's ack); else None: ``decode_ack`` it."""
    if reply[1] or "stale" in reply[0] or b"stale" in reply[0]:  # str or bytes: the client's choice
        return None
    return bool(int(reply[3]))


# --- tasks: cancel, state, result ---------------------------------------------------------------


def cancel(ns: Namespace, now_ms: int | None, task_id: str, rid: str) -> Call:
    return ns.call("cancel", ns.prefix, _now(now_ms), task_id, rid, ns.keep_s)


def decode_cancel(reply: Any, task_id: str) -> bool:
    status = text(reply)[0]
    if status == "unknown":
        raise error_for_status(status, task_id)
    return bool(status == "cancelled")


def result(ns: Namespace, task_id: str, mark: bool) -> Call:
    return ns.call("result", ns.prefix, task_id, "1" if mark else "0")


def decode_result(reply: Any, task_id: str) -> Outcome:
    reply = text(reply)
    if len(reply) > 1:
        return Outcome(task_id, reply[0], reply[1], reply[2])
    return Outcome(task_id, reply[0])


def state(ns: Namespace, task_id: str) -> Command:
    return Command("hget", (ns.keys.task(task_id), TASK.state))


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


def fields_of(value: Any) -> dict[str, str]:
    """A hash or stream entry's fields as a dict (a flat reply, or a dict from a RESP3 client)."""
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    flat = text(value)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


# --- counts and audit -------------------------------------------------------------------------


COUNT_NAMES = ("submitted", "waiting", "queued", "delayed", "assigned", "running", "done", "failed",
               "cancelled", "expired", "deduplicated", "purged", "processors", "idle_processors",
               "lapsed_processors", "last_dispatch_ms", "now_ms", "done_last_minute", "failed_last_minute")


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


def purge_finished(ns: Namespace, now_ms: int | None, older_than_ms: int, start: int, limit: int,
                   rid: str) -> Call:
    """One chunk of a purge of dead letters (lua/purge_finished.lua): up to ``limit`` of them from
    rank ``start`` of the failed set, those that failed at or before now - ``older_than_ms``."""
    if isinstance(older_than_ms, bool) or not isinstance(older_than_ms, int) or older_than_ms < 0:
        raise ValueError(f"purge_finished: older_than_ms must be an int >= 0, not {older_than_ms!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"purge_finished: start must be an int >= 0, not {start!r}")
    return ns.call("purge_finished", ns.prefix, _now(now_ms), older_than_ms, start, check_limit(limit), rid)


def decode_purge_finished(reply: Any) -> PurgeChunk:
    purged, skipped, stale, more, now_ms = text(reply)
    return PurgeChunk(int(purged), int(skipped), int(stale), bool(int(more)), int(now_ms))


def processors(ns: Namespace, now_ms: int | None, limit: int) -> Call:
    return ns.call("processors", ns.prefix, _now(now_ms), check_limit(limit))


def decode_processors(reply: Any) -> tuple[int, list[ProcessorInfo]]:
    now, rows = text(reply)
    return int(now), [
        ProcessorInfo(pid, int(float(deadline)), name, int(cap), tuple(qs.split(",")) if qs else (),
                      int(pending), int(running), int(hb), int(rt), int(stuck), _ms(oldest),
                      int(dto) or None, *kinds.labels_and_tasks(kind))
        for pid, deadline, name, cap, qs, pending, running, hb, rt, stuck, oldest, dto, kind in rows
    ]


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
    """The frame of an audit (lua/audit.lua): everything but the members of the big places."""
    return ns.call("audit", ns.prefix, _now(now_ms))


#: The big places an audit reads in slices (lua/audit_slice.lua): a queue, the delayed set, the
#: dead letters.
SLICED_PLACES = ("queue", "lane", "waiting", "delayed", "failed")


def audit_slice(ns: Namespace, place: str, queue: str, start: int, count: int) -> Call:
    """Members [start, start + count) of a big place, with their records, in one call."""
    if place not in SLICED_PLACES:
        raise ValueError(f"audit_slice: place must be one of {', '.join(SLICED_PLACES)}, not {place!r}")
    return ns.call("audit_slice", ns.prefix, place, queue, int(start), check_limit(count))


