"""Sync front end: submit, dispatch, reap, results, groups, counts, audit."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

import redis.exceptions

from . import ops
from .connection import (
    MOVED,
    Durability,
    Holder,
    Reads,
    block_slice_s,
    close_client,
    direct,
    direct_pipeline,
    is_cluster,
    is_embedded,
    owns,
    read_targets,
    refresh_slots,
    slot_client,
    sync_client,
)
from .errors import (
    ConnectionLost,
    GroupNotFound,
    LuaschedError,
    ResultTimeout,
    ScriptError,
    TaskNotFound,
    translated,
)
from .keys import Keys
from .ops import Audit, Outcome
from .scripts import READ_ONLY, Scripts
from .tasks import (
    Registry,
    TaskFunction,
    TaskOptions,
    check_queue,
    check_task_id,
    encode_args,
    new_request_id,
    new_task_id,
    seconds,
)

if TYPE_CHECKING:
    from .processor import Processor

Clock = Callable[[], float]
log = logging.getLogger("luasched.scheduler")

#: Backoff of the scheduler loop while Redis is unreachable.
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.05, 5.0


class _Waiter:
    """A one-task submit waiting for a call to carry it (see _Coalescer)."""

    __slots__ = ("batch", "error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.batch: list[tuple[ops.NewTask, _Waiter]] | None = None  # set: this thread carries it


class _Coalescer:
    """One-task submits from the threads of one process share round trips (as asyncio's do): a
    submit made while another thread's submit call is in flight waits, and all that waited go
    together in the next call (up to 1,000 tasks per script call), carried by the first of them as
    soon as the call in flight ends. A lone submit goes at once, in its own thread. Every caller
    returns only once its own task is in Redis, or raises the error of the call that carried it;
    a caller interrupted while it waits is left out of the call (or, chosen to carry one, carries
    it first). A forked child starts with nothing waiting."""

    def __init__(self, send: Callable[[list[ops.NewTask]], Any]) -> None:
        self.send = send
        self.lock = threading.Lock()
        self.busy = False
        self.waiting: list[tuple[ops.NewTask, _Waiter]] = []
        self.pid = os.getpid()

    def submit(self, new: ops.NewTask) -> None:
        with self.lock:
            if self.pid != os.getpid():  # the parent's threads and their calls are not in this process
                self.pid, self.busy, self.waiting = os.getpid(), False, []
            if self.busy:
                waiter = _Waiter()
                self.waiting.append((new, waiter))
            else:
                self.busy = True
                waiter = None
        if waiter is None:
            self._carry([(new, None)])
            return
        try:
            waiter.event.wait()
        except BaseException:
            with self.lock:
                if any(w is waiter for _, w in self.waiting):  # not taken: it is not sent
                    self.waiting = [(n, w) for n, w in self.waiting if w is not waiter]
                    raise
            if waiter.batch is not None:  # chosen to carry a batch: the others wait on it
                self._carry(waiter.batch)
            raise
        if waiter.batch is not None:
            self._carry(waiter.batch)
        elif waiter.error is not None:
            raise waiter.error

    def _carry(self, batch: Sequence[tuple[ops.NewTask, _Waiter | None]]) -> None:
        """Send the batch's tasks (the carrier's own first), tell the others how it went, hand on."""
        others = [w for _, w in batch[1:] if w is not None]
        try:
            self.send([new for new, _ in batch])
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else LuaschedError(
                f"the submit call that carried this task was interrupted ({type(exc).__name__}): "
                "it may or may not have run; submitting the same _id again is safe")
            for w in others:
                w.error = error
                w.event.set()
            raise
        else:
            for w in others:
                w.event.set()
        finally:
            self._next()

    def _next(self) -> None:
        with self.lock:
            batch, self.waiting = ops.take_batch(self.waiting, lambda w: False)
            if not batch:
                self.busy = False
                return
            carrier = batch[0][1]
            carrier.batch = batch
        carrier.event.set()


_SUBMIT_OPTIONS = frozenset({"_queue", "_delay", "_id", "_max_attempts", "_timeout", "_retry_backoff"})


class Args:
    """Arguments of one task in ``submit_many``/``map`` when keyword arguments are needed."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Args(*{self.args!r}, **{self.kwargs!r})"


