"""A processor's pure part, shared by the threaded and the asyncio runtimes: its settings and
identity, the calls it sends, and the loop of one slot as a flow of steps (send a call, run
tasks, block on the wake-up list, recover a lost lease) that each runtime drives."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from . import logs, ops
from .base import SchedulerBase
from .kinds import Label, check_labels, kind_of
from .options import ProcessorOptions, to_ms
from .tasks import Started, new_request_id

log = logging.getLogger("luasched.processor")

#: How long an idle slot blocks on its wake-up list before looking at its stop flag again.
SLOT_WAIT_S = 2.0


def default_processor_name() -> str:
    """What a processor is called when it is not named: its host and its process id."""
    return f"{socket.gethostname().split('.')[0] or 'processor'}-{os.getpid()}"


def new_processor_id(name: str | None) -> str:
    """A new id: the name (made safe), the process id, and 6 random characters."""
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

    tasks: list[Started]
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


class ProcessorCore:
    """What the threaded and the asyncio processors share: settings, identity, and the pure
    decisions of the slot loop (what to ask for next, what to log, which call to send)."""

    def __init__(self, sched: SchedulerBase, options: ProcessorOptions) -> None:
        self.base = sched
        self.options = options
        self._id = new_processor_id(options.name)
        self.processed = 0
        self._want = options.want  # how many tasks one slot starts per call (read per task)
        self._labels = dict(options.labels)  # as set_labels last set them

    @property
    def capacity(self) -> int:
        return self.options.capacity

    @property
    def queues(self) -> tuple[str, ...]:
        return self.options.queues

    @property
    def lease(self) -> float:
        """The lease in seconds (a heartbeat every third of it)."""
        return self.options.lease_s

    @property
    def name(self) -> str:
        """As given, or its host and process id."""
        return self.options.name or default_processor_name()

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

    @property
    def labels(self) -> dict[str, Label]:
        """What it registers as being or having (``set_labels`` changes them)."""
        return dict(self._labels)

    @property
    def kind(self) -> str:
        """Its kind's id (core/kinds): processors with the same task names and labels share it."""
        return self._kind()[0]

    def _kind(self) -> tuple[str, str]:
        """Its kind (core/kinds): the names of the tasks its Scheduler knows, and its labels."""
        return kind_of(self.base.registry.names(), self._labels)

    def _register_call(self) -> ops.Call:
        return ops.register(self.ns, self._now(), self.id, self.capacity, to_ms(self.lease),
                            self.queues, self.name, to_ms(self.options.default_timeout_s), self._kind())

    def _relabel_call(self, labels: object) -> ops.Call:
        """Checks ``labels`` and keeps them (a later registration uses them), then the call."""
        self._labels = check_labels(labels)
        return ops.relabel(self.ns, self._now(), self.id, self._kind())

    @property
    def slots(self) -> int:
        """How many slots run at once: one per unit of capacity, or one batch slot."""
        return self.options.slots


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
        elif self.options.dispatch_on_ack and not stopping:
            next_mode, want = ops.NEXT_PLACE, 0 if waiting else want
        elif stopping or waiting:
            next_mode = ops.NEXT_NONE
        else:
            next_mode = ops.NEXT_TAKE if self.options.take_next else ops.NEXT_INBOX
        return ops.ack_many(self.ns, self._now(), pid, slot, new_request_id(), finished, next_mode, want)

    def _slot_flow(self, slot: str, stopping: Callable[[], bool] | None) -> SlotFlow:
        """The loop of one slot, sans I/O: it yields what to do (send a call, run a task, block
        on the wake list, recover a lost lease) and receives the result; the threaded and the
        asyncio runtimes drive it. ``stopping`` None means by hand: run what the inbox holds now,
        then return how many ran."""
        ran = 0
        pid = self.id
        tasks: list[Started] = []
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
            self.processed += len(tasks)
            finished: list[ops.Finished] = []
            failed = False
            for task, (outcome, payload, took_s) in zip(tasks, results, strict=True):
                finished.append((task, outcome, payload))
                if outcome != "done":
                    failed = True
                elif self.options.log_tasks:  # now, not once the ack's reply is back
                    logs.attempt_done(task, took_s, pid)
            stop_now = stopping is not None and stopping()
            # Fed by a scheduler (not take-next, not by hand): ack, wait and start in one round trip.
            # Not after a failure: what its line says (when the retry comes, or a dead letter) is in
            # the ack's reply, which must not wait behind the BLPOP.
            wait_next = (stopping is not None and not stop_now and not self.options.take_next
                         and not (self.options.dispatch_on_ack and backlog) and not failed)
            call = self._ack_call(pid, slot, finished, by_hand=stopping is None, stopping=stop_now,
                                  waiting=wait_next)
            if wait_next:
                acked, answered = yield Wait(pid, slot, call)
                more = ops.ack_quiet(acked)
                if more is not None:  # nothing to log, nothing started: on to the task the wake-up brought
                    tasks, backlog = [], more
                    continue
            else:
                acked = yield Send(call)
            ack = ops.decode_ack(acked)
            if failed or "stale" in ack.statuses:
                logs.acked(tasks, results, ack.statuses, ack.ended, pid)
            tasks, backlog = ack.started, ack.more
            idle = not tasks and stopping is not None and not stopping()

    def _new_id(self, lost_pid: str) -> bool:
        """Take a new id after losing the lease of ``lost_pid``; False if another slot already did."""
        if self._id != lost_pid:
            return False
        self._id = new_processor_id(self.name or None)
        log.warning("processor %s lost its lease; registering again as %s", lost_pid, self._id)
        return True
