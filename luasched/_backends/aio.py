"""The asyncio front end's backend: what luasched.aio's Scheduler and Processor do with an
event loop where the threaded ones do with threads (``threads.py`` beside this file has the same
names). The code in ``luasched/_async`` calls these; nothing else differs."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from .. import tracing
from ..connection import ASYNC, sentinels_of
from ..core.flows import take_batch
from ..core.ops import NewTask
from ..core.options import ProcessorOptions
from ..core.tasks import (
    Registry,
    Started,
    TaskInfo,
    _current,
    decode_args,
    encode_error,
    encode_result,
    execute,
    timeout_error,
)
from ..routing import NodeClients, arefresh_slots

#: How the front end names itself in reprs.
FRONT = "luasched.aio"
#: How its handles and groups name themselves in reprs.
SHORT = "aio."
#: The exceptions that mean a waiter gave up waiting (it then cancels what it asked, if told to).
ABANDONED: type[BaseException] = asyncio.CancelledError

T = TypeVar("T")

#: The redis-py classes this front end makes and takes.
CLIENTS = ASYNC


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def shield(call: Awaitable[T]) -> T:
    """Run ``call`` to its end even when the caller is cancelled meanwhile."""
    return await asyncio.shield(call)


async def close_client(client: Any, target: object) -> None:
    """Close a client luasched made for ``target``, and the sentinel connections behind it when
    luasched made those too (from a URL; a Sentinel you passed in stays yours)."""
    if isinstance(target, str):
        for sentinel in sentinels_of(client):
            await sentinel.aclose()
    await client.aclose()


# --- submits of one event loop share script calls ----------------------------------------------


class Coalescer:
    """One-task submits of one event loop share round trips: a submit made while another one's
    script call is in flight waits, and all that waited go together in the next call (one
    script call for up to 1,000 tasks) as soon as the call in flight ends. A lone submit goes at
    once. Every caller returns only once its own task is in Redis, or raises the error of the
    call that carried it; a caller cancelled while it waits is left out of the call. Submits of
    one id that wait together go in successive calls (the later ones create nothing, as a
    replayed submit)."""

    def __init__(self, send: Callable[[list[NewTask]], Awaitable[Any]]) -> None:
        self.send = send
        self.loop: asyncio.AbstractEventLoop | None = None
        self.busy = False
        self.waiting: list[tuple[NewTask, asyncio.Future[None]]] = []
        self.carrier: asyncio.Task[None] | None = None

    async def submit(self, new: NewTask) -> None:
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
        batch, self.waiting = take_batch(self.waiting, lambda waiter: waiter.done())
        if not batch:
            self.busy = False
            return
        self.carrier = asyncio.ensure_future(self._carry(batch))

    async def _carry(self, batch: list[tuple[NewTask, asyncio.Future[None]]]) -> None:
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


# --- how script calls and commands are sent -----------------------------------------------------


class Wire:
    """How this front end sends: redis.asyncio's calls and pipelines, a cluster's node client by
    slot (its own client: redis.asyncio's cluster pipelines refuse EVALSHA)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._nodes = NodeClients()

    async def script(self, client: Any, command: tuple[Any, ...]) -> Any:
        """One script or function call (``Scripts.command``)."""
        return await client.execute_command(*command)

    async def load(self, client: Any, source: str) -> None:
        await client.script_load(source)

    async def load_library(self, client: Any, source: str) -> None:
        await client.execute_command("FUNCTION", "LOAD", source)

    async def commands(self, client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one round trip; each reply in its place, an error reply as the exception."""
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def node(self, key: str) -> Any:
        """The client a pipeline on ``key``'s namespace goes through (a cluster's node client)."""
        return await self._nodes.for_key(self.client, key)

    async def refresh(self) -> None:
        await arefresh_slots(self.client)

    def holding(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to hold: the event loop's calls share the client's pool."""
        return contextlib.nullcontext()

    async def close(self) -> None:
        await self._nodes.aclose()


# --- a processor's slots and heartbeat ------------------------------------------------------------


#: How long a stop waits for the slots it cancelled to end.
CANCEL_GRACE_S = 1.0


class Workers:
    """A processor's tasks on the running event loop: its heartbeat and its slots."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(fn(*args), name=name))

    async def join(self, timeout: float | None) -> bool:
        """Wait for every task (up to ``timeout`` s): True when all ended in time; the others are
        cancelled (a task cancelled mid-run is left to the lease). A slot whose task ignores its
        cancellation is left running on the loop after CANCEL_GRACE_S, as a thread slot is left
        to finish unseen: the stop goes on (and deregisters) rather than wait for it forever."""
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            ended, _ = await asyncio.wait(pending, timeout=CANCEL_GRACE_S)
            for t in ended:  # what they raised is retrieved, as gather(return_exceptions=True) did
                if not t.cancelled():
                    t.exception()
        self._tasks = []
        return not pending

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)


class Runners:
    """Run a slot's started tasks at once on the event loop: an ``async def`` task is awaited
    (and cancelled past its timeout); a plain function runs in a thread so that it cannot block
    the loop. No process pool here."""

    def __init__(self, registry: Registry, options: ProcessorOptions) -> None:
        if options.pool != "thread":
            raise ValueError("the asyncio processor runs tasks on its event loop (and plain functions "
                             "in threads): pool='process' is for luasched.Processor")
        self.registry = registry

    async def run(self, tasks: list[Started], pid: str, slot: str,
                  facts: list[tracing.Facts] | None = None) -> list[tuple[str, str, float]]:
        """One (outcome, payload, seconds) per task, in order; each in its trace span when
        ``facts`` (luasched.tracing) are given."""
        return list(await asyncio.gather(*(self._timed(task, pid, facts[i] if facts else None)
                                           for i, task in enumerate(tasks))))

    async def _timed(self, task: Started, pid: str, facts: tracing.Facts | None) -> tuple[str, str, float]:
        began = time.monotonic()
        with tracing.consumer_span(task, pid, facts) as ended:
            outcome, payload = await self._execute(task, pid)
            ended(outcome, payload)
        return outcome, payload, time.monotonic() - began

    async def _execute(self, task: Started, pid: str) -> tuple[str, str]:
        spec = self.registry.get(task.name)
        if spec is None or not inspect.iscoroutinefunction(spec.fn):
            return await asyncio.to_thread(execute, self.registry, task, pid)
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
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the processor is cancelled: let it stop
                raise
            return "error", encode_error(exc)  # raised by the task itself
        except (Exception, SystemExit, KeyboardInterrupt, GeneratorExit) as exc:  # data, reported to Redis
            return "error", encode_error(exc)
        finally:
            _current.reset(token)

    async def close(self) -> None:
        pass
