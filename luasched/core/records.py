"""A task's whole record, read in one command and decoded: what ``luasched show`` prints and
``Scheduler.task_record`` returns. The stored names come from ``fields``; a field left out of the
record holds its default (the scripts store a queued task's record without them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .fields import TASK
from .keys import Keys
from .kinds import Condition, decode_requires
from .ops import Command, fields_of
from .options import DEFAULT_TASK_OPTIONS
from .tasks import decode_args, decode_error
from .timeline import Attempt, Event, Facts, decode_attempts, timeline


@dataclass(frozen=True)
class TaskRecord:
    """Everything Redis keeps about one task. Times are the server's, in ms (0: not yet).
    ``processor`` holds it now (assigned or running); ``last_processor`` ran its last attempt.
    ``result`` is the value of a done task; ``error`` the last error (type, message, traceback) of
    a failed one or of the attempt before a retry. ``priority``, ``key`` (None: none) and
    ``limits`` are how it is placed; ``requires`` the conditions on the labels of the processor
    that runs it (``(label, op, value)``, as ``kinds.check_requires`` returns them; none: any
    processor); ``expires_ms`` its deadline (0: none, or it started in time): not started by
    then, it is never started. ``unique_key`` the unique key it holds now (None: none, or freed
    as it started or finished) and ``unique_until`` when it frees it (core/unique).
    ``ready_ms``: when it became ready after it waited for ``parents`` (``t:<id>`` a task,
    ``g:<gid>`` a group) or for a delay (0: it did not); ``placed_ms``: when its latest attempt was
    placed on a processor (0: not placed since it was last queued); ``history``: its attempts that
    ended without finishing it, oldest first (the last 20); ``timeline()`` orders all of it."""

    id: str
    name: str
    state: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    max_attempts: int
    timeout_s: float | None
    retry_backoff_s: float
    processor: str
    last_processor: str
    group: str
    created_ms: int
    started_ms: int
    finished_ms: int
    result: Any = None
    error: dict[str, str] | None = None
    priority: int = DEFAULT_TASK_OPTIONS.priority
    key: str | None = None
    limits: tuple[str, ...] = ()
    expires_ms: int = 0
    requires: tuple[Condition, ...] = ()
    unique_key: str | None = None
    unique_until: str | None = None
    ready_ms: int = 0
    placed_ms: int = 0
    parents: tuple[str, ...] = ()
    history: tuple[Attempt, ...] = ()

    def timeline(self) -> list[Event]:
        """Its events in time order: created, ready (after its dependencies or a delay), each
        attempt placed, started and ended (how, with its error), retries due, finished (done,
        failed, expired, cancelled). What the record no longer holds (an attempt given back before
        it started, attempts past the last 20) is not there."""
        return timeline(self.facts())

    def facts(self) -> Facts:
        """What its timeline and its waits are made of."""
        return Facts(self.state, self.attempts, self.created_ms, self.ready_ms, self.placed_ms, self.started_ms,
                     self.finished_ms, self.processor, self.last_processor, ",".join(self.parents), self.history,
                     self.error)

    def as_json(self) -> dict[str, Any]:
        """The record as plain JSON data (``luasched show --json``), its timeline included."""
        found = {name: list(v) if isinstance(v := getattr(self, name), tuple) else v
                 for name in self.__dataclass_fields__}
        found["history"] = [asdict(a) for a in self.history]
        return found | {"timeline": [asdict(e) for e in self.timeline()]}


def record(keys: Keys, task_id: str) -> Command:
    """Read one task's whole record (HGETALL: a record is a dozen short fields)."""
    return Command("hgetall", (keys.task(task_id),))


def decode_record(reply: Any, task_id: str) -> TaskRecord | None:
    """The record, or None when there is no task ``task_id`` (never made, or expired)."""
    f = fields_of(reply)
    if not f:
        return None
    defaults = DEFAULT_TASK_OPTIONS
    args, kwargs = decode_args(f.get(TASK.args, "[]"))
    timeout_ms = int(f.get(TASK.timeout_ms, "0"))
    state = f.get(TASK.state, "")
    error = decode_error(f[TASK.error]) if TASK.error in f else None
    return TaskRecord(
        id=task_id,
        name=f.get(TASK.name, ""),
        state=state,
        queue=f.get(TASK.queue, defaults.queue),
        args=args,
        kwargs=kwargs,
        attempts=int(f.get(TASK.attempts, "0")),
        max_attempts=int(f.get(TASK.max_attempts, str(defaults.max_attempts))),
        timeout_s=timeout_ms / 1000 if timeout_ms > 0 else None,
        retry_backoff_s=int(f.get(TASK.backoff_ms, str(round(defaults.backoff_s * 1000)))) / 1000,
        processor=f.get(TASK.processor, ""),
        last_processor=f.get(TASK.last_processor, ""),
        group=f.get(TASK.group, ""),
        created_ms=int(f.get(TASK.created_ms, "0")),
        started_ms=int(f.get(TASK.started_ms, "0")),
        finished_ms=int(f.get(TASK.finished_ms, "0")),
        result=json.loads(f[TASK.result]) if state == "done" and TASK.result in f else None,
        error=error,
        priority=int(f.get(TASK.priority, str(defaults.priority))),
        key=f.get(TASK.key) or None,
        limits=tuple(n for n in f.get(TASK.limits, "").split(",") if n),
        expires_ms=int(f.get(TASK.expires_ms, "0")),
        requires=decode_requires(f.get(TASK.requires)),
        unique_key=f.get(TASK.unique) or f.get(TASK.unique_started) or None,
        unique_until="finished" if TASK.unique in f else "started" if TASK.unique_started in f else None,
        ready_ms=int(f.get(TASK.ready_ms, "0")),
        placed_ms=int(f.get(TASK.placed_ms, "0")),
        parents=tuple(n for n in f.get(TASK.parents, "").split(",") if n),
        history=decode_attempts(f.get(TASK.attempts_log)),
    )
