# Generated from luasched/_async/schedules.py by tools/unasync.py: edit that file, then run the tool.
"""Schedules: tasks made by a cron or an interval, each tick exactly once (core/schedules.py,
lua/schedule.lua, lua/fire.lua). Declaring, changing and reading them, and the scheduler loop's
duty of firing them.

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ..core import flows, ops
from ..core import schedules as cs
from ..core.fields import SCHEDULE
from ..core.options import check_limit
from ..core.schedules import Fired, ScheduleInfo, ScheduleSpec
from ..core.tasks import TaskFunction, encode_args, new_request_id, new_task_id
from ..errors import ScheduleNotFound, ScriptError, UnknownTask
from ..routing import translated
from .handles import TaskHandle
from .policies import Policies

log = logging.getLogger("luasched.scheduler")

#: The task options a schedule takes (as ``submit_many``'s, without delay).
TASK_OPTIONS = frozenset({"queue", "max_attempts", "timeout", "retry_backoff", "priority", "key", "limits",
                          "expires", "requires"})
#: A scheduler loop's turn makes at most this many fire calls (each ``limit`` ticks at most).
FIRE_ROUNDS = 8


class Schedules(Policies):
    """The schedules of one namespace (a part of Scheduler)."""

    _index_read_at = -1e9  # when the scheduler loop last read the schedule index (monotonic s)
    _tick_ms: int | None = None  # the next tick it learnt of then (server ms; None: no schedule)

    def schedule_spec(self, name: str, task: str | TaskFunction, args: Sequence[Any] = (),
                      kwargs: dict[str, Any] | None = None, *, cron: str | None = None,
                      every: float | timedelta | None = None, tz: str = "UTC", overlap: str = "skip",
                      catchup: float | timedelta = 0.0, **task_options: Any) -> ScheduleSpec:
        """``schedule``'s arguments checked into a ScheduleSpec (nothing is written)."""
        unknown = set(task_options) - TASK_OPTIONS
        if unknown:
            raise TypeError(f"schedule: unknown option(s) {', '.join(sorted(unknown))}; task options are "
                            f"{', '.join(sorted(TASK_OPTIONS))}")
        task_name, options, _delay, arity = self.resolve(task, **task_options)
        if arity is None:
            raise UnknownTask(f"schedule {name}: task {task_name!r} is not registered in this process: "
                              f"decorate it with @sched.task first")
        arity.check(task_name, tuple(args), dict(kwargs or {}))
        encoded = cs.args_json(task_name, args, kwargs, encode_args)
        return cs.make_spec(name, task_name, encoded, options, cron, every, tz, overlap, catchup)

    def schedule(self, name: str, task: str | TaskFunction, args: Sequence[Any] = (),
                       kwargs: dict[str, Any] | None = None, *, cron: str | None = None,
                       every: float | timedelta | None = None, tz: str = "UTC", overlap: str = "skip",
                       catchup: float | timedelta = 0.0, **task_options: Any) -> ScheduleInfo:
        """Create schedule ``name``, or change it: each tick makes one task ``task(*args,
        **kwargs)`` with id ``<name>@<fire ms>``, exactly once however many scheduler loops run.

        ``cron``: 5 fields (minute hour day month weekday) or 6 (seconds first), on the wall clock
        of ``tz``; or ``every``: seconds (or a timedelta, at least 1 s), ticks at the multiples of
        it since the epoch. ``overlap``: what a tick does while the task of an earlier tick has not
        finished: "skip" (nothing, counted skipped), "allow" (its task anyway) or "buffer_one"
        (it waits, and its task is made when that one finishes; a tick while one waits is
        skipped). ``catchup``: after a time with no scheduler loop, ticks due less than that many
        seconds ago still fire, oldest first; older ones are counted missed (the newest due tick
        fires if due less than 10 s ago, whatever ``catchup``). ``task_options``: the task's
        options as ``submit_many`` takes them (queue, priority, max_attempts, timeout, key,
        limits, requires, expires, retry_backoff). A change of cadence starts again from now; a
        change of anything else keeps the pending tick, the pause and the counters. Bad input
        raises, nothing written. Wakes the scheduler loops."""
        return self.upsert_schedule(self.schedule_spec(name, task, args, kwargs, cron=cron, every=every, tz=tz,
                                                             overlap=overlap, catchup=catchup, **task_options))

    def upsert_schedule(self, spec: ScheduleSpec) -> ScheduleInfo:
        """Write a checked ScheduleSpec (``schedule``'s second half)."""
        first, times = spec.first(self._server_ms())
        self.call(cs.upsert(self.ns, self.now_ms(), new_request_id(), spec, first, times))
        return self.schedule_info(spec.name)

    def periodic(self, *, cron: str | None = None, every: float | timedelta | None = None, name: str | None = None,
                 **schedule_options: Any) -> Callable[[TaskFunction], TaskFunction]:
        """``@sched.periodic(cron="0 9 * * *")`` or ``(every=60)`` on a function: registers it as a
        task (``name``, default the function's name) and declares the schedule of that name, made
        by every ``run`` (and so every processor doing the scheduler's duties) as it starts.
        ``schedule_options``: ``schedule``'s (args, kwargs, tz, overlap, catchup, task options)."""

        def declare(fn: TaskFunction) -> TaskFunction:
            task_name = name if name is not None else getattr(fn, "__name__", "")
            self.task(name=task_name)(fn)
            self.declared[task_name] = self.schedule_spec(task_name, fn, cron=cron, every=every, **schedule_options)
            return fn

        return declare

    def declare_schedules(self) -> None:
        """Create or update the schedules declared with ``@periodic`` (``run`` does, as it starts)."""
        for spec in self.declared.values():
            self.upsert_schedule(spec)

    def schedules(self, limit: int = 1000) -> list[ScheduleInfo]:
        """The schedules (at most ``limit``), the soonest pending tick first, the paused last."""
        return cs.decode_listing(self.call(cs.listing(self.ns, check_limit(limit))))

    def schedule_info(self, name: str) -> ScheduleInfo:
        """One schedule; raises ScheduleNotFound when there is none."""
        found = cs.decode_listing(self.call(cs.listing(self.ns, 1, name)))
        if not found:
            raise ScheduleNotFound(name)
        return found[0]

    def pause_schedule(self, name: str) -> bool:
        """Stop firing schedule ``name`` until resumed (its ticks meanwhile neither fire nor count);
        True when it was not paused already."""
        return self._control("pause", name)

    def resume_schedule(self, name: str) -> bool:
        """Fire schedule ``name`` again, from its next tick after now (the ticks that fell due while
        it was paused, and a buffered one, are dropped); True when it was paused. Wakes the loops."""
        for _ in range(5):  # a change of cadence in between: compute again
            with translated("resume_schedule"):
                gen, cron, every, tz = self.client.hmget(self.keys.schedule(name), SCHEDULE.gen, SCHEDULE.cron,
                                                                SCHEDULE.every_ms, SCHEDULE.tz)
            if gen is None:
                raise ScheduleNotFound(name)
            first, times = cs.first_times(_text(cron) or None, int(_text(every) or 0) or None, _text(tz),
                                                 self._server_ms())
            call = cs.resume(self.ns, self.now_ms(), new_request_id(), name, _text(gen), first, times)
            status = cs.decode_status(self.call(call))
            if status != "stale":
                return self._status(status, name)
        raise ScriptError(f"resume_schedule {name}: its cadence kept changing meanwhile")

    def remove_schedule(self, name: str) -> None:
        """Remove schedule ``name`` (the tasks it made stay); raises ScheduleNotFound when there is none."""
        self._control("remove", name)

    def trigger(self, name: str) -> TaskHandle:
        """One task of schedule ``name`` now, outside its cadence, whatever its overlap and pause;
        it becomes the schedule's last task (a later tick's overlap sees it) and counts in runs."""
        task_id = f"{name}@trigger-{new_task_id()}"
        reply = ops.text(self.call(cs.trigger(self.ns, self.now_ms(), new_request_id(), name,
                                                                  task_id)))
        if reply[0] == "unknown":
            raise ScheduleNotFound(name)
        if reply[0] == "refused":
            raise ScriptError(f"trigger {name}: {reply[1]}")
        return TaskHandle(self, task_id)  # type: ignore[arg-type]  # a part of Scheduler

    def fire_schedules(self, limit: int = 100) -> Fired:
        """Fire the due ticks of every schedule (what the scheduler loop does when one is due):
        up to FIRE_ROUNDS calls of at most ``limit`` ticks, refilling the cron times that ran
        out in between. Returns the last call's reply (its ``next_due_ms``: when to call again)."""
        fired = None
        for _ in range(FIRE_ROUNDS):
            fired = cs.decode_fire(self.call(cs.fire(self.ns, self.now_ms(), limit,
                                                                         new_request_id())))
            for r in fired.refills:
                missed, first, times = cs.cron_refill(r.cron, r.tz, r.cursor_ms, fired.now_ms, r.catchup_ms)
                self.call(cs.refill(self.ns, self.now_ms(), new_request_id(), r.name, r.gen, r.cursor_ms,
                                                 missed, first, times))
            if not fired.more and not fired.refills:
                break
        assert fired is not None
        return fired

    def _schedules_due(self, now_ms: int, limit: int, busy: bool = False) -> float | None:
        """The scheduler loop's duty: fire the schedules if one is due at ``now_ms`` (the server's
        time of its last dispatch); the seconds until the next tick is due (None: no schedule).
        With no schedule due, one ZRANGE of the index; on the turns of a loop that is draining a
        backlog (``busy``: it dispatches again at once), at most one a second."""
        if busy and time.monotonic() - self._index_read_at < 1.0 and (self._tick_ms is None or self._tick_ms > now_ms):
            return None
        self._index_read_at = time.monotonic()
        with translated("schedules"):
            head = self.client.zrangebyscore(self.keys.schedules, "-inf", "(+inf", start=0, num=1,
                                                   withscores=True)
        self._tick_ms = int(head[0][1]) if head else None
        if self._tick_ms is None or self._tick_ms > now_ms:
            return None if self._tick_ms is None else (self._tick_ms - now_ms) / 1000
        fired = self.fire_schedules(limit)
        if fired.created:
            log.debug("schedules fired %s", ", ".join(fired.created))
        self._tick_ms = fired.next_due_ms
        if fired.next_due_ms is None:
            return None
        left = (fired.next_due_ms - fired.now_ms) / 1000
        return left if left > 0 or fired.more else flows.BLOCK_RESOLUTION_S  # a refill refused: not a spin

    def _server_ms(self) -> int:
        """Now, ms: the injected clock's, else the Redis server's (the time the scripts read)."""
        now = self.now_ms()
        if now is not None:
            return now
        with translated("time"):
            s, us = self.client.time()
        return int(s) * 1000 + int(us) // 1000

    def _control(self, op: str, name: str) -> bool:
        status = cs.decode_status(self.call(cs.control(self.ns, self.now_ms(), new_request_id(),
                                                                           op, name)))
        return self._status(status, name)

    def _status(self, status: str, name: str) -> bool:
        if status == "unknown":
            raise ScheduleNotFound(name)
        return status == "ok"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))
