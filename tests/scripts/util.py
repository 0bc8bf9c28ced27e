"""Small helpers for the script tests: audit assertions and raw reads of the keyspace."""

from __future__ import annotations

from typing import Any

import luasched
from luasched.core import ops
from luasched.core.fields import TASK
from luasched.core.tasks import new_request_id


def audit_ok(sched: luasched.Scheduler) -> luasched.Audit:
    """Assert the conservation invariant holds now; the problems are the assertion message."""
    found = sched.audit()
    assert found.ok, "audit found problems:\n  " + "\n  ".join(found.problems)
    return found


def queue_ids(sched: luasched.Scheduler, queue: str = "default") -> list[str]:
    return list(ops.text(sched.client.lrange(sched.keys.queue(queue), 0, -1)))


def pending_ids(sched: luasched.Scheduler, pid: str) -> list[str]:
    return list(ops.text(sched.client.lrange(sched.keys.inbox(pid), 0, -1)))


def running_ids(sched: luasched.Scheduler, pid: str) -> list[str]:
    return sorted(ops.text(list(sched.client.smembers(sched.keys.inbox_running(pid)))))


#: Fields a task record leaves out while they hold these values (lua/lib/util.lua: less memory).
RECORD_DEFAULTS = {TASK.queue: "default", TASK.attempts: "0", TASK.max_attempts: "3", TASK.backoff_ms: "1000"}


def raw_record(sched: luasched.Scheduler, task_id: str) -> dict[str, str]:
    raw = sched.client.hgetall(sched.keys.task(task_id))
    return {ops.text(k): ops.text(v) for k, v in raw.items()}


def record(sched: luasched.Scheduler, task_id: str) -> dict[str, str]:
    """The task record as the scripts read it: a missing field holds its default."""
    raw = raw_record(sched, task_id)
    return {**RECORD_DEFAULTS, **raw} if raw else raw


def delayed_due_ms(sched: luasched.Scheduler, task_id: str) -> int | None:
    score = sched.client.zscore(sched.keys.delayed, task_id)
    return None if score is None else int(score)


def start(sched: luasched.Scheduler, pid: str, slot: str = "s0") -> ops.StartReply:
    """What a processor slot does when it has nothing to run: one start script call."""
    return ops.decode_start(sched.call(ops.start(sched.ns, sched.now_ms(), pid, slot, new_request_id())))


def ack(sched: luasched.Scheduler, pid: str, task: ops.Started, outcome: str = "done",
        payload: str = "null", next_mode: str = ops.NEXT_NONE, slot: str = "s0") -> ops.AckReply:
    call = ops.ack(sched.ns, sched.now_ms(), pid, slot, new_request_id(), task, outcome, payload,
                   next_mode)
    return ops.decode_ack(sched.call(call))


def error_json(message: str = "boom", error_type: str = "ValueError") -> str:
    import json

    return json.dumps({"type": error_type, "message": message, "traceback": "Traceback: here"})


def snapshot(sched: luasched.Scheduler, *task_ids: str) -> dict[str, Any]:
    """What must not change when a call is refused: counts, queue depths, task records."""
    return {
        "counts": {k: v for k, v in sched.counts().items() if k != "last_dispatch_ms"},
        "queues": sched.queue_lengths(),
        "records": {t: record(sched, t) for t in task_ids},
        "delayed": sorted(ops.text(sched.client.zrange(sched.keys.delayed, 0, -1))),
        "running": sorted(ops.text(sched.client.zrange(sched.keys.running, 0, -1))),
    }
