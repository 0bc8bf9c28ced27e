"""How the dispatch script's cost per dispatched task grows with processors and queue length.

Measured directly on the script: for every point of a sweep its own namespace is set up in the
same Redis (processors registered with one pipeline of register calls, tasks queued with
submit_many), then ``Scheduler.dispatch(limit=100)`` is called in each namespace IN TURN, one
call each per round (the first namespace of a round rotates), until D tasks are placed in each.
The machine's speed drifts by up to 1.5x within minutes; alternating call by call gives every
point the same share of fast and slow moments, and every point runs against the same keyspace
(all the sweep's namespaces at once), so that only what the sweep varies differs. Figures:

- client: wall-clock time of the dispatch calls / tasks dispatched (includes the round trip);
- server: ``INFO commandstats`` usec of EVALSHA / tasks dispatched (the script alone;
  CONFIG RESETSTAT just before each dispatch call, nothing else runs meanwhile), split into the
  Redis commands the script calls and the rest (Lua).

Processors, all idle: P in 10 .. 10,000, capacity ceil(D/P) each so that D = 10,000 tasks fit
in every case, with 20,000 queued. The least-loaded rule spreads a call's 100 tasks over
min(P, 100) processors, so this sweep varies two things at once: how many processors are
registered, and how many a call touches (its ranking entry re-written, its card read, its inbox
and wake list pushed: work per processor touched, shared by 10 tasks at P = 10 and by one from
P = 100 on). Processors, 10 idle: the same P registered, but P - 10 of them full (capacity 1,
one task each, placed before the measurement), and 10 idle of capacity D/10: every call touches
10 processors whatever P is, so this sweep varies only the number registered. Queue length: Q
in 1k .. 1M (tasks queued before the first dispatch call; D more are queued so that the queue
never falls below Q), 10 processors of capacity D/10, D = 5,000.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import luasched
from luasched.core import kinds, ops

LIMIT = 100


def _register(sched: luasched.Scheduler, count: int, capacity: int, tag: str,
              kind: tuple[str, str] = kinds.kind_of((), {})) -> None:
    calls = [ops.register(sched.ns, None, f"bench-{tag}-{i}", capacity, 600_000, ("default",), "bench", 0, kind)
             for i in range(count)]
    for start in range(0, len(calls), 1000):
        sched.call_many(calls[start:start + 1000])


def _fill(sched: luasched.Scheduler, count: int) -> None:
    chunk = 20_000
    for start in range(0, count, chunk):
        sched.submit_many("noop", [()] * min(chunk, count - start))


class _Point:
    """What the dispatch calls of one point of a sweep added up to, in one run."""

    def __init__(self, sched: luasched.Scheduler) -> None:
        self.sched = sched
        self.spent = 0.0
        self.placed = 0
        self.calls = 0
        self.touched = 0  # processors that took a task, summed over the calls
        self.evalsha_us = 0
        self.inner: dict[str, list[int]] = {}  # command -> [calls, usec]

    def dispatch(self, r: Any, limit: int) -> None:
        r.config_resetstat()
        t = time.perf_counter()
        pairs = self.sched.dispatch(limit=limit)
        self.spent += time.perf_counter() - t
        got = len(pairs)
        self.touched += len({pid for _, pid in pairs})
        if got == 0:
            raise RuntimeError(f"dispatch placed nothing after {self.placed} tasks")
        self.calls += 1
        self.placed += got
        for name, v in r.info("commandstats").items():
            if name == "cmdstat_evalsha":
                self.evalsha_us += int(v["usec"])
            elif name != "cmdstat_info" and not name.startswith("cmdstat_config"):
                acc = self.inner.setdefault(name.removeprefix("cmdstat_"), [0, 0])
                acc[0] += int(v["calls"])
                acc[1] += int(v["usec"])

    def figures(self) -> dict[str, Any]:
        placed = self.placed
        commands_us = sum(us for _, us in self.inner.values()) / placed
        return {"client_us_per_task": self.spent / placed * 1e6,
                "server_us_per_task": self.evalsha_us / placed,
                "redis_calls_per_task": sum(n for n, _ in self.inner.values()) / placed,
                "tasks_per_processor_touched": placed / self.touched,
                # where the script's time goes: the Redis commands it calls, and the rest (Lua itself)
                "commands_us_per_task": commands_us,
                "lua_us_per_task": self.evalsha_us / placed - commands_us,
                "top_commands_us_per_task": dict(sorted(((k, us / placed) for k, (_, us) in self.inner.items()),
                                                        key=lambda kv: -kv[1])[:4]),
                "dispatch_calls": self.calls, "dispatched": placed}


def _interleaved(url: str, setups: dict[int, Callable[[luasched.Scheduler], None]], want: int,
                 repeat: int) -> dict[int, list[dict[str, Any]]]:
    """Per point, the figures of each run: every point set up in its own namespace of one Redis,
    then their dispatch calls alternated, one call each per round, until each placed ``want``."""
    runs: dict[int, list[dict[str, Any]]] = {k: [] for k in setups}
    for _ in range(repeat):
        admin = luasched.Scheduler(url, namespace="bench-dispatch")
        r = admin.client
        r.flushdb()
        points = {}
        for k, setup in setups.items():
            sched = luasched.Scheduler(url, namespace=f"bench-dispatch-{k}", dispatch_on_submit=False)
            setup(sched)
            points[k] = _Point(sched)
        order = list(points)
        rnd = 0
        while any(pt.placed < want for pt in points.values()):
            for k in order[rnd % len(order):] + order[:rnd % len(order)]:
                pt = points[k]
                if pt.placed < want:
                    pt.dispatch(r, min(LIMIT, want - pt.placed))
            rnd += 1
        for k, pt in points.items():
            runs[k].append(pt.figures())
            pt.sched.close()
        r.flushdb()
        admin.close()
    return runs


def by_processors(url: str, counts: list[int], repeat: int, want: int = 10_000) -> list[dict[str, Any]]:
    def setup(p: int) -> Callable[[luasched.Scheduler], None]:
        def go(sched: luasched.Scheduler) -> None:
            _register(sched, p, math.ceil(want / p), "p")
            _fill(sched, want * 2)
        return go

    return _sweep(url, {p: setup(p) for p in counts}, want, repeat,
                  lambda p: {"processors": p, "queued": want * 2}, lambda p: f"{p:>6} processors")


def by_registered(url: str, counts: list[int], repeat: int, want: int = 10_000, idle: int = 10) -> list[dict[str, Any]]:
    """P registered, ``idle`` of them idle (the rest full before the measurement): what the
    number of registered processors alone costs."""
    def setup(p: int) -> Callable[[luasched.Scheduler], None]:
        def go(sched: luasched.Scheduler) -> None:
            full = p - idle
            if full:
                _register(sched, full, 1, "full")
                _fill(sched, full)
                while sched.dispatch(limit=10_000):
                    pass
                if sched.client.llen(sched.keys.queue("default")):
                    raise RuntimeError("the full processors did not take one task each")
            _register(sched, idle, math.ceil(want / idle), "idle")
            _fill(sched, want * 2)
        return go

    return _sweep(url, {p: setup(p) for p in counts}, want, repeat,
                  lambda p: {"processors": p, "idle": idle, "queued": want * 2},
                  lambda p: f"{p:>6} processors, {idle} idle")


def by_labelled(url: str, counts: list[int], repeat: int, want: int = 4_000) -> list[dict[str, Any]]:
    """P registered and idle, every one with the task's name; a tenth of them labelled gpu=a, the
    rest none; every task requires gpu=a. Placement must choose among the labelled tenth without
    testing the others (issue 18: flat within 1.3x from 10 to 10,000 processors)."""
    def setup(p: int) -> Callable[[luasched.Scheduler], None]:
        def go(sched: luasched.Scheduler) -> None:
            labelled = max(1, p // 10)
            for count, labels, tag in ((labelled, {"gpu": "a"}, "gpu"), (p - labelled, {}, "cpu")):
                _register(sched, count, math.ceil(want / labelled), tag, kinds.kind_of(("noop",), labels))
            for start in range(0, want * 2, 20_000):
                sched.submit_many("noop", [()] * min(20_000, want * 2 - start), requires={"gpu": "a"})
        return go

    return _sweep(url, {p: setup(p) for p in counts}, want, repeat,
                  lambda p: {"processors": p, "labelled": max(1, p // 10), "queued": want * 2},
                  lambda p: f"{p:>6} processors, a tenth labelled, tasks requiring the label")


def by_labelled_one_idle(url: str, counts: list[int], repeat: int, want: int = 4_000) -> list[dict[str, Any]]:
    """As by_labelled (P registered, a tenth labelled gpu=a, every task requiring it), but of the
    labelled ones only one is idle (the others full, as by_registered's): every call then places
    on one processor whatever P is, so the least-loaded spread (1 processor touched per call at
    P = 10, 100 from P = 1,000) leaves the figure, and what is left is the capability index: the
    kinds read, the idle ranking of the one capable kind, and P - P/10 processors never tested."""
    def setup(p: int) -> Callable[[luasched.Scheduler], None]:
        def go(sched: luasched.Scheduler) -> None:
            labelled = max(1, p // 10)
            gpu, cpu = kinds.kind_of(("noop",), {"gpu": "a"}), kinds.kind_of(("noop",), {})
            _register(sched, labelled - 1, 1, "full", gpu)
            if labelled > 1:
                sched.submit_many("noop", [()] * (labelled - 1), requires={"gpu": "a"})
                while sched.dispatch(limit=10_000):
                    pass
            _register(sched, 1, want, "idle", gpu)
            _register(sched, p - labelled, 10, "cpu", cpu)
            for start in range(0, want * 2, 20_000):
                sched.submit_many("noop", [()] * min(20_000, want * 2 - start), requires={"gpu": "a"})
        return go

    return _sweep(url, {p: setup(p) for p in counts}, want, repeat,
                  lambda p: {"processors": p, "labelled": max(1, p // 10), "idle_labelled": 1, "queued": want * 2},
                  lambda p: f"{p:>6} processors, a tenth labelled, one of them idle")


def by_queue(url: str, lengths: list[int], repeat: int, want: int = 5_000) -> list[dict[str, Any]]:
    def setup(q: int) -> Callable[[luasched.Scheduler], None]:
        def go(sched: luasched.Scheduler) -> None:
            _fill(sched, q + want)
            _register(sched, 10, want // 10, "q")
        return go

    return _sweep(url, {q: setup(q) for q in lengths}, want, repeat,
                  lambda q: {"queued": q, "processors": 10}, lambda q: f"{q:>8} queued")


def _sweep(url: str, setups: dict[int, Callable[[luasched.Scheduler], None]], want: int, repeat: int,
           row: Callable[[int], dict[str, Any]], label: Callable[[int], str]) -> list[dict[str, Any]]:
    """Run a sweep's points interleaved; per point ``row(point)``, its runs and their medians."""
    runs = _interleaved(url, setups, want, repeat)
    out = []
    for k in setups:
        out.append({**row(k), "runs": runs[k], **_median(runs[k])})
        print(f"  dispatch, {label(k)}: {out[-1]['server_us_per_task']:.2f} us/task in the script, "
              f"{out[-1]['client_us_per_task']:.2f} us/task with the round trip", flush=True)
    return out


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure; the top commands of the run whose script time is the median."""
    mid = sorted(runs, key=lambda r: r["server_us_per_task"])[len(runs) // 2]
    return {k: mid[k] if isinstance(runs[0][k], dict) else statistics.median(r[k] for r in runs)
            for k in runs[0]}
