"""Processor runtime: register, heartbeat, run the inbox, ack each task."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import ops
from .errors import ConnectionLost, UnknownTask
from .tasks import (
    MAX_CAPACITY,
    Registry,
    TaskInfo,
    _current,
    check_int,
    check_queue,
    decode_args,
    encode_error,
    encode_result,
    new_request_id,
    seconds,
    to_ms,
)

if TYPE_CHECKING:
    from .scheduler import Base, Scheduler

log = logging.getLogger("luasched.processor")

#: How long an idle slot blocks on its wake-up list before looking at its stop flag again.
SLOT_WAIT_S = 2.0


def execute(registry: Registry, task: ops.Started, pid: str) -> tuple[str, str]:
    """Run one started task in this thread: ("done", result JSON) or ("error", error JSON).
    A name with no registered function fails the task with a clear UnknownTask error."""
    spec = registry.get(task.name)
    token = _current.set(TaskInfo(task.id, task.name, task.attempt, pid))
    try:
        if spec is None:
            known = ", ".join(registry.names()) or "none"
            raise UnknownTask(f"no task named {task.name!r} is registered in this processor "
                              f"(registered: {known})")
        args, kwargs = decode_args(task.args_json)
        value = spec.fn(*args, **kwargs)
        return "done", encode_result(task.name, value)
    except Exception as exc:  # the task's failure is data, reported to Redis
        return "error", encode_error(exc)
    finally:
        _current.reset(token)


class Runner(Protocol):
    """Runs started tasks for one slot: ("done", result JSON) or ("error", error JSON)."""

    def run(self, task: ops.Started, pid: str) -> tuple[str, str]: ...

    def close(self) -> None: ...


class ThreadRunner:
    """The default pool: each task runs in its slot's thread. A timeout cannot stop a Python call
    in a thread: reap ends the attempt (its late ack is stale) while the call finishes unseen."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def run(self, task: ops.Started, pid: str) -> tuple[str, str]:
        return execute(self.registry, task, pid)

    def close(self) -> None:
        pass


POOLS = ("thread", "process")


def new_processor_id(name: str | None) -> str:
    base = name or socket.gethostname().split(".")[0] or "processor"
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in base)[:40]
    return f"{safe}-{os.getpid()}-{new_request_id()[:6]}"


@dataclass(frozen=True)
class Send:
    """Slot step: send this call (retrying through connection loss while running)."""

    call: ops.Call


@dataclass(frozen=True)
class Run:
    """Slot step: run these started tasks (one after another, or at once where the runtime can);
    the reply is one (outcome, payload, seconds) per task, in order."""

    tasks: list[ops.Started]
    pid: str
    slot: str


@dataclass(frozen=True)
class Wait:
    """Slot step: nothing to run; block on the processor's wake list for a while, then send a
    start — both in one round trip where the server keeps the time, so that the server starts the
    task the moment the wake-up arrives. The reply is the start's. With ``ack`` (the ack of the
    tasks the slot just ran, asking for no next task) that is sent first, in the same round trip,
    and the reply is ``(ack reply, start reply)``: one round trip per task when the next task
    comes from a scheduler (every assignment pushes a token on the wake list)."""

    pid: str
    slot: str
    ack: ops.Call | None = None


@dataclass(frozen=True)
class Recover:
    """Slot step: the lease of ``pid`` was lost; register again under a new id."""

    pid: str


SlotStep = Send | Run | Wait | Recover
SlotFlow = Generator[SlotStep, Any, int]


