"""How the dispatch script's cost per dispatched task grows with processors and queue length.

Measured directly on the script: the benchmark process registers processors (one pipeline of
register calls), queues tasks with submit_many, then calls ``Scheduler.dispatch(limit=100)``
until D tasks are placed. Two figures per point:

- client: wall-clock time of the dispatch calls / tasks dispatched (includes the round trip);
- server: ``INFO commandstats`` usec of EVALSHA / tasks dispatched (the script alone;
  CONFIG RESETSTAT just before the dispatch calls, nothing else runs meanwhile).

Processors: P in 10 .. 10,000, capacity ceil(D/P) each so that D = 10,000 tasks fit in every
case, with 20,000 queued. Queue length: Q in 1k .. 1M (tasks queued before the first dispatch
call; D more are queued so that the queue never falls below Q), 10 processors of capacity 100,
D = 1,000.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import luasched
from luasched import ops

LIMIT = 100


def _register(sched: luasched.Scheduler, count: int, capacity: int, tag: str) -> None:
    calls = [ops.register(sched.ns, None, f"bench-{tag}-{i}", capacity, 600_000, ("default",), "bench")
             for i in range(count)]
    for start in range(0, len(calls), 1000):
        sched.call_many(calls[start:start + 1000])


def _fill(sched: luasched.Scheduler, count: int) -> None:
    chunk = 20_000
    for start in range(0, count, chunk):
        sched.submit_many("noop", [()] * min(chunk, count - start))


def _dispatch(sched: luasched.Scheduler, r: Any, want: int) -> dict[str, Any]:
    r.config_resetstat()
    spent = 0.0
    placed = 0
    calls = 0
    while placed < want:
        t = time.perf_counter()
        got = len(sched.dispatch(limit=min(LIMIT, want - placed)))
        spent += time.perf_counter() - t
        calls += 1
        if got == 0:
            raise RuntimeError(f"dispatch placed nothing after {placed} of {want}")
        placed += got
    stats = r.info("commandstats")
    evalsha = stats["cmdstat_evalsha"]
    inner = {k.removeprefix("cmdstat_"): v for k, v in stats.items()
             if k not in ("cmdstat_evalsha", "cmdstat_info") and not k.startswith("cmdstat_config")}
    commands_us = sum(int(v["usec"]) for v in inner.values()) / placed
    return {"client_us_per_task": spent / placed * 1e6,
            "server_us_per_task": int(evalsha["usec"]) / placed,
            "redis_calls_per_task": sum(int(v["calls"]) for v in inner.values()) / placed,
            # where the script's time goes: the Redis commands it calls, and the rest (Lua itself)
            "commands_us_per_task": commands_us,
            "lua_us_per_task": int(evalsha["usec"]) / placed - commands_us,
            "top_commands_us_per_task": dict(sorted(((k, int(v["usec"]) / placed) for k, v in inner.items()),
                                                    key=lambda kv: -kv[1])[:4]),
            "dispatch_calls": calls, "dispatched": placed}


def by_processors(url: str, counts: list[int], repeat: int, want: int = 10_000) -> list[dict[str, Any]]:
    out = []
    for p in counts:
        runs = []
        for rep in range(repeat):
            sched = luasched.Scheduler(url, namespace="bench-dispatch")
            r = sched.client
            r.flushdb()
            _register(sched, p, math.ceil(want / p), f"p{rep}")
            _fill(sched, want * 2)
            runs.append(_dispatch(sched, r, want))
            sched.close()
        out.append({"processors": p, "queued": want * 2, "runs": runs, **_median(runs)})
        print(f"  dispatch, {p:>6} processors: {out[-1]['server_us_per_task']:.2f} us/task in the script, "
              f"{out[-1]['client_us_per_task']:.2f} us/task with the round trip", flush=True)
    return out


def by_queue(url: str, lengths: list[int], repeat: int, want: int = 1_000) -> list[dict[str, Any]]:
    out = []
    for q in lengths:
        sched = luasched.Scheduler(url, namespace="bench-dispatch")
        r = sched.client
        r.flushdb()
        _fill(sched, q + want)
        runs = []
        for rep in range(repeat):
            _register(sched, 10, want // 10, f"q{rep}")
            runs.append(_dispatch(sched, r, want))
            _fill(sched, want)  # back to q + want queued for the next repeat
        sched.close()
        r.flushdb()
        out.append({"queued": q, "processors": 10, "runs": runs, **_median(runs)})
        print(f"  dispatch, {q:>8} queued: {out[-1]['server_us_per_task']:.2f} us/task in the script, "
              f"{out[-1]['client_us_per_task']:.2f} us/task with the round trip", flush=True)
    return out


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure; the top commands of the run whose script time is the median."""
    mid = sorted(runs, key=lambda r: r["server_us_per_task"])[len(runs) // 2]
    return {k: mid[k] if isinstance(runs[0][k], dict) else statistics.median(r[k] for r in runs)
            for k in runs[0]}
