"""asyncio front end: Scheduler, TaskHandle, Group and Processor as coroutines, over the same ops.

Everything that decides anything lives in ops.py, tasks.py, scheduler.Base and
processor.ProcessorBase; this module only sends what they build and awaits the replies. The
sync and asyncio front ends interoperate on one namespace.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from typing import Any

import redis.exceptions

from . import ops
from .connection import (
    MOVED,
    NodeClients,
    Reads,
    aclose_client,
    arefresh_slots,
    async_client,
    block_slice_s,
    is_cluster,
    is_embedded,
    owns,
    read_targets,
)
from .errors import (
    ConnectionLost,
    GroupNotFound,
    ResultTimeout,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    translated,
)
from .ops import Audit, Outcome
from .processor import SLOT_WAIT_S, ProcessorBase, Run, Send, Wait, execute
from .scheduler import RECONNECT_MAX_S, RECONNECT_MIN_S, Base, Clock
from .scripts import READ_ONLY, Scripts
from .tasks import (
    TaskFunction,
    TaskInfo,
    _current,
    check_task_id,
    decode_args,
    encode_error,
    encode_result,
    new_request_id,
    new_task_id,
    seconds,
    timeout_error,
)

log = logging.getLogger("luasched.aio")

__all__ = ["Group", "Processor", "Scheduler", "TaskHandle"]


class _Coalescer:
    """One-task submits of one event loop share round trips: a submit made while another one's
    script call is in flight waits, and all that waited go together in the next call (one
    script call for up to 1,000 tasks) as soon as the call in flight ends. A lone submit goes at
    once. Every caller returns only once its own task is in Redis, or raises the error of the
    call that carried it; a caller cancelled while it waits is left out of the call. Submits of
    one id that wait together go in successive calls (the later ones create nothing, as a
    replayed submit)."""

    def __init__(self, send: Any) -> None:
        self.send = send  # async (list of NewTask) -> None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.busy = False
        self.waiting: list[tuple[ops.NewTask, asyncio.Future[None]]] = []
        self.carrier: asyncio.Task[None] | None = None

    async def submit(self, new: ops.NewTask) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # first use, or a new loop: nothing of the old one carries over
            self.loop, self.busy, self.waiting = loop, False, []
        if not self.busy:
            self.busy = True
            try:
                await self.send([new])
            finally:
                self._next()
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiting.append((new, waiter))
        await waiter

    def _next(self) -> None:
        """The call in flight ended: carry what waits (in a task of its own), or go idle."""
        # a waiter already done: its caller was cancelled, its task is not sent
        batch, self.waiting = ops.take_batch(self.waiting, lambda waiter: waiter.done())
        if not batch:
            self.busy = False
            return
        self.carrier = asyncio.ensure_future(self._carry(batch))

    async def _carry(self, batch: list[tuple[ops.NewTask, asyncio.Future[None]]]) -> None:
        try:
            await self.send([new for new, _ in batch])
        except BaseException as exc:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_result(None)
        finally:
            self._next()


class Scheduler(Base):
    """The asyncio Scheduler: the constructor and the methods of luasched.Scheduler, with the ones
    that talk to Redis as coroutines, on ``redis.asyncio`` (or the embedded server): the same
    targets (URLs, Sentinel, Cluster), ``read_redis`` replicas and ``durability``."""

    def __init__(self, redis: object = None, namespace: str = "default", clock: Clock | None = None,
                 *, keep: float | timedelta = 86400.0, dispatch_on_submit: bool = False,
                 read_redis: object = None, service_name: str | None = None, durability: int = 0,
                 durability_timeout: float | timedelta = 1.0) -> None:
        super().__init__(namespace, clock, keep, dispatch_on_submit, durability=durability,
                         durability_timeout=durability_timeout)
        self.client = async_client(redis, service_name=service_name)
        self._owned = [(self.client, redis)] if owns(redis) else []
        if self.durability.replicas and is_embedded(self.client):
            raise ValueError("durability needs a real Redis with replicas: the embedded server has none")
        replicas = []
        for target in read_targets(read_redis):
            replicas.append(async_client(target, replica=True, service_name=service_name))
            if owns(target):
                self._owned.append((replicas[-1], target))
        self.reads = Reads(self.client, replicas)
        self.scripts = Scripts(self.client)
        self.block_s = block_slice_s(self.client)
        self._nodes = NodeClients()
        # what a sync twin (luasched.app.as_sync, for the admin commands) would connect to
        self.target = redis if isinstance(redis, str) else None
        self.embedded = redis is None
        self._coalescer = _Coalescer(lambda news: self._submit(news, ""))

    def __repr__(self) -> str:
        return f"<luasched.aio.Scheduler namespace={self.namespace!r}>"

    async def close(self) -> None:
        """Close the clients this Scheduler made (a client you passed in stays open)."""
        await self._nodes.aclose()
        for client, target in self._owned:
            await aclose_client(client, target)
        self._owned = []

    async def __aenter__(self) -> Scheduler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transport (see luasched.Scheduler: the same routing, awaited) ---------------------------

    async def call(self, call: ops.Call) -> Any:
        if self.durability.applies(call.script):
            return (await self.call_many([call]))[0]
        client = self.reads.for_script(call.script)
        script = self.scripts[call.script]
        with translated(call.script):
            try:
                return await client.execute_command("EVALSHA", script.sha, len(call.keys), *call.keys, *call.args)
            except redis.exceptions.NoScriptError:
                await client.script_load(script.script)
                return await client.execute_command("EVALSHA", script.sha, len(call.keys), *call.keys,
                                                    *call.args)

    async def call_many(self, calls: Sequence[ops.Call]) -> list[Any]:
        """Several script calls in one round trip (see luasched.Scheduler.call_many)."""
        if not calls:
            return []
        wait = any(self.durability.applies(c.script) for c in calls)
        if len(calls) == 1 and not wait:
            return [await self.call(calls[0])]
        operation = calls[0].script
        with translated(operation):
            replies, client = await self._pipeline_routed(calls, wait, operation)
            refused = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
            if refused:
                for name in {calls[i].script for i in refused}:
                    await client.script_load(self.scripts[name].script)
                again = await self._pipeline(client, [calls[i] for i in refused], wait, operation)
                for i, reply in zip(refused, again, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

    async def _pipeline_routed(self, calls: Sequence[ops.Call], wait: bool,
                               operation: str) -> tuple[list[Any], Any]:
        if not is_cluster(self.client):
            read_only = not wait and all(c.script in READ_ONLY for c in calls)
            client = self.reads.reader() if read_only else self.client
            return await self._pipeline(client, calls, wait, operation), client
        for attempt in (1, 2):
            client = await self._nodes.for_key(self.client, calls[0].keys[0])
            try:
                replies = await self._pipeline(client, calls, wait, operation)
            except redis.exceptions.ConnectionError:
                await arefresh_slots(self.client)
                if attempt == 2:
                    raise
                continue
            if attempt == 2 or not any(isinstance(r, MOVED) for r in replies):
                break
            await arefresh_slots(self.client)
        return replies, client

    async def _pipeline(self, client: Any, calls: Sequence[ops.Call], wait: bool, operation: str) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for c in calls:
            pipe.evalsha(self.scripts[c.script].sha, len(c.keys), *c.keys, *c.args)
        if wait:
            pipe.execute_command(*self.durability.command())
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if wait:
            self.durability.check(replies.pop(), operation)
        return replies

    async def call_after_wake(self, key: str, timeout_s: float, call: ops.Call,
                              before: ops.Call | None = None) -> Any:
        """See luasched.Scheduler.call_after_wake."""
        if self._ride_alone(before):
            assert before is not None
            return await self.call(before), await self.call_after_wake(key, timeout_s, call)
        calls, commands = self._wake_pipeline(key, timeout_s, call, before)
        client = await self._nodes.for_key(self.client, call.keys[0])
        with translated(call.script):
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = self._wake_replies(calls, await pipe.execute(raise_on_error=False))
        return self._wake_result(calls, [await self.call(c) if isinstance(r, redis.exceptions.NoScriptError)
                                         else r for c, r in zip(calls, replies, strict=True)])

    async def execute(self, request: ops.Request) -> Any:
        """Send a script call or a plain command (to the primary) and return its reply."""
        return await self._send(request, self.client)

    async def _send(self, request: ops.Request, client: Any) -> Any:
        if isinstance(request, ops.Call):
            return await self.call(request)
        with translated(request.name):
            if request.name == "pipeline":
                pipe = client.pipeline(transaction=False)
                for name, args in request.args:
                    getattr(pipe, name)(*args)
                return await pipe.execute()
            return await getattr(client, request.name)(*request.args)

    async def drive(self, flow: ops.Flow) -> Any:
        reply = None
        while True:
            try:
                request = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = await self.execute(request)

    # --- submitting --------------------------------------------------------------------------

    async def submit(self, task: str | TaskFunction, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """See luasched.Scheduler.submit. Submits made concurrently on one event loop (request
        handlers of a service) share script calls: see ``_Coalescer``."""
        new = self.submission(task, args, kwargs)
        await self._coalescer.submit(new)
        return TaskHandle(self, new.id)

    async def submit_many(self, task: str | TaskFunction, items: Iterable[Any], *,
                          ids: Sequence[str] | None = None, queue: str | None = None,
                          delay: float | timedelta | None = None, max_attempts: int | None = None,
                          timeout: float | timedelta | None = None,
                          retry_backoff: float | timedelta | None = None) -> list[TaskHandle]:
        """See luasched.Scheduler.submit_many."""
        news = self.batch(task, items, ids, queue=queue, delay=delay, max_attempts=max_attempts,
                          timeout=timeout, retry_backoff=retry_backoff)
        await self._submit(news, "")
        return [TaskHandle(self, n.id) for n in news]

    async def map(self, task: str | TaskFunction, items: Iterable[Any], *, queue: str | None = None,
                  max_attempts: int | None = None, timeout: float | timedelta | None = None,
                  retry_backoff: float | timedelta | None = None) -> Group:
        """See luasched.Scheduler.map."""
        news = self.batch(task, items, None, queue=queue, max_attempts=max_attempts,
                          timeout=timeout, retry_backoff=retry_backoff)
        group_id = new_task_id()
        await self._submit(news, group_id)
        return Group(self, group_id, [n.id for n in news])

    async def _submit(self, news: list[ops.NewTask], group: str) -> ops.SubmitReply:
        if not news:
            return ops.SubmitReply(0, [], [])
        calls = ops.submit(self.ns, self.now_ms(), news, dispatch=self.dispatch_on_submit, group=group)
        return ops.decode_submit(await self.call_many(calls))

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(self, check_task_id(task_id))

    async def group(self, group_id: str) -> Group:
        """See luasched.Scheduler.group."""
        check_task_id(group_id, "group id")
        with translated("group"):
            ids = ops.text(await self.client.lrange(self.keys.group_ids(group_id), 0, -1))
        if not ids:
            raise GroupNotFound(group_id)
        return Group(self, group_id, list(ids))

    # --- scheduling --------------------------------------------------------------------------

    async def dispatch(self, limit: int = 100) -> list[tuple[str, str]]:
        """See luasched.Scheduler.dispatch: ONE script call."""
        return (await self.dispatch_detail(limit)).assignments

    async def dispatch_detail(self, limit: int = 100) -> ops.DispatchReply:
        call = ops.dispatch(self.ns, self.now_ms(), limit, new_request_id())
        return ops.decode_dispatch(await self.call(call))

    async def reap(self, limit: int = 100) -> ops.Reaped:
        """See luasched.Scheduler.reap."""
        return ops.decode_reap(await self.call(ops.reap(self.ns, self.now_ms(), limit, new_request_id())))

    async def wake(self) -> None:
        with translated("wake"):
            await self.client.rpush(self.keys.wake, "1")

    async def run(self, stop: asyncio.Event | None = None, *, limit: int = 100,
                  max_wait: float = 1.0, reap_every: float = 0.25) -> None:
        """The scheduler loop (see luasched.Scheduler.run) until ``stop`` is set or the coroutine
        is cancelled."""
        stop = stop if stop is not None else asyncio.Event()
        ops.check_limit(limit)
        backoff = RECONNECT_MIN_S
        reply: ops.DispatchReply | None = None
        while not stop.is_set():
            try:
                reply = await self._run_once(stop, limit, max_wait, reap_every, reply)
                backoff = RECONNECT_MIN_S
            except ConnectionLost as exc:
                reply = None
                log.warning("scheduler loop: %s; retrying in %.2f s", exc, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _run_once(self, stop: asyncio.Event, limit: int, max_wait: float, reap_every: float,
                        reply: ops.DispatchReply | None) -> ops.DispatchReply | None:
        if reply is None:
            reply = await self.dispatch_detail(limit)
        if len(reply.assignments) == limit:
            return None
        wait, reap_now = reply.wait_s(max_wait, reap_every)
        if reap_now:
            while await self.reap(limit):
                pass
            return None
        if stop.is_set():
            return None
        wait = min(wait, self.block_s)
        if self.clock is not None:  # a dispatch carries the client's time: send it after the wait
            with translated("run"):
                await self.client.blpop([self.keys.wake], timeout=wait)
            return None
        call = ops.dispatch(self.ns, None, limit, new_request_id())
        return ops.decode_dispatch(await self.call_after_wake(self.keys.wake, wait, call))

    def processor(self, capacity: int = 1, queues: Sequence[str] = ("default",), lease: float = 10.0,
                  name: str | None = None, *, take_next: bool = False, pool: str = "thread",
                  app: str | None = None, log_tasks: bool = False, batch: bool = False,
                  dispatch_on_ack: bool = False) -> Processor:
        """An asyncio processor: ``async def`` tasks run concurrently up to ``capacity`` on the event
        loop (and are cancelled at their timeout); plain functions run in threads."""
        return Processor(self, capacity=capacity, queues=queues, lease=lease, name=name,
                         take_next=take_next, pool=pool, app=app, log_tasks=log_tasks, batch=batch,
                         dispatch_on_ack=dispatch_on_ack)

    # --- reading -----------------------------------------------------------------------------

    async def outcome(self, task_id: str) -> Outcome:
        return (await self.outcomes([check_task_id(task_id)]))[0]

    async def outcomes(self, task_ids: Sequence[str]) -> list[Outcome]:
        return await self._outcomes(task_ids, self.reads.reader())

    async def _outcomes(self, task_ids: Sequence[str], client: Any) -> list[Outcome]:
        if not task_ids:
            return []
        found = ops.decode_outcomes(await self._send(ops.outcomes(self.ns, task_ids), client), task_ids)
        if client is not self.client:
            # A replica that lags has not seen a task submitted a moment ago: ask the primary.
            unseen = [o.task_id for o in found if o.state == "unknown"]
            if unseen:
                again = {o.task_id: o for o in await self._outcomes(unseen, self.client)}
                found = [again.get(o.task_id, o) for o in found]
        return found

    async def counts(self) -> dict[str, int]:
        return (await self.counts_and_queues())[0]

    async def queue_lengths(self) -> dict[str, int]:
        return (await self.counts_and_queues())[1]

    async def counts_and_queues(self) -> tuple[dict[str, int], dict[str, int]]:
        return ops.decode_counts(await self.call(ops.counts(self.ns, self.now_ms())))

    async def audit(self) -> Audit:
        """See luasched.Scheduler.audit (one script call, O(tasks): an admin tool)."""
        return ops.check_audit(await self.call(ops.audit(self.ns, self.now_ms())))

    async def processors(self, limit: int = 1000) -> list[ops.ProcessorInfo]:
        return ops.decode_processors(await self.call(ops.processors(self.ns, self.now_ms(), limit)))[1]

    async def failed(self, limit: int = 100) -> list[ops.FailedTask]:
        ops.check_limit(limit)
        client = self.reads.reader()  # both reads from one server: the records match the list
        with translated("failed"):
            raw = await client.zrange(self.keys.failed, 0, limit - 1, withscores=True)
        scored = [(ops.text(k), s) for k, s in raw]
        if not scored:
            return []
        return ops.decode_failed(await self._send(ops.failed(self.ns, [t for t, _ in scored]), client), scored)

    async def retry_failed(self, task_ids: Sequence[str] = (), limit: int = 100) -> list[str]:
        ids = [check_task_id(t) for t in task_ids]
        call = ops.retry_failed(self.ns, self.now_ms(), ids, limit, new_request_id())
        return ops.decode_retry_failed(await self.call(call))

    async def purge(self) -> int:
        """See luasched.Scheduler.purge."""
        deleted = 0
        with translated("purge"):
            batch: list[Any] = []
            async for key in self.client.scan_iter(match=self.keys.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += await self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += await self.client.unlink(*batch)
        return deleted

    def connect(self, redis: object, *, read_redis: object = None,
                durability: int | None = None) -> Scheduler:
        """See luasched.Scheduler.connect."""
        other = Scheduler(redis, self.namespace, self.clock, keep=self.ns.keep_s,
                          dispatch_on_submit=self.dispatch_on_submit, read_redis=read_redis,
                          durability=self.durability.replicas if durability is None else durability,
                          durability_timeout=self.durability.timeout_ms / 1000)
        other.registry = self.registry
        return other


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


class TaskHandle:
    """A submitted task, by id (asyncio)."""

    __slots__ = ("_sched", "id")

    def __init__(self, sched: Scheduler, task_id: str) -> None:
        self._sched = sched
        self.id = task_id

    def __repr__(self) -> str:
        return f"<aio.TaskHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id and other._sched is self._sched

    def __hash__(self) -> int:
        return hash(self.id)

    async def state(self) -> str:
        """queued, delayed, assigned, running, done, failed or cancelled (a coroutine here)."""
        request = ops.state(self._sched.ns, self.id)
        value = await self._sched._send(request, self._sched.reads.reader())
        if value is None and self._sched.reads.split:
            value = await self._sched.execute(request)  # a lagging replica may not have it yet
        if value is None:
            raise TaskNotFound(self.id)
        return str(ops.text(value))

    async def outcome(self) -> Outcome:
        return await self._sched.outcome(self.id)

    async def result(self, timeout: float | None = None, *, cancel_if_abandoned: bool = False) -> Any:
        """See luasched.TaskHandle.result. Cancelling the awaiting coroutine (e.g. with
        asyncio.wait_for) only stops the waiting: the task itself goes on, unless
        ``cancel_if_abandoned`` (then it is cancelled if it has not started)."""
        if timeout is not None:
            seconds(timeout, "timeout")
        clock = ops.WaitClock(timeout)
        try:
            while True:
                flow = ops.wait_result(self._sched.ns, self.id, clock.left(), self._sched.block_s, timeout)
                try:
                    return (await self._sched.drive(flow)).value()
                except ConnectionLost:
                    pause = clock.backoff()
                    if pause is None:
                        raise
                    await asyncio.sleep(pause)
        except (ResultTimeout, asyncio.CancelledError):
            if cancel_if_abandoned:
                await asyncio.shield(self.cancel())
            raise

    async def cancel(self) -> bool:
        call = ops.cancel(self._sched.ns, self._sched.now_ms(), self.id, new_request_id())
        return ops.decode_cancel(await self._sched.call(call), self.id)


class Group:
    """Tasks submitted together by ``map`` (asyncio)."""

    def __init__(self, sched: Scheduler, group_id: str, ids: list[str]) -> None:
        self._sched = sched
        self.id = group_id
        self.ids = ids

    def __repr__(self) -> str:
        return f"<aio.Group {self.id} of {len(self.ids)} tasks>"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def handles(self) -> list[TaskHandle]:
        return [TaskHandle(self._sched, i) for i in self.ids]

    async def _exists(self) -> bool:
        with translated("group"):
            return bool(await self._sched.client.exists(self._sched.keys.group(self.id)))

    async def as_completed(self, timeout: float | None = None) -> AsyncIterator[Outcome]:
        """Each member's Outcome as it finishes (``async for``)."""
        if not await self._exists():
            for outcome in await self._sched.outcomes(self.ids):
                yield outcome
            return
        reader = ops.GroupReader(self._sched.ns, self.id, self.ids, timeout, self._sched.block_s)
        while not reader.done:
            finished = reader.feed(await self._sched.execute(reader.request()))
            if finished:
                for outcome in await self._sched.outcomes([task_id for task_id, _ in finished]):
                    yield outcome

    async def results(self, timeout: float | None = None, *, return_exceptions: bool = False) -> list[Any]:
        """See luasched.Group.results."""
        async for _ in self.as_completed(timeout):
            pass
        values: list[Any] = []
        for start in range(0, len(self.ids), 1000):
            for outcome in await self._sched.outcomes(self.ids[start:start + 1000]):
                try:
                    values.append(outcome.value())
                except (TaskFailed, TaskCancelled, TaskNotFound) as exc:
                    if not return_exceptions:
                        raise
                    values.append(exc)
        return values

    async def progress(self) -> dict[str, int]:
        with translated("group progress"):
            counters = await self._sched.reads.reader().hmget(self._sched.keys.group(self.id),
                                                              *ops.GROUP_COUNTERS)
        counters = ops.text(counters)
        states = [o.state for o in await self._sched.outcomes(self.ids)] if counters[0] is None else None
        return ops.group_progress(counters, states)