class ProcessorBase:
    """What the threaded and the asyncio processors share: settings, identity, and the pure
    decisions of the slot loop (what to ask for next, what to log, which call to send)."""

    def __init__(self, sched: Base, *, capacity: int = 1, queues: Sequence[str] = ("default",),
                 lease: float = 10.0, name: str | None = None, take_next: bool = False,
                 pool: str = "thread", app: str | None = None, log_tasks: bool = False,
                 batch: bool = False, dispatch_on_ack: bool = False) -> None:
        check_int(capacity, "capacity", 1, MAX_CAPACITY)
        if not isinstance(batch, bool):
            raise TypeError("batch must be a bool")
        if isinstance(queues, str) or not isinstance(queues, Sequence):
            raise TypeError("queues must be a sequence of queue names, e.g. ('default',)")
        if not queues:
            raise ValueError("queues must name at least one queue")
        for q in queues:
            check_queue(q, "queue name")
        lease_s = seconds(lease, "lease", minimum=0.001) or 0.0
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not isinstance(take_next, bool):
            raise TypeError("take_next must be a bool")
        if not isinstance(dispatch_on_ack, bool):
            raise TypeError("dispatch_on_ack must be a bool")
        if take_next and dispatch_on_ack:
            raise ValueError("take_next and dispatch_on_ack exclude each other: a take-next processor "
                             "takes its queues' heads itself, bypassing the least-loaded choice that "
                             "dispatch_on_ack keeps")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {pool!r}")
        if pool == "process" and not app:
            raise ValueError("pool='process' needs app='module:attribute' naming the Scheduler, "
                             "so that each child process can import the tasks")
        self.base = sched
        self.capacity = capacity
        self.queues = tuple(dict.fromkeys(queues))
        self.lease = lease_s
        self.name = name or ""
        self.take_next = take_next
        self.dispatch_on_ack = dispatch_on_ack
        self.pool = pool
        self.app = app
        self.log_tasks = log_tasks
        self.batch = batch
        self._id = new_processor_id(name)
        self.processed = 0

    def __repr__(self) -> str:
        return f"<Processor {self.id} capacity={self.capacity} queues={','.join(self.queues)}>"

    @property
    def id(self) -> str:
        return self._id

    @property
    def ns(self) -> ops.Namespace:
        return self.base.ns

    def _now(self) -> int | None:
        return self.base.now_ms()

    def _register_call(self) -> ops.Call:
        return ops.register(self.ns, self._now(), self.id, self.capacity, to_ms(self.lease),
                            self.queues, self.name)

    @property
    def slots(self) -> int:
        """How many slots run at once: one per unit of capacity, or one batch slot."""
        return 1 if self.batch else self.capacity

    @property
    def _want(self) -> int:
        """How many tasks one slot starts per call."""
        return self.capacity if self.batch else 1

    def _start_call(self, pid: str, slot: str) -> ops.Call:
        return ops.start(self.ns, self._now(), pid, slot, new_request_id(), self._want)

    def _ack_call(self, pid: str, slot: str, finished: list[ops.Finished], by_hand: bool,
                  stopping: bool, waiting: bool = False) -> ops.Call:
        """The ack of finished tasks, asking for the next ones unless the processor is stopping
        (by hand: the next inbox tasks; running: the inbox's, or in take-next mode the queues').
        ``waiting``: the slot waits on its wake list next (fed by a scheduler). With
        ``dispatch_on_ack`` the ack fills the slots it freed from the queues itself, then starts
        from the inbox unless the slot waits next (the wake-up it was pushed then starts it)."""
        want = self._want
        if by_hand:
            next_mode = ops.NEXT_INBOX
        elif self.dispatch_on_ack and not stopping:
            next_mode, want = ops.NEXT_PLACE, 0 if waiting else want
        elif stopping or waiting:
            next_mode = ops.NEXT_NONE
        else:
            next_mode = ops.NEXT_TAKE if self.take_next else ops.NEXT_INBOX
        return ops.ack_many(self.ns, self._now(), pid, slot, new_request_id(), finished, next_mode, want)

    def _done(self, task: ops.Started, outcome: str, status: str, seconds: float) -> None:
        self.processed += 1
        if self.log_tasks:
            log.info("task %s %s attempt %d: %s in %.3f s", task.id, task.name, task.attempt,
                     status if status != "stale" else f"{outcome}, but stale (attempt ended)", seconds)

    def _slot_flow(self, slot: str, stopping: Callable[[], bool] | None) -> SlotFlow:
        """The loop of one slot, sans I/O: it yields what to do (send a call, run a task, block
        on the wake list, recover a lost lease) and receives the result; the threaded and the
        asyncio runtimes drive it. ``stopping`` None means by hand: run what the inbox holds now,
        then return how many ran."""
        ran = 0
        pid = self.id
        tasks: list[ops.Started] = []
        idle = False  # the last start or ack found the inbox empty: wait before starting again
        # dispatch on ack: the last ack left tasks queued, so the next one goes alone, places and
        # starts (one script, no BLPOP, no start call); else it rides the wake-up pipeline
        backlog = False
        answered: Any = None  # the reply of a start already sent (with the last ack)
        while True:
            if not tasks:
                if answered is None:
                    if stopping is not None and stopping():
                        return ran
                    pid = self.id
                    answered = yield Wait(pid, slot) if idle else Send(self._start_call(pid, slot))
                reply, answered, idle = ops.decode_start(answered), None, False
                if reply.status == "task":
                    tasks = reply.tasks
                elif reply.status == "lost" and stopping is not None:
                    yield Recover(pid)
                    continue
                elif stopping is None:
                    return ran
                else:
                    idle = True
                    continue
            results = yield Run(tasks, pid, slot)
            ran += len(tasks)
            finished = [(task, outcome, payload) for task, (outcome, payload, _) in zip(tasks, results, strict=True)]
            stop_now = stopping is not None and stopping()
            # Fed by a scheduler (not take-next, not by hand): ack, wait and start in one round trip.
            wait_next = (stopping is not None and not stop_now and not self.take_next
                         and not (self.dispatch_on_ack and backlog))
            call = self._ack_call(pid, slot, finished, by_hand=stopping is None, stopping=stop_now,
                                  waiting=wait_next)
            if wait_next:
                acked, answered = yield Wait(pid, slot, call)
            else:
                acked = yield Send(call)
            ack = ops.decode_ack(acked)
            for task, (outcome, _, took_s), status in zip(tasks, results, ack.statuses, strict=True):
                self._done(task, outcome, status, took_s)
            tasks, backlog = ack.started, ack.more
            idle = not tasks and stopping is not None and not stopping()

    def _new_id(self, lost_pid: str) -> bool:
        """Take a new id after losing the lease of ``lost_pid``; False if another slot already did."""
        if self._id != lost_pid:
            return False
        self._id = new_processor_id(self.name or None)
        log.warning("processor %s lost its lease; registering again as %s", lost_pid, self._id)
        return True


