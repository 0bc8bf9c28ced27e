"""What a processor and a scheduler loop log, and at which level: one function per kind of line.

Lines go through the standard ``logging`` module: ``luasched.processor`` for each attempt a
processor ran, ``luasched.scheduler`` for the scheduler loop (reaps, its summary). Each line
also carries its facts as ``extra`` fields (task id, task name, attempt, outcome, error type...)
for a JSON formatter. A line costs nothing unless its logger is enabled for its level: each
function asks ``isEnabledFor`` once, before formatting anything.

The lines about one attempt (``task ID NAME attempt N: ...``):

- done (INFO, only with ``log_tasks``): ``done in 0.001 s``
- failed, a retry follows (INFO): ``failed after 0.001 s; retry 2/3 in 0.50 s: ValueError: chunk 7: corrupt input``
- failed for good (WARNING): ``failed after 0.001 s; dead letter after 3/3 attempts: ValueError: ...``
- its traceback (DEBUG), on the lines after ``traceback of its ValueError:``
- a stale ack (WARNING): the attempt had ended meanwhile (its lease lapsed, it ran past its
  timeout, or it was cancelled): what it did is dropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .replies import DispatchReply, Ended, Reaped
from .tasks import Started, decode_error
from .words import counted

task_log = logging.getLogger("luasched.processor")
loop_log = logging.getLogger("luasched.scheduler")

INFO, WARNING, DEBUG = logging.INFO, logging.WARNING, logging.DEBUG

#: At most this many characters of an error's message on a line (the record keeps it whole).
MESSAGE_CHARS = 500
#: A reap line names at most this many of the task ids it gave back.
IDS_SHOWN = 10


def _facts(task: Started, pid: str, outcome: str, took_s: float) -> dict[str, object]:
    return {"task_id": task.id, "task_name": task.name, "attempt": task.attempt, "outcome": outcome,
            "duration_s": round(took_s, 6), "processor": pid}


def error_text(error_type: str, message: str) -> str:
    """``ValueError: chunk 7: corrupt input``, on one line, cut at MESSAGE_CHARS."""
    one = " ".join(message.split())
    if len(one) > MESSAGE_CHARS:
        one = one[:MESSAGE_CHARS - 3] + "..."
    return f"{error_type}: {one}" if one else error_type


def attempt_done(task: Started, took_s: float, pid: str) -> None:
    """An attempt returned (INFO): written when it returns, before its ack is sent."""
    if task_log.isEnabledFor(INFO):
        task_log.info("task %s %s attempt %d: done in %.3f s", task.id, task.name, task.attempt, took_s,
                      extra=_facts(task, pid, "done", took_s))


def attempt_failed(task: Started, error_json: str, took_s: float, status: str, ended: Ended | None,
                   pid: str) -> None:
    """An attempt raised and its ack ended it: a retry follows (INFO, saying when), or the task
    failed for good (WARNING: a dead letter); the traceback at DEBUG. ``ended`` None: the ack
    was a replay, which does not say when the retry comes."""
    level = WARNING if status == "failed" else INFO
    debug = task_log.isEnabledFor(DEBUG)
    if not debug and not task_log.isEnabledFor(level):
        return
    err = decode_error(error_json)
    facts = _facts(task, pid, "dead_letter" if status == "failed" else "retry", took_s)
    facts.update(error_type=err["type"], error_message=err["message"])
    if status == "failed":
        of = f"{task.attempt}/{ended.max_attempts}" if ended else f"{task.attempt}"
        then = f"dead letter after {of} attempts"
        facts["max_attempts"] = ended.max_attempts if ended else None
    elif ended is not None and ended.retry_in_ms is not None:
        then = f"retry {task.attempt + 1}/{ended.max_attempts} in {ended.retry_in_ms / 1000:.2f} s"
        facts.update(max_attempts=ended.max_attempts, retry_in_s=ended.retry_in_ms / 1000)
    else:
        then = f"retry {task.attempt + 1} (when: the ack was a replay, it does not say)"
    task_log.log(level, "task %s %s attempt %d: failed after %.3f s; %s: %s", task.id, task.name,
                 task.attempt, took_s, then, error_text(err["type"], err["message"]), extra=facts)
    if debug and err["traceback"]:
        task_log.debug("task %s %s attempt %d: traceback of its %s:\n%s", task.id, task.name, task.attempt,
                       err["type"], err["traceback"].rstrip(), extra=facts)


def attempt_stale(task: Started, outcome: str, payload: str, took_s: float, pid: str) -> None:
    """The ack found the attempt already ended (WARNING): whatever it did is dropped."""
    if not task_log.isEnabledFor(WARNING):
        return
    facts = _facts(task, pid, "stale", took_s)
    if outcome == "done":
        what = f"done in {took_s:.3f} s"
    else:
        err = decode_error(payload)
        facts["error_type"] = err["type"]
        what = f"failed after {took_s:.3f} s ({error_text(err['type'], err['message'])})"
    task_log.warning("task %s %s attempt %d: %s, but the attempt had already ended (its lease lapsed, it ran "
                     "past its timeout, or it was cancelled): its ack changed nothing", task.id, task.name,
                     task.attempt, what, extra=facts)


def acked(tasks: Sequence[Started], results: Sequence[tuple[str, str, float]], statuses: Sequence[str],
          ended: Mapping[str, Ended], pid: str) -> None:
    """The lines only an ack's reply can decide: failed attempts (retry or dead letter) and stale acks."""
    for task, (outcome, payload, took_s), status in zip(tasks, results, statuses, strict=True):
        if status == "stale":
            attempt_stale(task, outcome, payload, took_s, pid)
        elif outcome != "done":
            attempt_failed(task, payload, took_s, status, ended.get(task.id), pid)


