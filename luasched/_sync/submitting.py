# Generated from luasched/_async/submitting.py by tools/unasync.py: edit that file, then run the tool.
"""Submitting tasks: one at a time (concurrent submits share script calls), many in one round
trip, or as a group; a submit whose unique key is held answers the holder's handle (core/unique).

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from .. import tracing
from ..core import ops
from ..core.base import SchedulerBase
from ..core.replies import SubmitReply
from ..core.tasks import TaskFunction, new_task_id
from ..errors import LuaschedError, QueueFull, UnknownLimiter
from ..routing import is_cluster
from .handles import Group, TaskHandle, handle_for
from .transport import NOT_SENT, Transport


class Submitting(Transport, SchedulerBase):
    """Submits of one namespace (a part of Scheduler, which makes the coalescer and the maps)."""

    _coalescer: Any
    _refused: dict[str, LuaschedError]  # task id -> why its shared submit call refused it
    _merged: dict[str, tuple[str, str]]  # task id -> (holder's id, how): its submit collapsed
    #: (name, id of options, dispatch_on_submit, functions, flagged) -> (options, command, where
    #: its args start): the commands of plain submits (``_quick``)
    _quick_made: dict[tuple[Any, ...], tuple[Any, list[Any], int]]

    def submit(self, task: str | TaskFunction, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Put one task on its queue (or delayed); returns its handle. Nothing else happens:
        handing it to a processor is dispatch's job, unless ``dispatch_on_submit`` is set. Submits
        made while another one is in flight (other threads, other coroutines of the event loop)
        share the next script call, each caller returning once its own task is in Redis.

        Keyword arguments go to the task, except these options: ``_queue``, ``_delay`` (seconds
        or timedelta), ``_id`` (an id of your own: submitting it again creates nothing),
        ``_max_attempts``, ``_timeout``, ``_retry_backoff``, ``_expires`` (seconds or timedelta
        after submit: a task not started by then is never started and fails with TaskExpired,
        using no attempt), and how it is placed: ``_priority`` (0 to 9, lower first), ``_key``
        (its tenant or entity), ``_limits`` (a tuple of the limiter names it counts against; an
        unknown one raises UnknownLimiter, nothing written) and ``_requires`` (label -> condition,
        e.g. ``{"gpu": "a100", "vram_gb": (">=", 40)}``: only a processor whose labels meet them
        runs it; ``{}``: none, whatever the task's default). A submit that would bring its queue
        above the queue's ``max_pending`` raises QueueFull, nothing written.

        Unique tasks (core/unique): ``_unique_key`` (a str of at most 256 characters, the key as
        given, namespace-wide) or the task's ``unique`` option makes a key; while a live task holds
        it, the submit creates nothing and returns that task's handle (``created`` False).
        ``_unique_until``: "finished" (default) or "started", when the new task frees its key.
        ``_debounce`` (seconds or timedelta, needs a key): the first submit is delayed by it; a
        later one while that task has not started gives it its arguments and, if it is still
        delayed, moves its start to now + debounce.

        ``_after`` (TaskHandles, Groups or task ids) makes it wait, without their results, until
        they all end; then ``_on_failure`` ("fail", "run" or "skip": core/deps) says what happens
        if one did not end done."""
        (new,) = tracing.stamped([self.submission(task, args, kwargs)])  # in the caller's trace context
        if new.deps:  # alone: a missing parent refuses its call, and must not refuse others' submits
            return self._submit_alone(new)
        self._coalescer.submit(new)
        refused = self._refused.pop(new.id, None)
        if refused is not None:
            raise refused
        handle = handle_for(self, new.id, self._merged)  # type: ignore[arg-type]  # self is a Scheduler
        if not handle.created:
            del self._merged[new.id]
        return handle

    def _quick(self, new: ops.NewTask) -> tuple[Any, ...] | None:
        """The command of a submit call of ``new`` alone, or None where it does not go that way:
        only the plain submit (the task's own options, no delay, unique key, dependencies or trace;
        the server's clock, no durability, no cluster). Made from the call ``ops.submit`` builds, once per task name and
        options and per way of sending (``Scripts``); each submit sets its id and arguments in a
        copy: at low load, the Python that built each call anew was a fifth of a task's submit ->
        start (bench/README.md, "Latency")."""
        if new.delay_s or new.unique_key is not None or new.trace or new.deps or self.clock is not None:
            return None
        key = (new.name, id(new.options), self.dispatch_on_submit, self.scripts.functions, self.scripts.flagged)
        made = self._quick_made.get(key)
        if made is None or made[0] is not new.options:
            if (new.options is not self.registry.resolve(new.name)[1]  # options given to this submit
                    or self.durability.applies("submit") or is_cluster(self.client)):
                return None
            (call,) = ops.submit(self.ns, None, [new], dispatch=self.dispatch_on_submit)
            built = self.scripts.command(call.script, call.keys, call.args)
            made = (new.options, list(built), len(built) - len(call.args))
            self._quick_made[key] = made
        command = made[1].copy()
        command[made[2] + ops.SUBMIT_ID_AT] = new.id
        command[made[2] + ops.SUBMIT_ARGS_AT] = new.args_json
        return tuple(command)

    def _waiting_on(self, parent: TaskHandle | Group, task: str | TaskFunction, args: Sequence[Any],
                          kwargs: dict[str, Any]) -> TaskHandle:
        """``then`` of a TaskHandle or a Group: a task fed by ``parent``'s results."""
        return self._submit_alone(self.submission(task, args, dict(kwargs), fed_by=parent))

    def _submit_alone(self, new: ops.NewTask) -> TaskHandle:
        merged = (self._submit([new], "")).merged
        return handle_for(self, new.id, merged)  # type: ignore[arg-type]  # self is a Scheduler

    def _submit_shared(self, news: list[ops.NewTask]) -> None:
        """The coalescer's call for submits made at once. A call refused for a limiter that does
        not exist, or for a full queue, wrote nothing: its tasks then go one by one, so that only
        the submits refused on their own raise (the others are created, while there is room).
        The submits that collapsed into the holders of their unique keys are noted for ``submit``."""
        command = self._quick(news[0]) if len(news) == 1 else None
        if command is not None:  # a plain submit alone: the latency path
            if not self._eviction_checked:
                self.check_eviction("scheduler")
            if self.call_prebuilt("submit", command) is not NOT_SENT:
                return
        try:
            self._merged.update((self._submit(news, "")).merged)
            return
        except (UnknownLimiter, QueueFull):
            if len(news) == 1:
                raise
        for new in news:
            try:
                self._merged.update((self._submit([new], "")).merged)
            except (UnknownLimiter, QueueFull) as exc:
                self._refused[new.id] = exc

    def submit_many(self, task: str | TaskFunction, items: Iterable[Any], *,
                          ids: Sequence[str] | None = None, queue: str | None = None,
                          delay: float | timedelta | None = None, max_attempts: int | None = None,
                          timeout: float | timedelta | None = None,
                          retry_backoff: float | timedelta | None = None, priority: int | None = None,
                          key: str | None = None, limits: Sequence[str] | None = None,
                          expires: float | timedelta | None = None,
                          requires: Mapping[str, object] | None = None, unique_key: str | None = None,
                          unique_until: str | None = None,
                          debounce: float | timedelta | None = None) -> list[TaskHandle]:
        """Submit one task per item (a tuple of arguments, or an Args) in one round trip; the
        options, as ``submit``'s without the underscore, apply to every item. Items whose unique
        key is held (by a live task, or by an earlier item) get the holder's handle."""
        news = self.batch(task, items, ids, unique_key, debounce, queue=queue, delay=delay,
                          max_attempts=max_attempts, timeout=timeout, retry_backoff=retry_backoff, priority=priority,
                          key=key, limits=limits, expires=expires, requires=requires, unique_until=unique_until)
        merged = (self._submit(news, "")).merged
        return [handle_for(self, n.id, merged) for n in news]  # type: ignore[arg-type]  # self is a Scheduler

    def map(self, task: str | TaskFunction, items: Iterable[Any], *, queue: str | None = None,
                  max_attempts: int | None = None, timeout: float | timedelta | None = None,
                  retry_backoff: float | timedelta | None = None, priority: int | None = None,
                  key: str | None = None, limits: Sequence[str] | None = None,
                  expires: float | timedelta | None = None, requires: Mapping[str, object] | None = None,
                  unique_key: str | None = None, unique_until: str | None = None,
                  debounce: float | timedelta | None = None) -> Group:
        """Submit one task per item as a group whose results can be gathered (``Group.results``).
        An item whose unique key is held stands in the group as the holder (``Group.ids``), which
        the group's counters (``progress``) do not count: they count the tasks it created."""
        news = self.batch(task, items, None, unique_key, debounce, queue=queue, max_attempts=max_attempts,
                          timeout=timeout, retry_backoff=retry_backoff, priority=priority, key=key, limits=limits,
                          expires=expires, requires=requires, unique_until=unique_until)
        group_id = new_task_id()
        merged = (self._submit(news, group_id)).merged
        if not merged:
            return Group(self, group_id, [n.id for n in news])  # type: ignore[arg-type]
        return Group(self, group_id, [merged[n.id][0] if n.id in merged else n.id for n in news],  # type: ignore[arg-type]
                     [n.id for n in news if n.id not in merged])

    def _submit(self, news: list[ops.NewTask], group: str) -> SubmitReply:
        if not news:
            return SubmitReply(0, [], [])
        if not self._eviction_checked:
            self.check_eviction("scheduler")
        calls = ops.submit(self.ns, self.now_ms(), tracing.stamped(news), dispatch=self.dispatch_on_submit,
                           group=group)
        return ops.decode_submit(self.call_many(calls))
