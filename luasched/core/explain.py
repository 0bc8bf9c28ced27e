"""Why a task is where it is (lua/explain.lua): the call, and the pure decoding of the facts it
reads into an ``Explanation`` (a reason, its detail, and one sentence for a person); and, for
``luasched status``, how many waiting tasks of each queue no live processor can take, and which
task names submitted to it none serving it has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TaskNotFound
from .kinds import decode_requires, describe_requires
from .ops import Call, Command, Namespace, _now, text
from .options import check_limit, check_task_id
from .replies import ProcessorInfo
from .tasks import decode_error
from .words import counted, duration

#: Every reason an Explanation gives. ``waiting_dependencies``: a task that waits for others
#: (then, _after); ``expired`` is a failed task whose error is TaskExpired.
REASONS = ("delayed", "waiting_slot", "paused", "rate_limited", "max_running", "no_processor",
           "waiting_dependencies", "assigned", "running", "done", "failed", "cancelled", "expired")

#: The error type a task that expired before it started is failed with.
EXPIRED_ERROR = "TaskExpired"

#: At most this many live processors are read to learn whether one serves a queue.
EXPLAIN_PROCESSORS = 10000


@dataclass(frozen=True)
class Explanation:
    """Why task ``task_id`` is where it is now (``TaskHandle.explain``, ``luasched explain``).

    ``state`` is the task's state; ``reason`` one of ``REASONS``; ``text`` one sentence for a
    person; ``detail`` what the reason rests on (times are server ms):

    - every waiting (queued) reason: ``queue``, ``priority``, ``key`` (None: none),
      ``queue_depth`` (tasks waiting in the queue), ``lane_length`` (tasks in its lane: same
      queue, priority and key, first in first out), ``at_head`` (it is the next of its lane) and
      ``head`` (the id that is), ``processors`` (live processors serving the queue; None when
      more than ``EXPLAIN_PROCESSORS`` are live and none of those read serves it) and
      ``free_processors`` (of them, those that may run it, by task name and labels, with a free
      slot); with processors registered, ``capable_processors`` (of those serving it, the ones
      that may run it). The exact position in the queue is
      not given: a list has no cheap rank, and explaining never reads a queue beyond its head.
    - ``delayed``: ``until_ms`` (when it is due), ``retry`` (it waits out a retry backoff),
      ``attempts``.
    - ``paused``: ``scope`` (``namespace``, ``queue``, ``key`` in every queue, ``queue_key``: the
      key in this queue), ``paused_queue``, ``paused_key`` (None: every queue / no key),
      ``since_ms``.
    - ``rate_limited``: ``limiter``, ``until_ms`` (when its rate lets the head of its lane go).
    - ``max_running``: ``limiter``, ``running``, ``max_running``.
    - ``no_processor``: ``condition``, the one no processor meets: ``queue`` (no live processor
      serves it), ``task name`` (no registered processor serving it has its task: ``task``) or
      ``label`` (none of those has labels that meet its requires: ``label``, the first condition
      none meets, and ``requires``, all of them in words); and ``queue``.
    - ``waiting_slot``: the waiting fields above (no processor serving it has a free slot, or it
      is behind others; a free one places it at the next dispatch).
    - ``waiting_dependencies`` (state ``waiting``): ``waiting_for`` (``{"task": id}`` or
      ``{"group": id}`` each), ``left`` (not ended yet), ``failed`` (ended failed or cancelled),
      ``on_failure``, ``fed`` (their results come in first), ``queue``.
    - ``assigned`` and ``running``: ``processor``, ``processor_name``, ``processor_alive``,
      ``attempt``; assigned: ``pending`` (tasks in that processor's inbox, not started); running:
      ``started_ms``, ``timeout_ms`` (None: no timeout).
    - ``done``, ``failed``, ``cancelled``, ``expired``: ``finished_ms``, ``attempts``,
      ``processor`` (the one that ran its last attempt; None: none); failed and expired:
      ``error_type``, ``error_message``.
    - A task that has not started and has a deadline (``expires``) also has ``expires_ms``.
    """

    task_id: str
    state: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    now_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data (``luasched explain --json``)."""
        return {"id": self.task_id, "state": self.state, "reason": self.reason, "detail": self.detail,
                "text": self.text, "now_ms": self.now_ms}


def explain(ns: Namespace, now_ms: int | None, task_id: str, limit: int = EXPLAIN_PROCESSORS) -> Call:
    """Read what holds task ``task_id`` where it is (read-only, one call)."""
    return ns.call("explain", ns.prefix, _now(now_ms), check_task_id(task_id), check_limit(limit))


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(float(value))


def decode_explain(reply: Any, task_id: str) -> Explanation:
    """The Explanation of the script's facts; raises TaskNotFound when there is no such task."""
    now_raw, flat = text(reply)
    facts = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    if not facts:
        raise TaskNotFound(task_id)
    now = int(now_raw)
    facts["id"] = task_id
    state = facts["state"]
    reason, detail = _reason(state, facts)
    if state in ("waiting", "queued", "delayed", "assigned") and "expires_ms" in facts:
        detail["expires_ms"] = int(facts["expires_ms"])  # not started by then, it never starts
    return Explanation(task_id, state, reason, detail, sentence(task_id, reason, detail, now), now)


def _reason(state: str, f: dict[str, str]) -> tuple[str, dict[str, Any]]:
    attempts = int(f.get("attempts", "0"))
    if state in ("done", "failed", "cancelled"):
        detail: dict[str, Any] = {"finished_ms": _int(f.get("finished_ms")), "attempts": attempts,
                                  "processor": f.get("last_processor") or None}
        if state != "failed":
            return state, detail
        error = decode_error(f.get("error", ""))
        detail |= {"error_type": error["type"], "error_message": error["message"]}
        return ("expired" if error["type"] == EXPIRED_ERROR else "failed"), detail
    if state == "waiting":
        refs = [r for r in f.get("parents", "").split(",") if r]
        return "waiting_dependencies", {
            "waiting_for": [{"task" if r.startswith("t:") else "group": r[2:]} for r in refs],
            "left": int(f.get("deps_left", "0")), "failed": int(f.get("deps_bad", "0")),
            "on_failure": f.get("on_failure", "fail"), "fed": f.get("feed") == "1", "queue": f.get("queue", "default")}
    if state in ("assigned", "running"):
        pid = f.get("processor", "")
        lease = _int(f.get("lease_ms"))
        detail = {"processor": pid, "processor_name": f.get("processor_name", ""),
                  "processor_alive": lease is not None, "attempt": attempts}
        if state == "assigned":
            return state, detail | {"pending": int(f.get("pending", "0"))}
        timeout = f.get("timeout_ms")
        return state, detail | {"started_ms": _int(f.get("started_ms")),
                                "timeout_ms": None if timeout in (None, "inf") else _int(timeout)}
    if state == "delayed":
        return "delayed", {"until_ms": _int(f.get("until_ms")), "queue": f.get("queue", "default"),
                           "retry": attempts > 0, "attempts": attempts}
    return _waiting(f)


def _waiting(f: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A queued task: the first of pause, limiter, rate, no processor; else it waits for a slot."""
    read, live, serving = int(f.get("read", "0")), int(f.get("live", "0")), int(f.get("serving", "0"))
    known = serving > 0 or read >= live
    queue = f.get("queue", "default")
    head = f.get("head")
    detail: dict[str, Any] = {
        "queue": queue, "priority": int(f.get("priority", "5")), "key": f.get("key") or None,
        "queue_depth": int(f.get("queue_depth", "0")), "lane_length": int(f.get("lane_length", "0")),
        "at_head": head is not None and head == f.get("id"),
        "head": head, "processors": serving if known else None,
        "free_processors": int(f.get("free", "0")) if known else None,
    }
    return _queued_reason(f, detail)


def _queued_reason(f: dict[str, str], detail: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    scope = f.get("paused")
    if scope is not None:
        queue, key = detail["queue"], detail["key"]
        kind = scope
        return "paused", detail | {
            "scope": kind, "paused_queue": queue if kind in ("queue", "queue_key") else None,
            "paused_key": key if kind in ("key", "queue_key") else None, "since_ms": _int(f.get("paused_ms"))}
    held = f.get("held")
    if held == "max":
        return "max_running", detail | {"limiter": f["limiter"], "running": int(f.get("running", "0")),
                                        "max_running": int(f.get("max", "0"))}
    if held == "rate":
        return "rate_limited", detail | {"limiter": f["limiter"], "until_ms": _int(f.get("until_ms"))}
    if detail["processors"] == 0:
        return "no_processor", detail | {"condition": "queue"}
    kinds, named, able = int(f.get("kinds", "0")), int(f.get("named", "0")), int(f.get("capable", "0"))
    if kinds and detail["processors"] is not None:  # of those serving it, the ones that may run it
        detail["capable_processors"] = min(detail["processors"], int(f.get("capable_processors", "0")))
        detail["free_processors"] = min(detail["free_processors"], int(f.get("capable_free", "0")))
    if kinds and not named:
        return "no_processor", detail | {"condition": "task name", "task": f.get("task_name")}
    if named and not able:
        return "no_processor", detail | {"condition": "label", "label": f.get("label"),
                                         "requires": describe_requires(decode_requires(f.get("requires")))}
    return "waiting_slot", detail


def _in(until_ms: int | None, now_ms: int) -> str:
    if until_ms is None:
        return "at an unknown time"
    left = (until_ms - now_ms) / 1000
    return f"in {duration(left)}" if left > 0 else "now (the next dispatch moves it)"


def sentence(task_id: str, reason: str, d: dict[str, Any], now_ms: int) -> str:
    """The one sentence for a person that says ``reason`` with its ``detail``."""
    t = f"Task {task_id}"
    if reason == "delayed":
        why = "waits out its retry backoff" if d["retry"] else "is delayed"
        return f"{t} {why}: it is due {_in(d['until_ms'], now_ms)}, then joins queue {d['queue']}."
    if reason == "paused":
        covers = {"namespace": "the whole namespace is paused", "queue": f"queue {d['queue']} is paused",
                  "key": f"key {d['key']} is paused in every queue",
                  "queue_key": f"key {d['key']} is paused in queue {d['queue']}"}[d["scope"]]
        return f"{t} waits because {covers}; resume it to let the task be placed."
    if reason == "rate_limited":
        return (f"{t} waits for the rate of limiter {d['limiter']}: the head of its lane may go "
                f"{_in(d['until_ms'], now_ms)}.")
    if reason == "max_running":
        return (f"{t} waits for limiter {d['limiter']}: {d['running']} of its {d['max_running']} running "
                f"slots are taken.")
    if reason == "waiting_dependencies":
        names = ", ".join(f"{kind} {ref}" for w in d["waiting_for"] for kind, ref in w.items())
        then = {"fail": "it fails with DependencyFailed", "run": "it runs anyway",
                "skip": "it is cancelled"}.get(d["on_failure"], d["on_failure"])
        bad = f", {d['failed']} ended failed or cancelled" if d["failed"] else ""
        return (f"{t} waits for {names} ({d['left']} not ended yet{bad}); when they end it joins queue "
                f"{d['queue']}, unless one did not end done: then {then}.")
    if reason == "no_processor":
        if d.get("condition") == "task name":
            return (f"{t} waits in queue {d['queue']}: no processor serving it has task {d['task']}; "
                    f"start one whose app registers it.")
        if d.get("condition") == "label":
            return (f"{t} waits in queue {d['queue']}: no processor serving it has labels that meet "
                    f"{d['requires']} (none meets its condition on {d['label']}).")
        return f"{t} waits in queue {d['queue']}, which no live processor serves: start one that serves it."
    if reason == "waiting_slot":
        place = ("it is next in its lane" if d["at_head"]
                 else f"{counted(d['lane_length'], 'task')} in its lane, {d['head']} first")
        if d["processors"] is None:
            who = "the processors read do not serve it"
        elif d["free_processors"]:
            who = f"{counted(d['free_processors'], 'serving processor')} has a free slot for the next dispatch"
        else:
            n = d.get("capable_processors", d["processors"])
            who = f"all {counted(n, 'processor')} serving it that may run it are busy"
        return f"{t} waits in queue {d['queue']} ({d['queue_depth']} waiting; {place}): {who}."
    if reason == "assigned":
        alive = "" if d["processor_alive"] else " (whose lease has lapsed: a reap gives it back)"
        return f"{t} is assigned to processor {d['processor']}{alive} and waits in its inbox to start."
    if reason == "running":
        since = "" if d["started_ms"] is None else f" for {duration(max(0, now_ms - d['started_ms']) / 1000)}"
        return f"{t} is running on processor {d['processor']}{since} (attempt {d['attempt']})."
    if reason in ("failed", "expired"):
        what = ("expired before it started" if reason == "expired"
                else f"failed after {counted(d['attempts'], 'attempt')}")
        return f"{t} {what}: {d['error_type']}: {d['error_message']}."
    return f"{t} is {reason}."


def no_processor_counts(depths: Mapping[str, int], processors: Sequence[ProcessorInfo], now_ms: int,
                        complete: bool = True) -> dict[str, int | None]:
    """Queue -> how many of its waiting tasks no live processor can take: all of them when no
    live processor serves the queue, else 0 (a task's capability is its queue today). None when
    ``processors`` is not the whole registry (``complete`` False) and none of those serves it."""
    served = {q for p in processors if p.lease_deadline_ms >= now_ms for q in p.queues}
    return {q: 0 if q in served or not depth else depth if complete else None for q, depth in depths.items()}


def names_read(ns: Namespace, queues: Sequence[str]) -> Command:
    """One read of the task names ever submitted to each of ``queues`` (a pipeline of SMEMBERS)."""
    return Command("pipeline", tuple(("smembers", (ns.keys.queue_names(q),)) for q in queues))


def decode_names(replies: Sequence[Any], queues: Sequence[str]) -> dict[str, list[str]]:
    return {q: sorted(text(list(r))) for q, r in zip(queues, replies, strict=True)}


def unrunnable_names(names: Mapping[str, Sequence[str]], processors: Sequence[ProcessorInfo], now_ms: int,
                     complete: bool = True) -> dict[str, list[str] | None]:
    """Queue -> the task names submitted to it that no live processor serving it has (a
    processor that registered no task name takes any), for queues some live processor serves;
    their waiting tasks stay queued (explain says which). None when ``processors`` is not the
    whole registry (``complete`` False). The tasks with a name are not counted: that would need
    an index by name of every queue, kept by every placing call, which the fast path avoids."""
    had: dict[str, set[str] | None] = {}  # queue -> the names its live processors have (None: any)
    for p in processors:
        if p.lease_deadline_ms < now_ms:
            continue
        for q in p.queues:
            if not p.tasks:
                had[q] = None
            elif (known := had.setdefault(q, set())) is not None:
                known.update(p.tasks)
    return {q: None if not complete else [n for n in ns if n not in known]
            for q, ns in names.items() if q in had and (known := had[q]) is not None}