# --- the scheduler loop ------------------------------------------------------------------------


def eviction(policy: str | None, who: str, logger: logging.Logger) -> None:
    """Say, once at start, when Redis may evict luasched's keys (or when that cannot be told)."""
    if policy is None:
        logger.info("%s: could not read Redis's maxmemory-policy (INFO is not allowed here); "
                    "luasched needs noeviction", who)
    elif policy != "noeviction":
        logger.warning("%s: Redis's maxmemory-policy is %s: under memory pressure Redis deletes keys, and "
                       "with them tasks, results and counters, without a word; set maxmemory-policy "
                       "noeviction", who, policy)


def reaped(reply: Reaped) -> None:
    """What one reap took back (INFO): each lapsed processor and each task past its timeout; and
    how many waiting tasks it ended because their deadline came."""
    if not loop_log.isEnabledFor(INFO):
        return
    for lapsed in reply.lapsed:
        n = len(lapsed.task_ids)
        shown = ", ".join(lapsed.task_ids[:IDS_SHOWN]) + (", ..." if n > IDS_SHOWN else "")
        dead = f" ({lapsed.failed} on their last attempt: failed)" if lapsed.failed else ""
        loop_log.info("reaped processor %s: its lease lapsed; %s given back%s%s", lapsed.processor,
                      counted(n, "task"), f": {shown}" if n else "", dead,
                      extra={"event": "reap", "processor": lapsed.processor, "tasks": n,
                             "failed": lapsed.failed})
    for late in reply.overdue:
        then = ("failed for good (its last attempt)" if late.retry_in_ms is None
                else f"retry in {late.retry_in_ms / 1000:.2f} s")
        loop_log.info("reaped task %s from processor %s: it ran past its timeout of %.3f s; %s; its slot "
                      "stays taken until the call ends", late.task_id,
                      late.processor, late.timeout_ms / 1000, then,
                      extra={"event": "timeout", "task_id": late.task_id, "processor": late.processor,
                             "outcome": "dead_letter" if late.retry_in_ms is None else "retry"})
    if reply.expired:
        loop_log.info("ended %s whose deadline came before they started: failed with TaskExpired",
                      counted(reply.expired, "waiting task"), extra={"event": "expired", "tasks": reply.expired})


@dataclass
class LoopSummary:
    """The counts behind a scheduler loop's periodic summary line (INFO): tasks placed,
    delayed tasks promoted, tasks reaped, since the last line. ``every_s`` None: no line."""

    every_s: float | None
    placed: int = 0
    promoted: int = 0
    reaped: int = 0
    lapsed: int = 0
    since: float = 0.0

    def __post_init__(self) -> None:
        self.since = time.monotonic()

    def dispatched(self, reply: DispatchReply) -> None:
        self.placed += len(reply.assignments)
        self.promoted += reply.promoted

    def took_back(self, reply: Reaped) -> None:
        self.reaped += len(reply)
        self.lapsed += len(reply.processors)

    def left_s(self, now: float | None = None) -> float:
        """How long until the next line is due (inf: none will be): the loop wakes for it."""
        if self.every_s is None:
            return math.inf
        now = time.monotonic() if now is None else now
        return max(self.since + self.every_s - now, 0.001)

    def tick(self, now: float | None = None) -> bool:
        """Log the line if it is due (one per ``every_s``, idle or not: a line proves the loop is
        alive), then count afresh. True when it logged."""
        if self.every_s is None:
            return False
        now = time.monotonic() if now is None else now
        took = now - self.since
        if took < self.every_s:
            return False
        loop_log.info("scheduler loop, last %.1f s: placed %d, promoted %d, reaped %d, processors lapsed %d",
                      took, self.placed, self.promoted, self.reaped, self.lapsed,
                      extra={"event": "summary", "interval_s": round(took, 3), "placed": self.placed,
                             "promoted": self.promoted, "reaped": self.reaped, "lapsed": self.lapsed})
        self.placed = self.promoted = self.reaped = self.lapsed = 0
        self.since = now
        return True