class Base:
    """What the sync and asyncio schedulers share: settings, registry, and pure preparation."""

    scripts: Scripts  # set by the front end, on its client

    def __init__(self, namespace: str, clock: Clock | None, keep: float | timedelta,
                 dispatch_on_submit: bool, *, durability: int = 0,
                 durability_timeout: float | timedelta = 1.0) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, not {type(clock).__name__}")
        if not isinstance(dispatch_on_submit, bool):
            raise TypeError("dispatch_on_submit must be a bool")
        keep_s = seconds(keep, "keep", minimum=1.0)
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.ns = ops.Namespace(self.keys, int(keep_s or 86400))
        self.clock = clock
        self.registry = Registry()
        self.dispatch_on_submit = dispatch_on_submit
        self.durability = Durability.of(durability, seconds(durability_timeout, "durability_timeout"))
        self._ridden: set[str] = set()  # scripts already sent ahead of a BLPOP (see _ride_alone)

    def _ride_alone(self, before: ops.Call | None) -> bool:
        """Whether ``before`` must be sent on its own rather than ahead of a BLPOP: when it must
        wait for replicas (its WAIT would queue behind the BLPOP), and the first time its script
        rides (so that the server's NOSCRIPT, if not loaded there yet, is answered now, not after
        the wait)."""
        if before is None:
            return False
        if self.durability.applies(before.script) or before.script not in self._ridden:
            self._ridden.add(before.script)
            return True
        return False

    def _wake_pipeline(self, key: str, timeout_s: float, call: ops.Call,
                       before: ops.Call | None) -> tuple[list[ops.Call], list[tuple[Any, ...]]]:
        """The commands of call_after_wake: [before,] BLPOP, call[, WAIT]."""
        calls = [before, call] if before is not None else [call]
        evals = [("EVALSHA", self.scripts[c.script].sha, len(c.keys), *c.keys, *c.args) for c in calls]
        commands = [*evals[:-1], ("BLPOP", key, timeout_s), evals[-1]]
        if any(self.durability.applies(c.script) for c in calls):
            commands.append(self.durability.command())
        return calls, commands

    def _wake_replies(self, calls: list[ops.Call], replies: list[Any]) -> list[Any]:
        """The scripts' replies of call_after_wake's pipeline (WAIT checked, the BLPOP's dropped)."""
        if len(replies) > len(calls) + 1:  # the pipeline ended with WAIT
            self.durability.check(replies.pop(), calls[-1].script)
        del replies[-2]
        return replies

    @staticmethod
    def _wake_result(calls: list[ops.Call], replies: list[Any]) -> Any:
        for c, r in zip(calls, replies, strict=True):
            if isinstance(r, Exception):
                with translated(c.script):
                    raise r
        return tuple(replies) if len(calls) == 2 else replies[0]

    def now_ms(self) -> int | None:
        """The injected clock's time in ms, or None: the scripts then read the server's TIME."""
        return None if self.clock is None else int(self.clock() * 1000)

    @overload
    def task(self, fn: TaskFunction, /) -> TaskFunction: ...

    @overload
    def task(self, fn: None = None, /, *, name: str | None = None, max_attempts: int = 3,
             timeout: float | timedelta | None = None, queue: str = "default",
             retry_backoff: float | timedelta = 1.0) -> Callable[[TaskFunction], TaskFunction]: ...

    def task(self, fn: TaskFunction | None = None, /, *, name: str | None = None,
             max_attempts: int = 3, timeout: float | timedelta | None = None,
             queue: str = "default", retry_backoff: float | timedelta = 1.0) -> Any:
        """Register a function as a task: ``@sched.task`` or ``@sched.task(name=..., ...)``."""
        options = TaskOptions(queue, max_attempts, seconds(timeout, "timeout", allow_none=True),
                              seconds(retry_backoff, "retry_backoff") or 0.0)

        def register(f: TaskFunction) -> TaskFunction:
            self.registry.add(f, name if name is not None else getattr(f, "__name__", ""), options)
            return f

        return register(fn) if fn is not None else register

    def resolve(self, task: str | TaskFunction, *, queue: str | None = None,
                delay: float | timedelta | None = None, max_attempts: int | None = None,
                timeout: float | timedelta | None = None,
                retry_backoff: float | timedelta | None = None) -> tuple[str, TaskOptions, float]:
        """A registered task's name, its options with the given ones applied, and the delay in
        seconds, all checked (once for a whole batch)."""
        name, options = self.registry.resolve(task)
        if queue is not None or max_attempts is not None or timeout is not None or retry_backoff is not None:
            options = options.replace(
                queue=check_queue(queue) if queue is not None else None,
                max_attempts=max_attempts,
                timeout_s=seconds(timeout, "timeout", allow_none=True),
                backoff_s=seconds(retry_backoff, "retry_backoff", allow_none=True),
            )
        return name, options, seconds(delay, "delay", allow_none=True) or 0.0

    def new_task(self, task: str | TaskFunction, args: Sequence[Any], kwargs: dict[str, Any],
                 *, task_id: str | None = None, **options: Any) -> ops.NewTask:
        """Check and encode one task (nothing is written); options as ``resolve`` takes them."""
        return _encoded(*self.resolve(task, **options), args, kwargs, task_id)

    def submission(self, task: str | TaskFunction, args: Sequence[Any],
                   kwargs: dict[str, Any]) -> ops.NewTask:
        """``submit(task, *args, **kwargs)``: kwargs starting with ``_`` are options, not arguments."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("_")}
        unknown = set(options) - _SUBMIT_OPTIONS
        if unknown:
            raise TypeError(f"submit: unknown option(s) {', '.join(sorted(unknown))}; options are "
                            f"{', '.join(sorted(_SUBMIT_OPTIONS))}")
        return self.new_task(task, args, kwargs, queue=options.get("_queue"),
                             delay=options.get("_delay"), task_id=options.get("_id"),
                             max_attempts=options.get("_max_attempts"),
                             timeout=options.get("_timeout"),
                             retry_backoff=options.get("_retry_backoff"))

    def batch(self, task: str | TaskFunction, items: Iterable[Any], ids: Sequence[str] | None,
              **options: Any) -> list[ops.NewTask]:
        """Tasks for ``submit_many``/``map``: each item a tuple/list of arguments or an Args."""
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("submit_many: items must be an iterable of argument tuples")
        items = list(items)
        if ids is not None:
            ids = list(ids)
            if len(ids) != len(items):
                raise ValueError(f"submit_many: {len(ids)} ids for {len(items)} items")
            if len(set(ids)) != len(ids):
                raise ValueError("submit_many: ids repeat")
        name, opts, delay_s = self.resolve(task, **options)
        out = []
        args: Sequence[Any]
        for i, item in enumerate(items):
            if isinstance(item, Args):
                args, kwargs = item.args, item.kwargs
            elif isinstance(item, (tuple, list)):
                args, kwargs = item, {}
            else:
                raise TypeError(f"submit_many: item {i} must be a tuple of arguments or an Args, "
                                f"not {type(item).__name__}")
            out.append(_encoded(name, opts, delay_s, args, kwargs, ids[i] if ids else None))
        return out


def _encoded(name: str, options: TaskOptions, delay_s: float, args: Sequence[Any], kwargs: dict[str, Any],
             task_id: str | None) -> ops.NewTask:
    """One task of a resolved name and options: its id checked (or a new one), its arguments JSON."""
    return ops.NewTask(check_task_id(task_id, "_id (task id)") if task_id is not None else new_task_id(),
                       name, encode_args(name, args, kwargs), options, delay_s)


class Scheduler(Base):
    """Submits tasks, hands them to processors, and reads results, on one Redis namespace.

    ``redis``: None or "memory://" for the embedded in-process server (shared by every Scheduler
    of the process made that way); a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL; a
    ``redis+sentinel://host:port[,host:port]/service[/db]`` or ``redis+cluster://host:port[,...]``
    URL; or a ready ``redis.Redis``, ``redis.RedisCluster`` or ``redis.Sentinel`` (then give
    ``service_name``). Clients may be made with or without ``decode_responses``.
    ``clock``: None to use the Redis server's TIME inside scripts, or a callable returning
    seconds whose value is passed to the scripts instead (tests drive time with it).
    ``keep``: how long finished task records and results are kept (seconds or timedelta).
    ``dispatch_on_submit``: also hand new tasks to idle processors in the submit call itself.
    ``read_redis``: replicas for the read-only queries (counts, status, processors, failed tasks,
    outcomes, audit): a URL, client or Sentinel (its replicas), or a list of them, used in turn.
    Every script that writes and every wait for a result stays on ``redis``.
    ``durability``: after each script that writes, wait until this many replicas have its writes
    (WAIT, in the same round trip), at most ``durability_timeout``; else raise NotReplicated.
    """

    def __init__(self, redis: object = None, namespace: str = "default", clock: Clock | None = None,
                 *, keep: float | timedelta = 86400.0, dispatch_on_submit: bool = False,
                 read_redis: object = None, service_name: str | None = None, durability: int = 0,
                 durability_timeout: float | timedelta = 1.0) -> None:
        super().__init__(namespace, clock, keep, dispatch_on_submit, durability=durability,
                         durability_timeout=durability_timeout)
        self.client = sync_client(redis, service_name=service_name)
        self._holder = Holder(self.client)
        self._owned = [(self.client, redis)] if owns(redis) else []
        replicas = []
        try:
            if self.durability.replicas and is_embedded(self.client):
                raise ValueError("durability needs a real Redis with replicas: the embedded server has none")
            for target in read_targets(read_redis):
                replicas.append(sync_client(target, replica=True, service_name=service_name))
                if owns(target):
                    self._owned.append((replicas[-1], target))
        except BaseException:
            self.close()
            raise
        self.reads = Reads(self.client, replicas)
        self.scripts = Scripts(self.client)
        self.block_s = block_slice_s(self.client)
        self._coalescer = _Coalescer(lambda news: self._submit(news, ""))

    def __repr__(self) -> str:
        return f"<luasched.Scheduler namespace={self.namespace!r}>"

    def close(self) -> None:
        """Close the clients this Scheduler made (a client you passed in stays open) and the
        connections its threads hold."""
        self._holder.close()
        for client, target in self._owned:
            close_client(client, target)
        self._owned = []

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------

    def call(self, call: ops.Call) -> Any:
        """Run one script: on the primary, or on a replica for a read-only one (``read_redis``).
        With ``durability``, a script that writes is followed by WAIT in the same round trip."""
        if self.durability.applies(call.script):
            return self.call_many([call])[0]
        client = self.reads.for_script(call.script)
        script = self.scripts[call.script]
        with translated(call.script):
            # EVALSHA on a pooled connection (redis-py's Script and execute_command add layers per
            # call); NOSCRIPT (a new or restarted server, a replica): load it there, send it again.
            held = self._holder.connection() if client is self.client else None
            try:
                return direct(client, "EVALSHA", script.sha, len(call.keys), *call.keys, *call.args, held=held)
            except redis.exceptions.NoScriptError:
                client.script_load(script.script)
                return direct(client, "EVALSHA", script.sha, len(call.keys), *call.keys, *call.args, held=held)

    def _holding(self) -> contextlib.AbstractContextManager[None]:
        """Within it, this thread's script calls on the primary use one connection it holds
        from the first call on (a processor slot holds one for life; any thread that calls
        often gets one of its own anyway: see ``Holder``)."""
        return self._holder.hold()

    def call_many(self, calls: Sequence[ops.Call]) -> list[Any]:
        """Several script calls in one round trip (a pipeline). Every script here is replay-safe, so
        one refused with NOSCRIPT is simply sent again after loading. With ``durability``, WAIT
        ends the pipeline (and each resend), on the same connection as the writes."""
        if not calls:
            return []
        wait = any(self.durability.applies(c.script) for c in calls)
        if len(calls) == 1 and not wait:
            return [self.call(calls[0])]
        operation = calls[0].script
        with translated(operation):
            replies, client = self._pipeline_routed(calls, wait, operation)
            refused = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
            if refused:
                for name in {calls[i].script for i in refused}:
                    client.script_load(self.scripts[name].script)
                again = self._pipeline(client, [calls[i] for i in refused], wait, operation)
                for i, reply in zip(refused, again, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

    def _pipeline_routed(self, calls: Sequence[ops.Call], wait: bool, operation: str) -> tuple[list[Any], Any]:
        """The pipeline sent where it belongs (see ``slot_client``); on a cluster, sent once more
        through a fresh slot map when the slot moved or the node was lost (replay-safe)."""
        if not is_cluster(self.client):
            read_only = not wait and all(c.script in READ_ONLY for c in calls)
            client = self.reads.reader() if read_only else self.client
            return self._pipeline(client, calls, wait, operation), client
        for attempt in (1, 2):
            client = slot_client(self.client, calls[0].keys[0])
            try:
                replies = self._pipeline(client, calls, wait, operation)
            except redis.exceptions.ConnectionError:
                refresh_slots(self.client)
                if attempt == 2:
                    raise
                continue
            if attempt == 2 or not any(isinstance(r, MOVED) for r in replies):
                break
            refresh_slots(self.client)
        return replies, client

    def _pipeline(self, client: Any, calls: Sequence[ops.Call], wait: bool, operation: str) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for c in calls:
            pipe.evalsha(self.scripts[c.script].sha, len(c.keys), *c.keys, *c.args)
        if wait:
            pipe.execute_command(*self.durability.command())
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if wait:
            self.durability.check(replies.pop(), operation)
        return replies

    def call_after_wake(self, key: str, timeout_s: float, call: ops.Call, before: ops.Call | None = None) -> Any:
        """BLPOP ``key`` (at most ``timeout_s``), then ``call``, in ONE round trip: pipelined, so the
        server runs the script the moment the BLPOP returns, with no client round trip between.
        Returns the script's reply; with ``before`` (a script sent ahead of the BLPOP, in the same
        round trip) the pair of replies ``(before's, call's)``."""
        if self._ride_alone(before):
            assert before is not None
            return self.call(before), self.call_after_wake(key, timeout_s, call)
        calls, commands = self._wake_pipeline(key, timeout_s, call, before)
        client = slot_client(self.client, call.keys[0]) if is_cluster(self.client) else self.client
        with translated(call.script):
            held = self._holder.connection() if client is self.client else None
            replies = direct_pipeline(held, commands) if held is not None else None
            if replies is None:
                pipe = client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                replies = pipe.execute(raise_on_error=False)
            replies = self._wake_replies(calls, replies)
        return self._wake_result(calls, [self.call(c) if isinstance(r, redis.exceptions.NoScriptError) else r
                                         for c, r in zip(calls, replies, strict=True)])  # refused: never ran

    def execute(self, request: ops.Request) -> Any:
        """Send a script call or a plain command (to the primary) and return its reply."""
        return self._send(request, self.client)

    def _send(self, request: ops.Request, client: Any) -> Any:
        if isinstance(request, ops.Call):
            return self.call(request)
        with translated(request.name):
            if request.name == "pipeline":
                pipe = client.pipeline(transaction=False)
                for name, args in request.args:
                    getattr(pipe, name)(*args)
                return pipe.execute()
            return getattr(client, request.name)(*request.args)

    def drive(self, flow: ops.Flow) -> Any:
        reply = None
        while True:
            try:
                request = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = self.execute(request)

    # --- submitting --------------------------------------------------------------------------

    def submit(self, task: str | TaskFunction, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Put one task on its queue (or delayed); returns its handle. Nothing else happens:
        handing it to a processor is dispatch's job, unless ``dispatch_on_submit`` is set. Submits
        made by other threads while one is in flight share the next script call (``_Coalescer``).

        Keyword arguments go to the task, except these options: ``_queue``, ``_delay`` (seconds
        or timedelta), ``_id`` (an id of your own: submitting it again creates nothing),
        ``_max_attempts``, ``_timeout``, ``_retry_backoff``."""
        new = self.submission(task, args, kwargs)
        self._coalescer.submit(new)
        return TaskHandle(self, new.id)

    def submit_many(self, task: str | TaskFunction, items: Iterable[Any], *,
                    ids: Sequence[str] | None = None, queue: str | None = None,
                    delay: float | timedelta | None = None, max_attempts: int | None = None,
                    timeout: float | timedelta | None = None,
                    retry_backoff: float | timedelta | None = None) -> list[TaskHandle]:
        """Submit one task per item (a tuple of arguments, or an Args) in one round trip."""
        news = self.batch(task, items, ids, queue=queue, delay=delay, max_attempts=max_attempts,
                          timeout=timeout, retry_backoff=retry_backoff)
        self._submit(news, "")
        return [TaskHandle(self, n.id) for n in news]

    def map(self, task: str | TaskFunction, items: Iterable[Any], *, queue: str | None = None,
            max_attempts: int | None = None, timeout: float | timedelta | None = None,
            retry_backoff: float | timedelta | None = None) -> Group:
        """Submit one task per item as a group whose results can be gathered (``Group.results``)."""
        news = self.batch(task, items, None, queue=queue, max_attempts=max_attempts,
                          timeout=timeout, retry_backoff=retry_backoff)
        group_id = new_task_id()
        self._submit(news, group_id)
        return Group(self, group_id, [n.id for n in news])

    def _submit(self, news: list[ops.NewTask], group: str) -> ops.SubmitReply:
        if not news:
            return ops.SubmitReply(0, [], [])
        calls = ops.submit(self.ns, self.now_ms(), news, dispatch=self.dispatch_on_submit, group=group)
        return ops.decode_submit(self.call_many(calls))

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(self, check_task_id(task_id))

    def group(self, group_id: str) -> Group:
        """The group ``map`` made, by its id (its member ids are kept with it in Redis)."""
        check_task_id(group_id, "group id")
        with translated("group"):
            ids = ops.text(self.client.lrange(self.keys.group_ids(group_id), 0, -1))
        if not ids:
            raise GroupNotFound(group_id)
        return Group(self, group_id, list(ids))

    # --- scheduling --------------------------------------------------------------------------

    def dispatch(self, limit: int = 100) -> list[tuple[str, str]]:
        """Hand up to ``limit`` queued tasks to idle processors, in ONE script call.
        Returns (task id, processor id) for each assignment."""
        return self.dispatch_detail(limit).assignments

    def dispatch_detail(self, limit: int = 100) -> ops.DispatchReply:
        """dispatch, with the times a scheduler loop needs (next due task, lease, timeout)."""
        return ops.decode_dispatch(self.call(ops.dispatch(self.ns, self.now_ms(), limit, new_request_id())))

    def reap(self, limit: int = 100) -> ops.Reaped:
        """Take back tasks from processors whose lease lapsed, and attempts past their timeout.
        Returns the ids taken back (a list, with ``.processors`` removed and ``.more``).
        Bounded per call: loop ``while sched.reap(): pass`` — it is falsy once nothing is left."""
        return ops.decode_reap(self.call(ops.reap(self.ns, self.now_ms(), limit, new_request_id())))

    def wake(self) -> None:
        """Wake scheduler loops blocked in ``run`` (for example after setting their stop event)."""
        with translated("wake"):
            self.client.rpush(self.keys.wake, "1")

    def run(self, stop: threading.Event | None = None, *, limit: int = 100,
            max_wait: float = 1.0, reap_every: float = 0.25) -> None:
        """The scheduler loop: dispatch and reap until ``stop`` is set.

        It blocks on the namespace's wake-up list, which submit, register and a freed slot push
        to; it wakes by itself only when a delayed task falls due or a lease or task timeout may
        have lapsed (at most every ``max_wait`` s, so that ``stop`` is seen). Any number of loops
        may run at once: each step is one atomic script."""
        stop = stop if stop is not None else threading.Event()
        ops.check_limit(limit)
        backoff = RECONNECT_MIN_S
        reply: ops.DispatchReply | None = None
        while not stop.is_set():
            try:
                reply = self._run_once(stop, limit, max_wait, reap_every, reply)
                backoff = RECONNECT_MIN_S
            except ConnectionLost as exc:
                reply = None
                log.warning("scheduler loop: %s; retrying in %.2f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _run_once(self, stop: threading.Event, limit: int, max_wait: float, reap_every: float,
                  reply: ops.DispatchReply | None) -> ops.DispatchReply | None:
        """One turn of the loop; returns the dispatch the next turn starts from (None: dispatch)."""
        if reply is None:
            reply = self.dispatch_detail(limit)
        if len(reply.assignments) == limit:
            return None
        wait, reap_now = reply.wait_s(max_wait, reap_every)
        if reap_now:
            while self.reap(limit):
                pass
            return None
        if stop.is_set():
            return None
        wait = min(wait, self.block_s)
        if self.clock is not None:  # a dispatch carries the client's time: send it after the wait
            with translated("run"):
                self.client.blpop([self.keys.wake], timeout=wait)
            return None
        # Block on the wake list and dispatch right after, in one round trip.
        call = ops.dispatch(self.ns, None, limit, new_request_id())
        return ops.decode_dispatch(self.call_after_wake(self.keys.wake, wait, call))

    # --- processors --------------------------------------------------------------------------

    def processor(self, capacity: int = 1, queues: Sequence[str] = ("default",), lease: float = 10.0,
                  name: str | None = None, *, take_next: bool = False, pool: str = "thread",
                  app: str | None = None, log_tasks: bool = False, batch: bool = False,
                  dispatch_on_ack: bool = False) -> Processor:
        """A processor on this namespace (call ``register``/``start`` on it). With
        ``take_next`` it takes its next task straight from its queues when its inbox is empty,
        in the same call that acks the last one (complete-and-take-next mode). ``pool`` is
        "thread" (tasks run in the slot threads) or "process" (each slot runs its tasks in a child
        process, killed at the task's timeout; needs ``app``, the "module:attribute" of this
        Scheduler). ``log_tasks`` logs one INFO line per task. With ``batch`` one slot starts and
        acks up to ``capacity`` tasks per round trip and runs them one after another (for short
        tasks: fewer round trips per task; in asyncio they run at once). With
        ``dispatch_on_ack`` the call that acks finished tasks also fills the slots it freed from the
        queues, by the least-loaded rule, as dispatch would (the task may go to another processor):
        a backlog drains without a scheduler round trip per task; a scheduler is still needed for
        delayed tasks, retries and reaping. It excludes ``take_next``."""
        from .processor import Processor

        return Processor(self, capacity=capacity, queues=queues, lease=lease, name=name,
                         take_next=take_next, pool=pool, app=app, log_tasks=log_tasks, batch=batch,
                         dispatch_on_ack=dispatch_on_ack)

    # --- reading -----------------------------------------------------------------------------
    # Everything here reads a replica when ``read_redis`` is set (see ``Reads``), except what a
    # wait for results reads: that follows the primary, whose wake-ups it is answering.

    def outcome(self, task_id: str) -> Outcome:
        """A task's state and, when finished, its result or error (does not wait)."""
        return self.outcomes([check_task_id(task_id)])[0]

    def outcomes(self, task_ids: Sequence[str]) -> list[Outcome]:
        """Outcomes of many tasks in one round trip."""
        return self._outcomes(task_ids, self.reads.reader())

    def _outcomes(self, task_ids: Sequence[str], client: Any) -> list[Outcome]:
        if not task_ids:
            return []
        found = ops.decode_outcomes(self._send(ops.outcomes(self.ns, task_ids), client), task_ids)
        if client is not self.client:
            # A replica that lags has not seen a task submitted a moment ago: ask the primary.
            unseen = [o.task_id for o in found if o.state == "unknown"]
            if unseen:
                again = {o.task_id: o for o in self._outcomes(unseen, self.client)}
                found = [again.get(o.task_id, o) for o in found]
        return found

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, and processors (all, idle, lapsed): one script call."""
        return self.counts_and_queues()[0]

    def queue_lengths(self) -> dict[str, int]:
        """Queue name -> number of tasks waiting in it."""
        return self.counts_and_queues()[1]

    def counts_and_queues(self) -> tuple[dict[str, int], dict[str, int]]:
        """counts() and queue_lengths() from one snapshot (one script call)."""
        return ops.decode_counts(self.call(ops.counts(self.ns, self.now_ms())))

    def audit(self) -> Audit:
        """Check the conservation invariant on a live server: every task in exactly one place,
        inboxes matching loads and idle rankings, counters adding up.

        An admin tool: it reads the whole namespace in ONE script call (a consistent snapshot, so
        it can run while processors work), which is O(tasks) and blocks Redis meanwhile. With
        ``read_redis`` it runs on a replica (a consistent snapshot too, as stale as the replica)
        and leaves the primary alone; a Scheduler without ``read_redis`` audits the primary."""
        return ops.check_audit(self.call(ops.audit(self.ns, self.now_ms())))

    def processors(self, limit: int = 1000) -> list[ops.ProcessorInfo]:
        """The registered processors (up to ``limit``), soonest lease deadline first."""
        return ops.decode_processors(self.call(ops.processors(self.ns, self.now_ms(), limit)))[1]

    def failed(self, limit: int = 100) -> list[ops.FailedTask]:
        """The oldest ``limit`` dead letters, with their errors."""
        ops.check_limit(limit)
        client = self.reads.reader()  # both reads from one server: the records match the list
        with translated("failed"):
            scored = [(ops.text(k), s) for k, s in client.zrange(self.keys.failed, 0, limit - 1,
                                                                 withscores=True)]
        if not scored:
            return []
        replies = self._send(ops.failed(self.ns, [t for t, _ in scored]), client)
        return ops.decode_failed(replies, scored)

    def retry_failed(self, task_ids: Sequence[str] = (), limit: int = 100) -> list[str]:
        """Put dead letters back on their queue with fresh attempts: the given ids, or else the
        oldest ``limit``. Returns the ids put back (ids that are not dead letters are skipped)."""
        ids = [check_task_id(t) for t in task_ids]
        call = ops.retry_failed(self.ns, self.now_ms(), ids, limit, new_request_id())
        return ops.decode_retry_failed(self.call(call))

    def purge(self) -> int:
        """Delete every key of this namespace: tasks, queues, processors, results. Returns how
        many keys went. Processors still running lose their registration (their acks go stale).
        Uses SCAN from the client (an admin operation, O(keys in the server)); on a cluster,
        redis-py's SCAN visits every primary."""
        deleted = 0
        with translated("purge"):
            batch: list[Any] = []
            for key in self.client.scan_iter(match=self.keys.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.client.unlink(*batch)
        return deleted

    def connect(self, redis: object, *, read_redis: object = None,
                durability: int | None = None) -> Scheduler:
        """This scheduler (namespace, clock, keep, modes, durability and registered tasks) on
        another server, reading from ``read_redis`` if given, waiting for ``durability``
        replicas instead of this one's setting if given."""
        other = Scheduler(redis, self.namespace, self.clock, keep=self.ns.keep_s,
                          dispatch_on_submit=self.dispatch_on_submit, read_redis=read_redis,
                          durability=self.durability.replicas if durability is None else durability,
                          durability_timeout=self.durability.timeout_ms / 1000)
        other.registry = self.registry
        return other


class TaskHandle:
    """A submitted task, by id."""

    __slots__ = ("_sched", "id")

    def __init__(self, sched: Scheduler, task_id: str) -> None:
        self._sched = sched
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id and other._sched is self._sched

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def state(self) -> str:
        """queued, delayed, assigned, running, done, failed or cancelled."""
        request = ops.state(self._sched.ns, self.id)
        value = self._sched._send(request, self._sched.reads.reader())
        if value is None and self._sched.reads.split:
            value = self._sched.execute(request)  # a lagging replica may not have it yet
        if value is None:
            raise TaskNotFound(self.id)
        return str(ops.text(value))

    def outcome(self) -> Outcome:
        return self._sched.outcome(self.id)

    def result(self, timeout: float | None = None, *, cancel_if_abandoned: bool = False) -> Any:
        """Wait for the task to finish and return its value. Raises TaskFailed (with the remote
        error), TaskCancelled, TaskNotFound, or ResultTimeout (a TimeoutError). Waiting is a
        blocking Redis call (BLPOP), not a poll; it rides out a lost connection (a restart, a
        failover) within its timeout. With ``cancel_if_abandoned``, a wait that times out (or is
        interrupted) also cancels the task if it has not started."""
        if timeout is not None:
            seconds(timeout, "timeout")
        clock = ops.WaitClock(timeout)
        try:
            while True:
                flow = ops.wait_result(self._sched.ns, self.id, clock.left(), self._sched.block_s, timeout)
                try:
                    return self._sched.drive(flow).value()
                except ConnectionLost:
                    pause = clock.backoff()
                    if pause is None:
                        raise
                    time.sleep(pause)
        except (ResultTimeout, KeyboardInterrupt):
            if cancel_if_abandoned:
                self.cancel()
            raise

    def cancel(self) -> bool:
        """Cancel the task if it is queued, delayed, or assigned and not started: True if it was."""
        call = ops.cancel(self._sched.ns, self._sched.now_ms(), self.id, new_request_id())
        return ops.decode_cancel(self._sched.call(call), self.id)


class Group:
    """Tasks submitted together by ``map``; their results can be gathered."""

    def __init__(self, sched: Scheduler, group_id: str, ids: list[str]) -> None:
        self._sched = sched
        self.id = group_id
        self.ids = ids

    def __repr__(self) -> str:
        return f"<Group {self.id} of {len(self.ids)} tasks>"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def handles(self) -> list[TaskHandle]:
        return [TaskHandle(self._sched, i) for i in self.ids]

    def as_completed(self, timeout: float | None = None) -> Iterator[Outcome]:
        """Each member's Outcome as it finishes, in finishing order (blocking reads, no polling)."""
        primary = self._sched.client  # what the stream says finished, the primary has
        if not self._exists():
            # The group's keys expire ``keep`` after its last member finished: read the members.
            yield from self._sched._outcomes(self.ids, primary)
            return
        reader = ops.GroupReader(self._sched.ns, self.id, self.ids, timeout, self._sched.block_s)
        while not reader.done:
            finished = reader.feed(self._sched.execute(reader.request()))
            if finished:
                yield from self._sched._outcomes([task_id for task_id, _ in finished], primary)

    def results(self, timeout: float | None = None, *, return_exceptions: bool = False) -> list[Any]:
        """Every member's value, in submission order, once all finished. A failed member raises
        its TaskFailed (the first in submission order), unless ``return_exceptions``: then the
        exception stands in the list in its place."""
        for _ in self.as_completed(timeout):
            pass
        values: list[Any] = []
        for start in range(0, len(self.ids), 1000):
            for outcome in self._sched._outcomes(self.ids[start:start + 1000], self._sched.client):
                try:
                    values.append(outcome.value())
                except ScriptError:
                    raise
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    values.append(exc)
        return values

    def _exists(self) -> bool:
        with translated("group"):
            return bool(self._sched.client.exists(self._sched.keys.group(self.id)))

    def progress(self) -> dict[str, int]:
        """total, done, failed, cancelled (and pending) for the group: one read of its counters,
        or, once the group's keys expired, of every member's state."""
        with translated("group progress"):
            counters = ops.text(self._sched.reads.reader().hmget(self._sched.keys.group(self.id),
                                                                 *ops.GROUP_COUNTERS))
        states = [o.state for o in self._sched.outcomes(self.ids)] if counters[0] is None else None
        return ops.group_progress(counters, states)
