"""The processor runtime: register, heartbeat, run the inbox, ack each task, recover a lost lease.

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
The slot loop itself is pure (``core.slots``); this module drives it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .. import tracing
from .._backends import aio as backend
from ..core import ops
from ..core.faults import Backoff, Episode
from ..core.options import ProcessorOptions
from ..core.slots import SLOT_WAIT_S, ProcessorCore, Run, Send, Wait
from ..core.tasks import new_request_id
from ..errors import TRANSIENT, LuaschedError, UnsupportedServer

if TYPE_CHECKING:
    from .scheduler import Scheduler

log = logging.getLogger("luasched.processor")

#: How long a stop waits, after killing a process pool's children at its timeout, for their slots
#: to ack the attempts that died with them.
KILLED_ACK_S = 5.0


class Processor(ProcessorCore):
    """A worker that registers with a capacity and queues, keeps a lease, and runs its inbox.

    Use it by hand (``register``, ``process_available``, ``heartbeat``, ``deregister``), or
    ``start()`` it: a heartbeat and ``capacity`` slots fed from its inbox (threads, or tasks on
    the event loop), each blocking on the processor's wake-up list when there is nothing to run.
    ``Scheduler.processor`` makes one; the options are ``core.options.ProcessorOptions``.
    """

    def __init__(self, sched: Scheduler, options: ProcessorOptions | None = None, /, **kwargs: Any) -> None:
        super().__init__(sched, options if options is not None else ProcessorOptions.make(**kwargs))
        self.sched = sched
        self._runners = backend.Runners(sched.registry, self.options)
        self._workers = backend.Workers()  # the heartbeat and the slots
        self._duties = backend.Workers()  # the scheduler loop, when it runs one
        self._id_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._halted = False  # stop now: no more retries either
        self._fault = Episode(log)  # a lost Redis or a refusal, logged once per episode

    # --- by hand -----------------------------------------------------------------------------

    async def register(self) -> bool:
        """Join the namespace. True when registered; False when this id's lease lapsed and reap has
        not yet taken its inbox back (the runtime then registers again under a new id)."""
        return ops.decode_register(await self.sched.call(self._register_call()))

    async def heartbeat(self) -> bool:
        """Renew the lease. False when it is lost (lapsed, reaped, deregistered, never registered)."""
        return ops.decode_heartbeat(await self.sched.call(ops.heartbeat(self.ns, self._now(), self.id)))

    async def deregister(self) -> list[str]:
        """Leave; the inbox goes back to the queues. Returns the ids given back (none if unknown)."""
        call = ops.deregister(self.ns, self._now(), self.id, new_request_id())
        return ops.decode_deregister(await self.sched.call(call)) or []

    async def set_labels(self, labels: dict[str, Any]) -> bool:
        """Change its labels (checked as at ``Scheduler.processor``), while it runs or before: it
        leaves its kind for the one of its new labels, and the next placement sees the change.
        True when the registry took them; False when it is not registered (its next registration
        carries them, as does the one after a lapsed lease)."""
        return ops.decode_register(await self.sched.call(self._relabel_call(labels)))

    async def process_available(self) -> int:
        """Run every task now in the inbox, ack each; returns how many ran. Tasks this processor
        no longer owns are not run; a stale ack is not an error."""
        return await self._run_slot("x", stop=None)

    # --- the loop shared by process_available and the slots --------------------------------

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
            elif isinstance(step, Run):
                facts = tracing.decode_read(await self.sched.execute(tracing.read(self.ns, step.tasks)), step.tasks) \
                    if tracing.active() else None  # what each attempt's span needs: one read, when tracing
                reply = await self._runners.run(step.tasks, step.pid, step.slot, facts)
            elif isinstance(step, Wait):
                assert stop is not None
                reply = await self._wait(step, stop)
            else:
                await self._recover(step.pid)

    async def _send(self, call: ops.Call, stop: asyncio.Event | None) -> Any:
        """Send a call; while running, retry it through a lost connection or a refusal that
        passes (OOM, BUSY, MISCONF, LOADING, READONLY). Every call carries its request id, so a
        retry of one that did run answers as the first did. An ack is retried whatever the error,
        until it lands or answers that the attempt is over (stale): a finished task is never left
        running."""
        retry: Backoff | None = None  # made on the first failure: the hot path makes nothing
        while True:
            try:
                reply = await self.sched.call(call)
            except LuaschedError as exc:
                if (stop is None or self._halted
                        or not (isinstance(exc, TRANSIENT) or call.script == "ack")):
                    raise
                retry = retry or Backoff()
                self._fault.failed(f"processor {self.id}", exc)
                await backend.sleep(retry.next())
                continue
            if self._fault.since is not None:
                self._fault.recovered(f"processor {self.id}")
            return reply

    async def _wait(self, step: Wait, stop: asyncio.Event) -> Any:
        """Block on the wake-up list, then start, in one round trip (after the ack, if any)."""
        wake, wait_s = self.ns.keys.processor_wake(step.pid), min(SLOT_WAIT_S, self.sched.block_s)
        if self.sched.clock is not None:  # the start carries the client's time: made after the wait
            acked = await self._send(step.ack, stop) if step.ack is not None else None
            try:
                await self.sched.execute(ops.Command("blpop", ([wake], wait_s)))
            except TRANSIENT as exc:
                self._fault.failed(f"processor {self.id}", exc)
                await backend.wait(stop, 0.5)
            started = await self._send(self._start_call(step.pid, step.slot), stop)
            return started if step.ack is None else (acked, started)
        call = self._start_call(step.pid, step.slot)
        try:  # the script reads the server's time when it runs
            return await self.sched.call_after_wake(wake, wait_s, call, before=step.ack)
        except TRANSIENT as exc:  # replay-safe: the same calls answer as they did if they ran
            self._fault.failed(f"processor {self.id}", exc)
            await backend.wait(stop, 0.5)
            if step.ack is None:
                return await self._send(call, stop)
            return await self._send(step.ack, stop), await self._send(call, stop)

    async def _recover(self, lost_pid: str) -> None:
        """The lease of ``lost_pid`` was lost (we were cut off, or too slow to heartbeat): join
        again under a new id. Serialised in the process: of the slots and the heartbeat that
        learn of the loss at once, the first takes the new id and registers it, the others find
        the id already changed and do nothing; so a processor never has two registrations."""
        async with self._id_lock:
            if not self._new_id(lost_pid):
                return
            await self.register()
        await self._wake_slots(lost_pid)  # slots blocked on the old id's wake list move to the new one

    async def _wake_slots(self, pid: str) -> None:
        key = self.ns.keys.processor_wake(pid)
        try:
            pipe = self.sched.client.pipeline(transaction=False)
            pipe.rpush(key, *["wake"] * self.capacity)
            pipe.expire(key, 60)
            await pipe.execute()
        except Exception as exc:  # a courtesy: slots also wake by themselves within SLOT_WAIT_S
            log.debug("processor %s: could not wake its slots: %s", self.id, exc)

    # --- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register and run in the background: a heartbeat, ``capacity`` slots (one slot with
        ``batch``) and, unless ``scheduler=False``, a scheduler loop: the scheduler's duties."""
        if self._workers:
            raise RuntimeError(f"processor {self.id} is already started")
        self._stop.clear()
        self._halted = False
        if not await self._join():
            await self._recover(self.id)
        try:  # once Redis answers: a server it cannot run on is refused, and left as found
            await self.sched.check_server(f"processor {self.name}")
        except UnsupportedServer:
            await self.deregister()
            raise
        await self.sched.check_eviction(f"processor {self.id}")
        self._workers.spawn(self._heartbeats, name=f"{self.id}-heartbeat")
        for i in range(self.slots):
            self._workers.spawn(self._slot, str(i), name=f"{self.id}-slot{i}")
        if self.options.scheduler:
            self._duties.spawn(self._scheduler_duties, name=f"{self.id}-scheduler")

    async def _join(self) -> bool:
        """Register, waiting for Redis while it refuses connections, is loading or refuses writes
        (``connect_timeout``); the reply of ``register``."""
        return await self.sched.patiently(  # type: ignore[no-any-return]
            log, f"processor {self.id}", self.options.connect_timeout_s, self.register)

    async def _scheduler_duties(self) -> None:
        await self.sched.run(self._stop, summary_every=self.options.summary_every_s)

    async def _slot(self, slot: str) -> None:
        """A slot: the shared loop, kept alive through anything but a halt. Its script calls go
        over one connection it holds for its whole life where the front end holds connections."""
        with self.sched._wire.holding():
            while not self._stop.is_set():
                try:
                    await self._run_slot(slot, self._stop)
                except TRANSIENT:
                    if self._halted:
                        return
                except Exception:  # a bug must not silently kill the slot: log it, carry on
                    log.exception("processor %s slot %s failed; carrying on", self.id, slot)
                    await backend.wait(self._stop, 1.0)

    async def _heartbeats(self) -> None:
        """Renew the lease every third of it, through anything: a lost Redis or a refusal is
        logged once per episode, a bug is logged and the next beat tried. If this loop ends while
        the processor runs, the processor stops its slots (and its lease lapses, giving its inbox
        back) rather than hold tasks it no longer vouches for."""
        interval = max(self.lease / 3, 0.001)
        try:
            while not await backend.wait(self._stop, interval):
                pid = self.id  # the id this beat renews: a slot may take a new one meanwhile
                try:
                    if not ops.decode_heartbeat(await self.sched.call(ops.heartbeat(self.ns, self._now(), pid))):
                        await self._recover(pid)
                except TRANSIENT as exc:
                    self._fault.failed(f"processor {self.id}", exc, "renewing its lease again in "
                                       f"{interval:.2f} s; the lease lasts {self.lease:g} s")
                    continue
                except Exception:  # a bug: keep the lease alive, say so
                    log.exception("processor %s: heartbeat failed; next one in %.2f s", self.id, interval)
                    continue
                if self._fault.since is not None:  # heartbeat runs out of memory (scripts.FLAGS): not OOM's end
                    self._fault.recovered(f"processor {self.id}", immune="oom")
        finally:
            if not self._stop.is_set():
                log.error("processor %s: its heartbeat stopped; stopping its slots, the lease gives "
                          "its inbox back", self.id)
                self.halt()

    async def stop(self, timeout: float | None = None) -> bool:
        """Take no new task, let running ones finish (up to ``timeout`` s: then the asyncio ones
        are cancelled, and one that ignores it is left running, as a thread's is left to finish
        unseen), then deregister: the unstarted inbox goes back to the queues. True when every
        slot finished in time."""
        if not self._workers:
            await self._runners.close()
            return True
        self._stop.set()
        await self._wake_slots(self.id)
        if self._duties:
            await self._wake_loops()
        finished = await self._workers.join(timeout)
        if self._duties:
            await self._duties.join(None)  # it sees the stop flag within the loop's max_wait
        await self._runners.close()
        if not finished and self.options.pool == "process":
            # close() killed the children still running: let their slots ack ProcessDied before
            # deregistering gives the tasks back (else the attempt reads "lease lost")
            await self._workers.join(KILLED_ACK_S)
        try:
            await self.deregister()
        except TRANSIENT as exc:  # the lease will lapse and reap gives the inbox back
            log.warning("processor %s could not deregister: %s", self.id, exc)
        return finished

    def halt(self) -> None:
        """Stop at once: no new task, no more retries; running tasks are left to the lease."""
        self._halted = True
        self._stop.set()

    async def _wake_loops(self) -> None:
        try:
            await self.sched.wake()
        except TRANSIENT as exc:  # a courtesy: the loop also wakes by itself within a second
            log.debug("processor %s: could not wake its scheduler loop: %s", self.id, exc)

    @property
    def running(self) -> bool:
        return self._workers.running or self._duties.running