async def execute_async(base: Base, task: ops.Started, pid: str) -> tuple[str, str]:
    """Run one started task on the event loop: an ``async def`` task is awaited (and cancelled
    past its timeout); a plain function runs in a thread so it cannot block the loop."""
    spec = base.registry.get(task.name)
    if spec is None or not inspect.iscoroutinefunction(spec.fn):
        return await asyncio.to_thread(execute, base.registry, task, pid)
    token = _current.set(TaskInfo(task.id, task.name, task.attempt, pid))
    try:
        args, kwargs = decode_args(task.args_json)
        call = spec.fn(*args, **kwargs)
        if task.timeout_ms > 0:
            value = await asyncio.wait_for(call, task.timeout_ms / 1000)
        else:
            value = await call
        return "done", encode_result(task.name, value)
    except asyncio.TimeoutError:
        return "error", timeout_error(task.id, task.timeout_ms, "and was cancelled")
    except Exception as exc:  # the task's failure is data, reported to Redis
        return "error", encode_error(exc)
    finally:
        _current.reset(token)


async def _timed(base: Base, task: ops.Started, pid: str) -> tuple[str, str, float]:
    began = time.monotonic()
    outcome, payload = await execute_async(base, task, pid)
    return outcome, payload, time.monotonic() - began


class Processor(ProcessorBase):
    """An asyncio processor (see luasched.Processor): ``start()`` runs a heartbeat task and
    ``capacity`` slot tasks on the running loop."""

    def __init__(self, sched: Scheduler, **options: Any) -> None:
        super().__init__(sched, **options)
        if self.pool != "thread":
            raise ValueError("the asyncio processor runs tasks on its event loop (and plain functions "
                             "in threads): pool='process' is for luasched.Processor")
        self.sched = sched
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._id_lock = asyncio.Lock()

    async def register(self) -> bool:
        return ops.decode_register(await self.sched.call(self._register_call()))

    async def heartbeat(self) -> bool:
        return ops.decode_heartbeat(await self.sched.call(ops.heartbeat(self.ns, self._now(), self.id)))

    async def deregister(self) -> list[str]:
        call = ops.deregister(self.ns, self._now(), self.id, new_request_id())
        return ops.decode_deregister(await self.sched.call(call)) or []

    async def process_available(self) -> int:
        """Run every task now in the inbox, one after another, and ack each; returns how many."""
        return await self._run_slot("x", stop=None)

    async def _run_slot(self, slot: str, stop: asyncio.Event | None) -> int:
        flow = self._slot_flow(slot, None if stop is None else stop.is_set)
        reply: Any = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return int(done.value)
            reply = None
            if isinstance(step, Send):
                reply = await self._send(step.call, stop)
            elif isinstance(step, Run):  # a batch's tasks run at once on the loop
                reply = await asyncio.gather(*(_timed(self.sched, t, step.pid) for t in step.tasks))
            elif isinstance(step, Wait):
                assert stop is not None
                reply = await self._wait(step, stop)
            else:
                await self._recover(step.pid)

    async def _send(self, call: ops.Call, stop: asyncio.Event | None) -> Any:
        """Send a call; while running, retry it (same request id) through connection loss."""
        delay = RECONNECT_MIN_S
        while True:
            try:
                return await self.sched.call(call)
            except ConnectionLost:
                if stop is None:
                    raise
                log.warning("processor %s: Redis unreachable, retrying %s in %.2f s", self.id,
                            call.script, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _wait(self, step: Wait, stop: asyncio.Event) -> Any:
        """See luasched.Processor._wait."""
        wake, wait_s = self.ns.keys.processor_wake(step.pid), min(SLOT_WAIT_S, self.sched.block_s)
        if self.sched.clock is not None:  # the start carries the client's time: made after the wait
            acked = await self._send(step.ack, stop) if step.ack is not None else None
            try:
                await self.sched.execute(ops.Command("blpop", ([wake], wait_s)))
            except ConnectionLost:
                await _wait(stop, 0.5)
            started = await self._send(self._start_call(step.pid, step.slot), stop)
            return started if step.ack is None else (acked, started)
        call = self._start_call(step.pid, step.slot)
        try:  # the script reads the server's time when it runs
            return await self.sched.call_after_wake(wake, wait_s, call, before=step.ack)
        except ConnectionLost:  # replay-safe: the same calls answer as they did if they ran
            await _wait(stop, 0.5)
            if step.ack is None:
                return await self._send(call, stop)
            return await self._send(step.ack, stop), await self._send(call, stop)

    async def _recover(self, lost_pid: str) -> None:
        async with self._id_lock:
            if not self._new_id(lost_pid):
                return
        await self.register()
        await self._wake_slots(lost_pid)

    async def _wake_slots(self, pid: str) -> None:
        key = self.ns.keys.processor_wake(pid)
        try:
            pipe = self.sched.client.pipeline(transaction=False)
            pipe.rpush(key, *["wake"] * self.capacity)
            pipe.expire(key, 60)
            await pipe.execute()
        except Exception as exc:  # a courtesy: slots also wake by themselves within SLOT_WAIT_S
            log.debug("processor %s: could not wake its slots: %s", self.id, exc)

    async def start(self) -> None:
        """Register and run on the current event loop: a heartbeat task and ``capacity`` slots."""
        if self._tasks:
            raise RuntimeError(f"processor {self.id} is already started")
        self._stop.clear()
        if not await self.register():
            await self._recover(self.id)
        self._tasks = [asyncio.create_task(self._heartbeats(), name=f"{self.id}-heartbeat")]
        self._tasks += [asyncio.create_task(self._slot(str(i)), name=f"{self.id}-slot{i}")
                        for i in range(self.slots)]

    async def _slot(self, slot: str) -> None:
        while not self._stop.is_set():
            try:
                await self._run_slot(slot, self._stop)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently kill the slot: log it, carry on
                log.exception("processor %s slot %s failed; carrying on", self.id, slot)
                await _wait(self._stop, 1.0)

    async def _heartbeats(self) -> None:
        interval = max(self.lease / 3, 0.001)
        while not await _wait(self._stop, interval):
            try:
                if not await self.heartbeat():
                    await self._recover(self.id)
            except ConnectionLost as exc:
                log.warning("processor %s: heartbeat failed: %s", self.id, exc)

    async def stop(self, timeout: float | None = None) -> bool:
        """Take no new task, let running ones finish (up to ``timeout`` s; then they are cancelled),
        then deregister. True when every slot finished in time."""
        if not self._tasks:
            return True
        self._stop.set()
        await self._wake_slots(self.id)
        done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        try:
            await self.deregister()
        except ConnectionLost as exc:  # the lease will lapse and reap gives the inbox back
            log.warning("processor %s could not deregister: %s", self.id, exc)
        return not pending

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)


#: The sync methods that are coroutines here (the rest are the same plain methods).
ASYNC_METHODS: dict[str, tuple[str, ...]] = {
    "Scheduler": ("close", "call", "call_many", "call_after_wake", "execute", "drive", "submit",
                  "submit_many", "map", "group",
                  "dispatch", "dispatch_detail", "reap", "wake", "run", "outcome", "outcomes",
                  "counts", "queue_lengths", "counts_and_queues", "audit", "processors", "failed",
                  "retry_failed", "purge"),
    "TaskHandle": ("state", "outcome", "result", "cancel"),
    "Group": ("as_completed", "results", "progress"),
    "Processor": ("register", "heartbeat", "deregister", "process_available", "start", "stop"),
}

