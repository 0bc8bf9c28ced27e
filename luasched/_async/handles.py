"""What a submit gives back: a TaskHandle (one task, by id) and a Group (tasks submitted
together by ``map``, whose results can be gathered).

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from .._backends import aio as backend
from ..core import flows, ops
from ..core.explain import Explanation
from ..core.options import seconds
from ..core.replies import Outcome
from ..core.tasks import new_request_id
from ..core.words import counted
from ..errors import TRANSIENT, ResultTimeout, TaskCancelled, TaskFailed, TaskNotFound
from ..routing import translated

if TYPE_CHECKING:
    from .scheduler import Scheduler


class TaskHandle:
    """A submitted task, by id. ``created`` is False when the submit created nothing: its unique
    key was held by a live task, whose handle this is (core/unique)."""

    __slots__ = ("_sched", "created", "id")

    def __init__(self, sched: Scheduler, task_id: str, *, created: bool = True) -> None:
        self._sched = sched
        self.id = task_id
        self.created = created

    def __repr__(self) -> str:
        return f"<{backend.SHORT}TaskHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id and other._sched is self._sched

    def __hash__(self) -> int:
        return hash(self.id)

    # unasync: @property
    async def state(self) -> str:
        """queued, delayed, assigned, running, done, failed or cancelled (a property of the
        threaded handle; a coroutine method of the asyncio one)."""
        request = ops.state(self._sched.ns, self.id)
        value = await self._sched._send(request, self._sched.reads.reader())
        if value is None and self._sched.reads.split:
            value = await self._sched.execute(request)  # a lagging replica may not have it yet
        if value is None:
            raise TaskNotFound(self.id)
        return str(ops.text(value))

    async def explain(self) -> Explanation:
        """Why the task is where it is now: ``Scheduler.explain`` of its id."""
        return await self._sched.explain(self.id)

    async def outcome(self) -> Outcome:
        """The task's state and, when finished, its result or error (does not wait)."""
        return await self._sched.outcome(self.id)

    async def result(self, timeout: float | None = None, *, cancel_if_abandoned: bool = False) -> Any:
        """Wait for the task to finish and return its value. Raises TaskFailed (with the remote
        error), TaskCancelled, TaskNotFound, or ResultTimeout (a TimeoutError). Waiting is a
        blocking Redis call (BLPOP), not a poll; it rides out a lost connection (a restart, a
        failover, a server loading its data or out of memory) within its timeout. Giving up the
        wait (an interrupt, a cancelled coroutine) stops only the waiting, unless
        ``cancel_if_abandoned``: a wait that times out or is given up then also cancels the task
        if it has not started."""
        if timeout is not None:
            seconds(timeout, "timeout")
        clock = flows.WaitClock(timeout)
        try:
            while True:
                flow = flows.wait_result(self._sched.ns, self.id, clock.left(), self._sched.block_s, timeout)
                try:
                    return (await self._sched.drive(flow)).value()
                except TRANSIENT:  # a lost Redis or a refusal that passes, within the timeout
                    pause = clock.backoff()
                    if pause is None:
                        raise
                    await backend.sleep(pause)
        except (ResultTimeout, backend.ABANDONED):
            if cancel_if_abandoned:
                await backend.shield(self.cancel())
            raise

    @property
    def namespace(self) -> str:
        return self._sched.namespace

    async def then(self, task: Any, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Submit ``task`` to run once this task ends, with its result as the first argument (a
        chain): created at once, ``waiting``, and queued by the script that finishes this task.
        ``_on_failure`` says what happens if this task ends failed or cancelled: "fail" (the
        default: it ends failed with DependencyFailed, without running), "run" (it runs, given
        ``{"error": message, "type": type}``) or "skip" (it ends cancelled). Other keyword
        arguments as ``submit``'s (``_queue``, ``_priority``, ...; no ``_delay``)."""
        return await self._sched._waiting_on(self, task, args, kwargs)

    async def cancel(self) -> bool:
        """Cancel the task if it is waiting, queued, delayed, or assigned and not started: True
        if it was."""
        call = ops.cancel(self._sched.ns, self._sched.now_ms(), self.id, new_request_id())
        return ops.decode_cancel(await self._sched.call(call), self.id)


def handle_for(sched: Scheduler, task_id: str, merged: Mapping[str, tuple[str, str]]) -> TaskHandle:
    """The handle a submit of ``task_id`` answers: its own, or (``merged``, a submit reply's) the
    handle of the live task holding its unique key, ``created`` False."""
    holder = merged.get(task_id)
    return TaskHandle(sched, task_id) if holder is None else TaskHandle(sched, holder[0], created=False)


class Group:
    """Tasks submitted together by ``map``; their results can be gathered. ``ids``: one per item,
    in order; an item whose unique key was held stands as the task holding it, which is no
    member: ``members`` are the tasks the group created (its counters count them)."""

    def __init__(self, sched: Scheduler, group_id: str, ids: list[str], members: list[str] | None = None) -> None:
        self._sched = sched
        self.id = group_id
        self.ids = ids
        self.members = ids if members is None else members

    def __repr__(self) -> str:
        return f"<{backend.SHORT}Group {self.id} of {counted(len(self.ids), 'task')}>"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def namespace(self) -> str:
        return self._sched.namespace

    async def then(self, task: Any, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Submit ``task`` to run once every member has ended, with the members' results in
        submission order as its first argument (a chord): created at once, ``waiting``, and
        queued by the script that finishes the last member, on whichever processor. Options as
        ``TaskHandle.then``'s; with ``_on_failure="run"`` a failed or cancelled member stands in
        the list as ``{"error": message, "type": type}``."""
        return await self._sched._waiting_on(self, task, args, kwargs)

    @property
    def handles(self) -> list[TaskHandle]:
        return [TaskHandle(self._sched, i) for i in self.ids]

    async def as_completed(self, timeout: float | None = None) -> AsyncIterator[Outcome]:
        """Each member's Outcome as it finishes, in finishing order (blocking reads of the group's
        stream on the primary, no polling); then each task that stands for an item but is no member
        (its unique key was held), as it finishes."""
        primary = self._sched.client  # what the stream says finished, the primary has
        clock = flows.WaitClock(timeout)
        if not await self._exists():
            # The group's keys expire ``keep`` after its last member finished: read the members.
            for outcome in await self._sched._outcomes(list(dict.fromkeys(self.members)), primary):
                yield outcome
        else:
            reader = flows.GroupReader(self._sched.ns, self.id, self.members, timeout, self._sched.block_s)
            while not reader.done:
                finished = reader.feed(await self._sched.execute(reader.request()))
                if finished:
                    for outcome in await self._sched._outcomes([task_id for task_id, _ in finished], primary):
                        yield outcome
        members = set(self.members)
        for task_id in dict.fromkeys(t for t in self.ids if t not in members):
            yield await self._sched.drive(flows.wait_result(self._sched.ns, task_id, clock.left(),
                                                            self._sched.block_s, timeout))

    async def results(self, timeout: float | None = None, *, return_exceptions: bool = False) -> list[Any]:
        """Every member's value, in submission order, once all finished. A failed member raises
        its TaskFailed (the first in submission order), unless ``return_exceptions``: then the
        exception stands in the list in its place."""
        async for _ in self.as_completed(timeout):
            pass
        values: list[Any] = []
        for start in range(0, len(self.ids), 1000):
            for outcome in await self._sched._outcomes(self.ids[start:start + 1000], self._sched.client):
                try:
                    values.append(outcome.value())
                except (TaskFailed, TaskCancelled, TaskNotFound) as exc:
                    if not return_exceptions:
                        raise
                    values.append(exc)
        return values

    async def _exists(self) -> bool:
        with translated("group"):
            return bool(await self._sched.client.exists(self._sched.keys.group(self.id)))

    async def progress(self) -> dict[str, int]:
        """total, done, failed, cancelled (and pending) for the group: one read of its counters,
        or, once the group's keys expired, of every member's state (from a replica if set)."""
        with translated("group progress"):
            counters = ops.text(await self._sched.reads.reader().hmget(
                self._sched.keys.group(self.id), *flows.GROUP_COUNTERS))
        states = [o.state for o in await self._sched.outcomes(self.ids)] if counters[0] is None else None
        return flows.group_progress(counters, states)
