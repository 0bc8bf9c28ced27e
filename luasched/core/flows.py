"""Operations of several steps, sans I/O: waiting for a result, following a group, carrying
waiting submits together, and the scheduler loop's turn. Each is a generator that yields
requests and receives replies, or a small object asked what to send next; the front ends drive
them over their transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ResultTimeout
from . import ops
from .audit import AuditCheck
from .fields import GROUP, GROUP_EVENT
from .ops import Command, Namespace, NewTask, Request, decode_result, result, text
from .options import MAX_LIMIT, LoopOptions
from .replies import DispatchReply
from .schedules import check_schedules, listing
from .shapes import stream_entries
from .words import counted

Flow = Generator[Request, Any, Any]


#: How many tasks of a big place one audit call reads: a few ms of server time (bench/audit.py).
AUDIT_SLICE = 500


def audit(ns: Namespace, now_ms: int | None, slice_size: int = AUDIT_SLICE) -> Flow:
    """Audit a namespace in bounded calls; returns an Audit (see core/audit.py for what is checked
    on which call; the schedules last, core/schedules.py). No call reads more than
    ``slice_size`` queued, delayed or failed tasks, so other clients wait at most that long behind
    one, however big the namespace."""
    check = AuditCheck((yield ops.audit(ns, now_ms)))
    for place, queue, _size in check.places:
        start = 0
        while True:
            size, rows = text((yield ops.audit_slice(ns, place, queue, start, slice_size)))
            check.add_slice(place, queue, rows)
            start += len(rows)
            if not rows or start >= int(size):
                break
    if (yield Command("zcard", (ns.keys.schedules,))):  # the schedule index, in one call (if any)
        check_schedules(check.problem, (yield listing(ns, MAX_LIMIT)))
    return check.result()


#: How many dead letters one purge_finished call looks at: ~4.5 ms of server time on Redis 7 (five
#: commands each), about what an audit slice costs; 1000 took ~10 ms. Measured with the script's
#: calls timed on loopback, 20,000 dead letters, 2 shared cores, 2026-12-04.
PURGE_CHUNK = 500


def purge_finished(ns: Namespace, now_ms: int | None, older_than_ms: int, limit: int | None,
                   new_rid: Callable[[], str]) -> Flow:
    """Delete dead letters that failed ``older_than_ms`` or more before now, the oldest first, at
    most ``limit`` (None: all), in calls of PURGE_CHUNK (lua/purge_finished.lua); returns how many
    went. Every call uses the first one's now, so the cutoff holds still while it loops; the
    dead letters a call kept (members of a group not finished) are passed over by the next."""
    deleted, start = 0, 0
    while limit is None or deleted < limit:
        chunk = PURGE_CHUNK if limit is None else min(PURGE_CHUNK, limit - deleted)
        reply = ops.decode_purge_finished((yield ops.purge_finished(ns, now_ms, older_than_ms, start, chunk,
                                                                    new_rid())))
        deleted += reply.purged
        start += reply.skipped
        now_ms = reply.now_ms
        if not reply.more:
            break
    return deleted


def wait_result(ns: Namespace, task_id: str, timeout: float | None, slice_s: float,
                whole: float | None = None) -> Flow:
    """Wait for a task to finish; returns its Outcome. Blocks on BLPOP for at most ``slice_s`` at
    a time (below the client's socket timeout), re-checking the state between slices.

    The waiter flag set by the result script makes the finishing script push a token to
    w:<id>. A waiter that takes the token puts it back (with a TTL) for any other waiter.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    wake = ns.keys.task_wake(task_id)
    while True:
        outcome = decode_result((yield result(ns, task_id, mark=True)), task_id)
        if outcome.finished or outcome.state == "unknown":
            return outcome
        left = slice_s if deadline is None else min(slice_s, deadline - time.monotonic())
        if left <= 0:
            said = timeout if whole is None else whole
            raise ResultTimeout(f"task {task_id} did not finish within {said} s (it is {outcome.state})")
        got = yield Command("blpop", ([wake], max(left, 0.001)))
        if got:
            yield Command("rpush", (wake, "1"))
            yield Command("expire", (wake, 300))


class WaitClock:
    """The time budget of a wait that survives connection loss (a restart, a failover): how
    long is left, and how long to back off before trying again (None: no time left)."""

    def __init__(self, timeout: float | None, first_backoff_s: float = 0.05, max_backoff_s: float = 5.0) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._backoff = first_backoff_s
        self._max = max_backoff_s

    def left(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - time.monotonic(), 0.0)

    def backoff(self) -> float | None:
        pause = self._backoff
        self._backoff = min(self._backoff * 2, self._max)
        left = self.left()
        if left is not None and left <= pause:
            return None
        return pause


class GroupReader:
    """Follows a group's stream (XREAD BLOCK: no polling, any number of readers) and reports each
    member as it finishes, in finishing order. Sans-I/O: ask ``request()``, send it, ``feed()`` the
    reply; repeat until ``done``."""

    def __init__(self, ns: Namespace, group_id: str, task_ids: Sequence[str], timeout: float | None,
                 slice_s: float) -> None:
        self._slice_s = slice_s
        self._stream = ns.keys.group_stream(group_id)
        self._group_id = group_id
        self._want = set(task_ids)
        self._seen: set[str] = set()
        self._last = "0-0"
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    @property
    def done(self) -> bool:
        return len(self._seen) >= len(self._want)

    def request(self) -> Command:
        left = self._slice_s if self._deadline is None else min(self._slice_s, self._deadline - time.monotonic())
        if left <= 0:
            missing = len(self._want) - len(self._seen)
            raise ResultTimeout(f"group {self._group_id}: {missing} of {counted(len(self._want), 'task')} did not "
                                f"finish within {self._timeout} s")
        return Command("xread", ({self._stream: self._last}, 1000, max(int(left * 1000), 1)))

    def feed(self, reply: Any) -> list[tuple[str, str]]:
        """(task id, state) of members newly seen finished."""
        events = []
        for entry_id, f in stream_entries(reply):
            self._last = entry_id
            tid = f.get(GROUP_EVENT.task, "")
            if tid in self._want and tid not in self._seen:
                self._seen.add(tid)
                events.append((tid, f.get(GROUP_EVENT.state, "")))
        return events


#: The fields of a group record that group_progress reads, in its order.
GROUP_COUNTERS = (GROUP.total, GROUP.done, GROUP.failed, GROUP.cancelled)


def group_progress(counters: Sequence[str | None], states: Sequence[str] | None) -> dict[str, int]:
    """A group's total/done/failed/cancelled/pending from its counters (GROUP_COUNTERS), or, once
    its keys expired (no total), from its members' states."""
    n, d, f, c = counters
    if n is None:
        states = states or []
        n, d, f, c = str(len(states)), str(states.count("done")), str(states.count("failed")), \
            str(states.count("cancelled"))
    total, done, failed, cancelled = int(n), int(d or 0), int(f or 0), int(c or 0)
    return {"total": total, "done": done, "failed": failed, "cancelled": cancelled,
            "pending": total - done - failed - cancelled}


#: At most this many one-task submits that waited share one script call (see take_batch).
COALESCE_MAX = 1000

W = TypeVar("W")


def take_batch(waiting: list[tuple[NewTask, W]], given_up: Callable[[W], bool]
               ) -> tuple[list[tuple[NewTask, W]], list[tuple[NewTask, W]]]:
    """One-task submits that waited while a submit call was in flight: those the next call
    carries (in order, at most COALESCE_MAX, an id once: a later submit of the same id goes in a
    later call and creates nothing, as a replay) and the rest. Those ``given_up`` are in neither."""
    batch: list[tuple[NewTask, W]] = []
    rest: list[tuple[NewTask, W]] = []
    ids: set[str] = set()
    for new, waiter in waiting:
        if given_up(waiter):
            continue
        if len(batch) < COALESCE_MAX and new.id not in ids:
            ids.add(new.id)
            batch.append((new, waiter))
        else:
            rest.append((new, waiter))
    return batch, rest


#: Redis times a blocking call out on its clock tick (hz 10: every 0.1 s), so a BLPOP of 10 ms
#: returns after up to 100 ms. A wait shorter than that (a rate limiter's next placement, a
#: delayed task due in a moment) is a sleep of the loop's own until the time dispatch returned.
BLOCK_RESOLUTION_S = 0.1


@dataclass(frozen=True)
class Turn:
    """What a scheduler loop does after a dispatch: dispatch again at once (``again``: the call
    was full), reap (a lease or a task's timeout lapsed), or block on the namespace's wake-up
    list for ``wait_s`` seconds and then dispatch (``sleep``: a wait below Redis's timeout
    resolution, slept by the loop itself)."""

    again: bool = False
    reap: bool = False
    wait_s: float = 0.0
    sleep: bool = False


def next_turn(reply: DispatchReply, loop: LoopOptions, block_s: float) -> Turn:
    """The scheduler loop's next step after ``reply`` (block_s: the longest one blocking call)."""
    if len(reply.assignments) == loop.limit:
        return Turn(again=True)
    wait, reap_now = reply.wait_s(loop.max_wait_s, loop.reap_every_s)
    if reap_now:
        return Turn(reap=True)
    wait = min(wait, block_s)
    return Turn(wait_s=wait, sleep=wait < BLOCK_RESOLUTION_S)
