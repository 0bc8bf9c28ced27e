"""Lanes (lua/lib/lanes.lua) from Python: their names, and the part of the invariant that
concerns them, checked on an audit's frame (pure: no I/O).

A lane is the tasks of one queue with one priority and one key, FIFO. Its name is
``<p>:<bytes in queue>:<queue>``, then ``:<key>`` for a keyed lane; the plain lane (priority 5, no
key) is the queue's own list ``q:<queue>``, every other one ``ln:<lane>``. A queue is in lanes
mode while ``lanes:<queue>`` lists its non-empty lanes; each of them is then indexed in exactly
one place: ready (``rdy:<p>:<queue>``), parked on a limiter (``lpk:<name>``), blocked by a rate
(``blk``) or paused by its key (``kp:<key>``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .ops import fields_of

DEFAULT_PRIORITY = 5


def lane_name(queue: str, priority: int | str = DEFAULT_PRIORITY, key: str | None = None) -> str:
    name = f"{priority}:{len(queue.encode())}:{queue}"
    return f"{name}:{key}" if key is not None else name


def lane_parts(name: str) -> tuple[str, int, str | None]:
    """The queue, priority and key (None: none) of a lane's name."""
    p, n, rest = name.split(":", 2)
    raw = rest.encode()
    queue, tail = raw[:int(n)].decode(), raw[int(n):].decode()
    return queue, int(p), tail[1:] if tail else None


def is_plain(name: str) -> bool:
    _queue, p, key = lane_parts(name)
    return p == DEFAULT_PRIORITY and key is None


def pause_scope_ok(scope: str) -> bool:
    """Whether a field of the pauses HASH names a key's pause well: ``k:<key>`` (every queue) or
    ``qk:<bytes>:<queue>:<key>`` (one queue)."""
    if scope.startswith("k:"):
        return len(scope) > 2
    if scope.startswith("qk:"):
        try:
            queue, _p, key = lane_parts("5:" + scope[3:])
        except ValueError:
            return False
        return bool(queue) and bool(key)
    return False


def check_lanes(problem: Callable[[str], None], queues: Iterable[Any], blocked_flat: Any, running_flat: Any,
                limiters_flat: Any, patterns: Iterable[str], held: dict[str, int]) -> list[tuple[str, str, int]]:
    """Check the lanes part of an audit frame; returns the lanes to read in slices, as audit
    places ("lane", name, length) (the plain lanes are read as their queue). ``held``: the
    running counts the held tasks' records say they hold, by limiter."""
    blocked = set(fields_of(blocked_flat))
    running = {name: int(n) for name, n in fields_of(running_flat).items()}
    limiters = fields_of(limiters_flat)
    places: list[tuple[str, str, int]] = []
    seen_blocked: set[str] = set()
    for queue, mode, levels, rdys, rows, in_lanes in queues:
        ready = {int(p): set(members) for p, members in rdys}
        lanes = {row[0] for row in rows}
        if int(mode) == 0 and (ready or levels or int(in_lanes)):
            problem(f"queue {queue} is plain but has a lane index ({len(ready)} levels, {in_lanes} tasks in lanes)")
        if sorted(int(p) for p in levels) != sorted(ready):
            problem(f"queue {queue} lists levels {sorted(levels)} but has ready lanes at {sorted(ready)}")
        for p, members in ready.items():
            for name in members - lanes:
                problem(f"lane {name!r} is ready at level {p} of queue {queue} but is not one of its lanes")
            for name in members:
                if name in lanes and lane_parts(name)[1] != p:
                    problem(f"lane {name!r} is ready at level {p}, not its own")
        total = 0
        for name, length, in_ready, in_blocked, in_paused, parked in rows:
            lane_queue, _p, _key = lane_parts(name)
            if lane_queue != queue:
                problem(f"lane {name!r} is listed in queue {queue}")
            if int(length) == 0:
                problem(f"lane {name!r} of queue {queue} is listed but empty")
            where = int(in_ready) + int(in_blocked) + int(in_paused) + len(parked)
            if where != 1:
                problem(f"lane {name!r} of queue {queue} is indexed {where} times (ready {in_ready}, "
                        f"blocked {in_blocked}, paused {in_paused}, parked on {parked})")
            for limiter in parked:
                if running.get(limiter, 0) <= 0:
                    problem(f"lane {name!r} waits for a running count of {limiter}, which no attempt holds")
            if int(in_blocked):
                seen_blocked.add(name)
            if not is_plain(name):
                total += int(length)
                places.append(("lane", name, int(length)))
        if total != int(in_lanes):
            problem(f"queue {queue} counts {in_lanes} tasks in its lanes, they hold {total}")
    for name in sorted(blocked - seen_blocked):
        problem(f"lane {name!r} is blocked by a rate but is not a lane of its queue")
    for limiter in sorted(running | held):
        if running.get(limiter, 0) != held.get(limiter, 0):
            problem(f"limiter {limiter} counts {running.get(limiter, 0)} running, "
                    f"the attempts that hold it say {held.get(limiter, 0)}")
    for name, spec in sorted(limiters.items()):
        if len(spec.split(" ")) != 4:
            problem(f"limiter {name} has a malformed spec {spec!r}")
    if {p for p in patterns} != {n for n in limiters if n.endswith("*")}:
        problem("the limiter patterns are out of step with the limiters")
    return places


def held_counts(rows: Iterable[Any]) -> dict[str, int]:
    """The running counts the records of assigned or running tasks say they hold, by limiter."""
    counts: Counter[str] = Counter()
    for row in rows:
        for name in filter(None, row[7].split(",")):
            counts[name] += 1
    return dict(counts)