class Processor(ProcessorBase):
    """A worker that registers with a capacity and queues, keeps a lease, and runs its inbox.

    Use it by hand (``register``, ``process_available``, ``heartbeat``, ``deregister``), or
    ``start()`` it: one heartbeat thread plus ``capacity`` slot threads fed from its inbox, each
    blocking on the processor's wake-up list when there is nothing to run.
    """

    def __init__(self, sched: Scheduler, *, capacity: int = 1, queues: Sequence[str] = ("default",),
                 lease: float = 10.0, name: str | None = None, take_next: bool = False,
                 pool: str = "thread", app: str | None = None, log_tasks: bool = False,
                 batch: bool = False, dispatch_on_ack: bool = False) -> None:
        super().__init__(sched, capacity=capacity, queues=queues, lease=lease, name=name,
                         take_next=take_next, pool=pool, app=app, log_tasks=log_tasks, batch=batch,
                         dispatch_on_ack=dispatch_on_ack)
        self.sched = sched
        self._runners: dict[str, Runner] = {}
        self._id_lock = threading.Lock()
        self._stop = threading.Event()
        self._halt = threading.Event()  # stop now: no more retries either
        self._threads: list[threading.Thread] = []

    # --- by hand -----------------------------------------------------------------------------

    def register(self) -> bool:
        """Join the namespace. True when registered; False when this id's lease lapsed and reap has
        not yet taken its inbox back (the runtime then registers again under a new id)."""
        return ops.decode_register(self.sched.call(self._register_call()))

    def heartbeat(self) -> bool:
        """Renew the lease. False when it is lost (lapsed, reaped, deregistered, never registered)."""
        return ops.decode_heartbeat(self.sched.call(ops.heartbeat(self.ns, self._now(), self.id)))

    def deregister(self) -> list[str]:
        """Leave; the inbox goes back to the queues. Returns the ids given back (none if unknown)."""
        call = ops.deregister(self.ns, self._now(), self.id, new_request_id())
        return ops.decode_deregister(self.sched.call(call)) or []

    def process_available(self) -> int:
        """Run, in this thread, every task now in the inbox; ack each. Returns how many ran.
        Tasks this processor no longer owns are not run; a stale ack is not an error."""
        return self._run_slot("x", stop=None)

    # --- the loop shared by process_available and the slot threads --------------------------

    def _run_slot(self, slot: str, stop: threading.Event | None) -> int:
        flow = self._slot_flow(slot, None if stop is None else stop.is_set)
        reply: Any = None
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as done:
                return int(done.value)
            reply = None
            if isinstance(step, Send):
                reply = self._send(step.call, stop)
            elif isinstance(step, Run):
                reply = [self._timed(self._runner(step.slot), task, step.pid) for task in step.tasks]
            elif isinstance(step, Wait):
                assert stop is not None
                reply = self._wait(step, stop)
            else:
                self._recover(step.pid)

    @staticmethod
    def _timed(runner: Runner, task: ops.Started, pid: str) -> tuple[str, str, float]:
        began = time.monotonic()
        outcome, payload = runner.run(task, pid)
        return outcome, payload, time.monotonic() - began

    def _runner(self, slot: str) -> Runner:
        runner = self._runners.get(slot)
        if runner is None:
            if self.pool == "process":
                from .pool import ProcessRunner

                runner = ProcessRunner(str(self.app))
            else:
                runner = ThreadRunner(self.sched.registry)
            self._runners[slot] = runner
        return runner

    def _send(self, call: ops.Call, stop: threading.Event | None) -> Any:
        """Send a call; in the threaded runtime, retry it through connection loss. Every call
        carries its request id, so a retry of one that did run answers as the first did."""
        delay = ops.RETRY_FIRST_S
        while True:
            try:
                return self.sched.call(call)
            except ConnectionLost:
                if stop is None or self._halt.is_set():
                    raise
                log.warning("processor %s: Redis unreachable, retrying %s in %.2f s", self.id,
                            call.script, delay)
                time.sleep(delay)
                delay = min(delay * 2, ops.RETRY_MAX_S)

    def _wait(self, step: Wait, stop: threading.Event) -> Any:
        wake, wait_s = self.ns.keys.processor_wake(step.pid), min(SLOT_WAIT_S, self.sched.block_s)
        if self.sched.clock is not None:  # the start carries the client's time: made after the wait
            acked = self._send(step.ack, stop) if step.ack is not None else None
            try:
                self.sched.execute(ops.Command("blpop", ([wake], wait_s)))
            except ConnectionLost:
                stop.wait(0.5)
            started = self._send(self._start_call(step.pid, step.slot), stop)
            return started if step.ack is None else (acked, started)
        call = self._start_call(step.pid, step.slot)
        try:  # the script reads the server's time when it runs
            return self.sched.call_after_wake(wake, wait_s, call, before=step.ack)
        except ConnectionLost:  # replay-safe: the same calls answer as they did if they ran
            stop.wait(0.5)
            if step.ack is None:
                return self._send(call, stop)
            return self._send(step.ack, stop), self._send(call, stop)

    def _recover(self, lost_pid: str) -> None:
        """The lease was lost (we were cut off, or too slow to heartbeat): join again, new id."""
        with self._id_lock:
            if not self._new_id(lost_pid):
                return
        self.register()
        self._wake_slots(lost_pid)  # slots blocked on the old id's wake list move to the new one

    def _wake_slots(self, pid: str) -> None:
        key = self.ns.keys.processor_wake(pid)
        try:
            pipe = self.sched.client.pipeline(transaction=False)
            pipe.rpush(key, *["wake"] * self.capacity)
            pipe.expire(key, 60)
            pipe.execute()
        except Exception as exc:  # a courtesy: slots also wake by themselves within SLOT_WAIT_S
            log.debug("processor %s: could not wake its slots: %s", self.id, exc)

    # --- threads -----------------------------------------------------------------------------

    def start(self) -> None:
        """Register and run in the background: a heartbeat thread and ``capacity`` slots."""
        if self._threads:
            raise RuntimeError(f"processor {self.id} is already started")
        self._stop.clear()
        self._halt.clear()
        if not self.register():
            self._recover(self.id)
        self._threads = [threading.Thread(target=self._heartbeats, name=f"{self.id}-heartbeat",
                                          daemon=True)]
        self._threads += [
            threading.Thread(target=self._slot, args=(str(i),), name=f"{self.id}-slot{i}", daemon=True)
            for i in range(self.slots)
        ]
        for t in self._threads:
            t.start()

    def _slot(self, slot: str) -> None:
        """A slot thread: the shared loop, kept alive through anything but a halt. Its script
        calls go over one connection it holds for its whole life (one per task otherwise)."""
        with self.sched._holding():
            self._slot_loop(slot)

    def _slot_loop(self, slot: str) -> None:
        while not self._stop.is_set():
            try:
                self._run_slot(slot, self._stop)
            except ConnectionLost:
                if self._halt.is_set():
                    return
            except Exception:  # a bug must not silently kill the slot: log it, carry on
                log.exception("processor %s slot %s failed; carrying on", self.id, slot)
                self._stop.wait(1.0)

    def _heartbeats(self) -> None:
        interval = max(self.lease / 3, 0.001)
        while not self._stop.wait(interval):
            try:
                if not self.heartbeat():
                    self._recover(self.id)
            except ConnectionLost as exc:
                log.warning("processor %s: heartbeat failed: %s", self.id, exc)

    def stop(self, timeout: float | None = None) -> bool:
        """Take no new task, let running ones finish (up to ``timeout`` s), then deregister: the
        unstarted inbox goes back to the queues. True when every slot finished in time."""
        if not self._threads:
            self._close_runners()
            return True
        self._stop.set()
        self._wake_slots(self.id)
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = True
        for t in self._threads:
            t.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            finished = finished and not t.is_alive()
        self._threads = []
        self._close_runners()
        try:
            self.deregister()
        except ConnectionLost as exc:  # the lease will lapse and reap gives the inbox back
            log.warning("processor %s could not deregister: %s", self.id, exc)
        return finished

    def _close_runners(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()

    def halt(self) -> None:
        """Stop at once: no new task, no more retries; running tasks are left to the lease."""
        self._halt.set()
        self._stop.set()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)


__all__ = ["Processor", "execute"]
