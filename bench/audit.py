"""How long the audit holds Redis at a million tasks: its longest single call, before and after
it was cut into slices (issue 16).

    .venv/bin/python bench/audit.py [--tasks 1000000] [--delayed 0.05] [--base COMMIT] [--repeat 3]

Starts its own redis-server on a free loopback port, fills one namespace with --tasks no-op tasks
(the --delayed fraction of them delayed by an hour, the rest queued) and 32 tasks assigned to 8
processors, then --repeat times each, the sliced runs first:

- **sliced** (this tree): ``Scheduler.audit()``: the frame, then slices of 500 tasks (the
  default ``slice_size``);
- **whole** (lua/audit.lua of --base, default the last commit before slicing): the one-call
  snapshot audit, sent with EVAL on a client without a socket timeout.

The whole runs come last because each leaves hundreds of MB of garbage in Redis's Lua heap, which
the next calls pay for as the collector catches up (a sliced run right after one had a 120 ms call
where its other calls took under 35 ms).

Server time comes from the server itself: the calls and their total time from INFO commandstats,
the longest call from SLOWLOG (threshold 1 ms, so that the commands inside the scripts, which it
logs too, stay out). The figure that matters is the longest single call: that is how long
every other client of the server waits behind the audit (Redis answers BUSY past
lua-time-limit, 5 s). Results go to bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

import luasched  # noqa: E402
from luasched import scripts  # noqa: E402
from luasched.core import ops  # noqa: E402
from tests.servers import start_redis  # noqa: E402

BASE = "0b1f64c"
FIGURES = ("calls", "longest_ms", "server_ms", "wall_s")  # the last commit whose audit was one call


def script_stats(client: redis.Redis) -> tuple[int, int]:
    """Script calls so far and their server time (µs), from INFO commandstats."""
    stats = client.info("commandstats")
    rows = [stats.get(f"cmdstat_{name}", {}) for name in ("evalsha", "eval")]
    return sum(r.get("calls", 0) for r in rows), sum(r.get("usec", 0) for r in rows)


def measure(client: redis.Redis, run: Callable[[], object]) -> dict[str, float]:
    """Run ``run`` and say what its script calls cost the server."""
    client.slowlog_reset()
    calls0, usec0 = script_stats(client)
    began = time.perf_counter()
    run()
    wall = time.perf_counter() - began
    calls1, usec1 = script_stats(client)
    entries = sorted((e for e in client.slowlog_get(-1)
                      if e["command"].split(b" ", 1)[0].upper() in (b"EVALSHA", b"EVAL")),
                     key=lambda e: -e["duration"])
    longest = [e["duration"] for e in entries]
    if entries:  # which call it was: the arguments after the keys (place, queue, start, count)
        print(f"  longest call: {entries[0]['duration'] / 1000:.1f} ms, "
              f"{entries[0]['command'].split(b' ')[12:][:6]}")
    return {"calls": calls1 - calls0, "longest_ms": max(longest, default=0) / 1000,
            "server_ms": (usec1 - usec0) / 1000, "wall_s": wall, "top5_ms": [d / 1000 for d in longest[:5]]}


def fill(sched: luasched.Scheduler, tasks: int, delayed: float) -> None:
    n_delayed = int(tasks * delayed)
    chunk = 10_000
    for start in range(0, tasks - n_delayed, chunk):
        sched.submit_many("noop", [() for _ in range(min(chunk, tasks - n_delayed - start))])
    for start in range(0, n_delayed, chunk):
        sched.submit_many("noop", [() for _ in range(min(chunk, n_delayed - start))], delay=3600)
    for _ in range(8):
        sched.processor(capacity=4).register()
    sched.dispatch(limit=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--delayed", type=float, default=0.05)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    old = subprocess.run(["git", "show", f"{args.base}:lua/audit.lua"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    whole_source = scripts.build(old, f"audit.lua ({args.base})")
    server = start_redis()
    raw = server.client()
    patient = redis.Redis(port=server.port, socket_timeout=None)
    sched = luasched.Scheduler(server.url, namespace="bench-audit", dispatch_on_submit=False)
    sched.task(name="noop")(lambda: None)
    try:
        began = time.perf_counter()
        fill(sched, args.tasks, args.delayed)
        counts = sched.counts()
        print(f"redis-server {raw.info('server')['redis_version']}, 127.0.0.1:{server.port}: "
              f"{counts['queued']:,} queued, {counts['delayed']:,} delayed, {counts['assigned']} assigned "
              f"(filled in {time.perf_counter() - began:.0f} s, "
              f"{raw.info('memory')['used_memory'] / 2**20:.0f} MiB)")
        raw.config_set("slowlog-log-slower-than", 1000)
        raw.config_set("slowlog-max-len", 100_000)
        frame = ops.audit(sched.ns, None)
        runs: dict[str, list[dict[str, float]]] = {"sliced": [], "whole": []}
        def sliced() -> None:
            audit = sched.audit()
            assert audit.ok, audit.problems[:5]

        def whole() -> None:
            assert patient.eval(whole_source, len(frame.keys), *frame.keys, *frame.args)

        for _ in range(args.repeat):
            runs["sliced"].append(measure(raw, sliced))
        for _ in range(args.repeat):
            runs["whole"].append(measure(raw, whole))
        result = {"tasks": args.tasks, "counts": counts, "base": args.base, "repeat": args.repeat,
                  "redis": raw.info("server")["redis_version"], "when": time.strftime("%Y-%m-%d %H:%M"),
                  "runs": runs,
                  "median": {k: {f: statistics.median(r[f] for r in v) for f in FIGURES} for k, v in runs.items()}}
        for kind, med in result["median"].items():
            print(f"{kind:>6}: {med['calls']:.0f} calls, longest {med['longest_ms']:.1f} ms, "
                  f"server {med['server_ms']:.0f} ms in all, {med['wall_s']:.2f} s wall; "
                  f"the 5 longest of each run (ms): {[r['top5_ms'] for r in runs[kind]]}")
        out = ROOT / "bench" / "results" / "audit.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written {out.relative_to(ROOT)}")
    finally:
        sched.close()
        patient.close()
        raw.close()
        server.cleanup()


if __name__ == "__main__":
    main()
