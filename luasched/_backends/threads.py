"""The threaded front end's backend: what luasched.Scheduler and luasched.Processor do with
threads where luasched.aio's do with an event loop (``aio.py`` beside this file has the same
names). The code generated into ``luasched/_sync`` calls these; nothing else differs."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import tracing
from ..connection import SYNC, sentinels_of
from ..core.flows import take_batch
from ..core.ops import NewTask
from ..core.options import ProcessorOptions
from ..core.tasks import Registry, Started, execute
from ..errors import LuaschedError
from ..pool import ProcessRunner
from ..routing import is_cluster, refresh_slots, slot_client
from .fastpath import Holder, direct, direct_pipeline

#: How the front end names itself in reprs.
FRONT = "luasched"
#: How its handles and groups name themselves in reprs.
SHORT = ""
#: The exceptions that mean a waiter gave up waiting (it then cancels what it asked, if told to).
ABANDONED: type[BaseException] = KeyboardInterrupt

#: The redis-py classes this front end makes and takes.
CLIENTS = SYNC


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def wait(event: threading.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it is set."""
    return event.wait(seconds)


def shield(value: Any) -> Any:
    """What the asyncio backend runs to the end even when its caller is cancelled; here the call
    has already run."""
    return value


def close_client(client: Any, target: object) -> None:
    """Close a client luasched made for ``target``, and the sentinel connections behind it when
    luasched made those too (from a URL; a Sentinel you passed in stays yours)."""
    if isinstance(target, str):
        for sentinel in sentinels_of(client):
            sentinel.close()
    client.close()


# --- submits from many threads share script calls ---------------------------------------------


class Waiter:
    """A one-task submit waiting for a call to carry it (see Coalescer)."""

    __slots__ = ("batch", "error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.batch: list[tuple[NewTask, Waiter]] | None = None  # set: this thread carries it


class Coalescer:
    """One-task submits from the threads of one process share round trips (as asyncio's do): a
    submit made while another thread's submit call is in flight waits, and all that waited go
    together in the next call (up to 1,000 tasks per script call), carried by the first of them as
    soon as the call in flight ends. A lone submit goes at once, in its own thread. Every caller
    returns only once its own task is in Redis, or raises the error of the call that carried it;
    a caller interrupted while it waits is left out of the call (or, chosen to carry one, carries
    it first). A forked child starts with nothing waiting."""

    def __init__(self, send: Callable[[list[NewTask]], Any]) -> None:
        self.send = send
        self.lock = threading.Lock()
        self.busy = False
        self.waiting: list[tuple[NewTask, Waiter]] = []
        self.pid = os.getpid()

    def submit(self, new: NewTask) -> None:
        with self.lock:
            if self.pid != os.getpid():  # the parent's threads and their calls are not in this process
                self.pid, self.busy, self.waiting = os.getpid(), False, []
            if self.busy:
                waiter = Waiter()
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

    def _carry(self, batch: Sequence[tuple[NewTask, Waiter | None]]) -> None:
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
            batch, self.waiting = take_batch(self.waiting, lambda w: False)
            if not batch:
                self.busy = False
                return
            carrier = batch[0][1]
            carrier.batch = batch
        carrier.event.set()


# --- how script calls and commands are sent -----------------------------------------------------


class Wire:
    """How this front end sends: a script call on a connection its thread holds (the fast path,
    ``fastpath``), commands pipelined on it, a cluster's node client by slot."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._holder = Holder(client)

    def script(self, client: Any, command: tuple[Any, ...]) -> Any:
        """One script or function call (``Scripts.command``)."""
        held = self._holder.connection() if client is self.client else None
        return direct(client, *command, held=held)

    def load(self, client: Any, source: str) -> None:
        client.script_load(source)

    def load_library(self, client: Any, source: str) -> None:
        client.execute_command("FUNCTION", "LOAD", source)

    def commands(self, client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one round trip; each reply in its place, an error reply as the exception."""
        held = self._holder.connection() if client is self.client else None
        replies = direct_pipeline(held, commands) if held is not None else None
        if replies is None:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
        return replies

    def node(self, key: str) -> Any:
        """The client a pipeline on ``key``'s namespace goes through (a cluster's node client)."""
        return slot_client(self.client, key) if is_cluster(self.client) else self.client

    def refresh(self) -> None:
        refresh_slots(self.client)

    def holding(self) -> contextlib.AbstractContextManager[None]:
        """Within it, this thread's script calls use one connection it holds (a processor slot
        holds one for life; any thread that calls often gets one anyway: see ``Holder``)."""
        return self._holder.hold()

    def close(self) -> None:
        self._holder.close()


# --- a processor's slots and heartbeat ------------------------------------------------------------


class Workers:
    """A processor's threads: its heartbeat and its slots."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def __bool__(self) -> bool:
        return bool(self._threads)

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> None:
        thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float | None) -> bool:
        """Wait for every thread (up to ``timeout`` s in all): True when all ended in time. A
        thread still running a task is left to finish unseen (a thread cannot be stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = True
        for t in self._threads:
            t.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            finished = finished and not t.is_alive()
        self._threads = []
        return finished

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)


class Runners:
    """Run a slot's started tasks one after another: in the slot's thread (pool "thread"; a
    timeout cannot stop a Python call in a thread: reap ends the attempt and marks the slot
    stuck, so that it is offered no work, and the late ack is stale and frees it), or in a
    child process of the slot's own (pool "process", killed at the timeout)."""

    def __init__(self, registry: Registry, options: ProcessorOptions) -> None:
        self.registry = registry
        self.app = options.app if options.pool == "process" else None
        self._pools: dict[str, ProcessRunner] = {}

    def run(self, tasks: list[Started], pid: str, slot: str,
            facts: list[tracing.Facts] | None = None) -> list[tuple[str, str, float]]:
        """One (outcome, payload, seconds) per task, in order; each in its trace span when
        ``facts`` (luasched.tracing) are given."""
        return [self._timed(task, pid, slot, facts[i] if facts else None) for i, task in enumerate(tasks)]

    def _timed(self, task: Started, pid: str, slot: str, facts: tracing.Facts | None) -> tuple[str, str, float]:
        began = time.monotonic()
        with tracing.consumer_span(task, pid, facts) as ended:
            if self.app is None:
                outcome, payload = execute(self.registry, task, pid,
                                           ctrl_c_stops=threading.current_thread() is threading.main_thread())
            else:
                pool = self._pools.get(slot)
                if pool is None:
                    pool = self._pools[slot] = ProcessRunner(self.app)
                outcome, payload = pool.run(task, pid)
            ended(outcome, payload)
        return outcome, payload, time.monotonic() - began

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
