"""The asyncio front end: Scheduler, TaskHandle, Group and Processor with the methods of
luasched's, as coroutines where they talk to Redis, on ``redis.asyncio`` or the embedded server.

Both front ends are one source (``luasched/_async``, from which ``luasched/_sync`` is
generated) and interoperate on one namespace: submit from one, process on the other.
"""

from __future__ import annotations

from ._async.handles import Group, TaskHandle
from ._async.processor import Processor
from ._async.scheduler import Scheduler

__all__ = ["Group", "Processor", "Scheduler", "TaskHandle"]

#: The methods that are coroutines here and plain methods on the threaded front end.
ASYNC_METHODS: dict[str, tuple[str, ...]] = {
    "Scheduler": ("close", "call", "call_many", "call_prebuilt", "call_after_wake", "execute", "drive", "submit",
                  "submit_many", "map", "group",
                  "dispatch", "dispatch_detail", "reap", "wake", "run", "outcome", "outcomes",
                  "task_record", "explain", "counts", "queue_lengths", "counts_and_queues", "audit", "processors",
                  "failed", "retry_failed", "purge", "purge_finished",
                  "wait_for_redis", "eviction_policy", "check_eviction",
                  "check_server", "patiently",
                  "pause", "resume", "paused", "limit", "remove_limit", "set_weight", "set_queue", "limits",
                  "task_names",
                  "schedule", "upsert_schedule", "declare_schedules", "schedules", "schedule_info", "pause_schedule",
                  "resume_schedule", "remove_schedule", "trigger", "fire_schedules"),
    "TaskHandle": ("state", "explain", "outcome", "result", "cancel", "then"),
    "Group": ("as_completed", "results", "progress", "then"),
    "Processor": ("register", "heartbeat", "deregister", "set_labels", "process_available", "start", "stop"),
}
