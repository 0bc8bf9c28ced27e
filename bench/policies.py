"""Placement policies (issue 17): what they cost dispatch, and what they do end to end.

    .venv/bin/python bench/policies.py                    # all three parts (~3 min)
    .venv/bin/python bench/policies.py --only keys,held   # the dispatch parts only

On one private redis-server (never 6379):

- keys: dispatch's cost per placed task with 10, 100, 1,000 and 10,000 active keys (each key a
  lane with tasks waiting; 10 idle processors; D = 5,000 tasks placed per point). The points are
  set up in namespaces of their own and their dispatch calls alternated call by call (as
  bench/dispatch_cost.py does), so the machine's drift is shared. The ratio to 10 keys should
  stay flat (the issue asks within 1.3x).
- held: dispatch's cost per placed task when 1,000 limiters each hold work back (a lane parked on
  each, with a free slot that could take it), against the same namespace without them: held-back
  work is not scanned, so the two should cost the same.
- memory: Redis memory per queued task, plain, with a priority and one of 100 keys, and with a
  limiter too (the issue's budget for tasks without policies: 200 B).
- workload "policies": 4 processor processes (``luasched processor``, capacity 4 each) drain
  priorities, 100 keys with weights 1 and 2, a rate limit and a max_running limit; the same
  tasks without any policy are drained in the same run as the A/B baseline. Reported:
  throughput of both and their ratio, the fairness error (each key's share of the placements
  while every key still had work, against its weight's share), the achieved rate against the
  configured one, the most tasks of the max_running limiter seen running at once, and how much
  sooner the urgent tasks started than the rest.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from bench.dispatch_cost import _interleaved, _register  # noqa: E402
from tests.servers import start_redis  # noqa: E402

D = 5000


def keys_setup(k: int) -> Any:
    def setup(sched: luasched.Scheduler) -> None:
        _register(sched, 10, D // 10 + 1, f"keys{k}")
        per_key = max(math.ceil((D + 500) / k), 1)
        for i in range(k):
            sched.submit_many("noop", [()] * per_key, key=f"key-{i}")
    return setup


def held_setup(held: bool) -> Any:
    def setup(sched: luasched.Scheduler) -> None:
        if held:
            sink = sched.processor(capacity=2000, queues=("held",), lease=600)
            assert sink.register()
            for i in range(1000):
                sched.limit(f"lim-{i}", max_running=1)
            for _ in range(2):  # the first of each key runs (holding its limiter), the second waits
                for i in range(1000):
                    sched.submit("noop", _queue="held", _key=f"k{i}", _limits=(f"lim-{i}",))
                while sched.dispatch(limit=1000) or sched.client.exists(sched.keys.prefix + "lvl:held"):
                    pass
        _register(sched, 10, D // 10 + 1, f"held{held}")
        sched.submit_many("noop", [()] * (D + 500))
    return setup


def dispatch_parts(url: str, only: set[str], repeat: int) -> None:
    if "keys" in only:
        runs = _interleaved(url, {k: keys_setup(k) for k in (10, 100, 1000, 10_000)}, D, repeat)
        base = statistics.median(r["server_us_per_task"] for r in runs[10])
        for k, rs in runs.items():
            server = statistics.median(r["server_us_per_task"] for r in rs)
            client = statistics.median(r["client_us_per_task"] for r in rs)
            print(f"keys {k:>6}: {client:6.2f} µs/task at the client, {server:6.2f} in the script "
                  f"(x{server / base:.2f} of 10 keys)", flush=True)
    if "held" in only:
        runs = _interleaved(url, {0: held_setup(False), 1: held_setup(True)}, D, repeat)
        none, held = (statistics.median(r["server_us_per_task"] for r in runs[i]) for i in (0, 1))
        print(f"held: no limiters {none:6.2f} µs/task in the script, 1,000 limiters holding work back "
              f"{held:6.2f} (x{held / none:.2f})", flush=True)


def memory(url: str) -> None:
    """Redis memory per queued task: plain, with a priority and one of 100 keys, and with a limiter
    too (used_memory delta / N, no processor)."""
    sched = luasched.Scheduler(url, namespace="bench-policies-memory", dispatch_on_submit=False)
    r = sched.client
    sched.limit("api", rate=100)
    n = 20_000
    for label, kw in (("plain", {}), ("priority 2, 100 keys", {"priority": 2}),
                      ("priority 2, 100 keys, a limiter", {"priority": 2, "limits": ("api",)})):
        r.delete(*[k for k in r.scan_iter(sched.keys.prefix + "*") if not k.endswith((b":lim", b":limpat"))] or ["-"])
        before = int(r.info("memory")["used_memory"])
        for k in range(100 if kw else 1):
            sched.submit_many("noop", [()] * (n // (100 if kw else 1)), **({**kw, "key": f"k{k}"} if kw else {}))
        print(f"memory {label}: {(int(r.info('memory')['used_memory']) - before) / n:.1f} B per queued task",
              flush=True)
    sched.close()


def drain(url: str, namespace: str, policies: bool, procs: int) -> dict[str, float]:
    """Submit the workload (with or without its policies), drain it with ``procs`` processor
    processes, and read what the tasks reported."""
    sched = luasched.Scheduler(url, namespace=namespace, dispatch_on_submit=False)
    sched.client.flushdb()

    @sched.task(name="span")
    def span(hold_ms: int = 0) -> None: ...

    weights = {f"k{i}": 1.0 if i < 50 else 2.0 for i in range(100)}
    rate, burst, max_running = 100.0, 5, 2
    if policies:
        for key, w in weights.items():
            sched.set_weight(key, w)
        sched.limit("api", rate=rate, burst=burst)
        sched.limit("db", max_running=max_running)

    def opts(**kw: Any) -> dict[str, Any]:
        return kw if policies else {}

    fair = {key: sched.submit_many("span", [(0,)] * 60, **opts(key=key)) for key in weights}
    # in a queue of their own: in the default queue they would get their key's fair share, less
    # than the rate allows while the other keys have work
    rated = sched.submit_many("span", [(0,)] * 300, queue="rated", **opts(limits=("api",)))
    db = sched.submit_many("span", [(5,)] * 100, **opts(key="db", limits=("db",)))
    urgent = sched.submit_many("span", [(0,)] * 200, **opts(priority=1))
    everything = [h for hs in fair.values() for h in hs] + rated + db + urgent
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    cmd = [str(Path(sys.executable).parent / "luasched"), "processor", "bench.policies_app:sched",
           "--capacity", "4", "--no-log-tasks", "--queues", "default,rated"]
    workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(procs)]
    try:
        deadline = time.monotonic() + 300
        while sched.counts()["done"] < len(everything):
            assert time.monotonic() < deadline, sched.counts()
            assert all(w.poll() is None for w in workers), "a processor exited"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    spans = {o.task_id: o.value() for o in sched.outcomes([h.id for h in everything])}
    began = {tid: s[0] for tid, s in spans.items()}
    first = min(s[0] for s in spans.values())
    # throughput of the tasks no rate holds back (the rated ones take 3 s at 100/s by design)
    free = [spans[h.id] for h in everything if h not in rated]
    out: dict[str, float] = {"tasks": len(free), "tasks_per_s": len(free) / (max(e for _, e in free) - first)}
    # fairness: placements while every key still had work waiting, by key, against the weights
    order = sorted((began[h.id], key) for key, hs in fair.items() for h in hs)
    ends = {key: max(began[h.id] for h in hs) for key, hs in fair.items()}
    window = [key for t, key in order if t < min(ends.values())]
    total_w = sum(weights.values())
    errors = [abs(window.count(key) / len(window) - w / total_w) / (w / total_w) for key, w in weights.items()]
    out["fairness_error_mean"], out["fairness_error_max"] = statistics.mean(errors), max(errors)
    starts = sorted(began[h.id] for h in rated)
    out["rate_configured"] = rate
    out["rate_achieved"] = (len(starts) - burst) / (starts[-1] - starts[0])
    intervals = sorted(spans[h.id] for h in db)
    out["db_most_at_once"] = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    rest = [began[h.id] for hs in fair.values() for h in hs]
    out["urgent_start_s"] = statistics.median(began[h.id] for h in urgent) - first
    out["rest_start_s"] = statistics.median(rest) - first
    sched.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="keys,held,memory,workload")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each dispatch part")
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    only = set(args.only.split(","))
    server = start_redis()
    try:
        dispatch_parts(server.url, only, args.repeat)
        if "memory" in only:
            memory(server.url)
        if "workload" in only:
            plain = drain(server.url, "bench-policies", False, args.processes)
            policies = drain(server.url, "bench-policies", True, args.processes)
            print(f"workload: {policies['tasks']:.0f} tasks (and 300 rated) on {args.processes} processes x 4 slots; "
                  f"policies {policies['tasks_per_s']:,.0f} tasks/s, the same tasks without them "
                  f"{plain['tasks_per_s']:,.0f} tasks/s (x{policies['tasks_per_s'] / plain['tasks_per_s']:.2f})")
            print(f"  fairness error (share against weight share, 100 keys, weights 1 and 2): mean "
                  f"{policies['fairness_error_mean']:.1%}, max {policies['fairness_error_max']:.1%} "
                  f"(without policies: mean {plain['fairness_error_mean']:.1%})")
            print(f"  rate: configured {policies['rate_configured']:.0f}/s, achieved "
                  f"{policies['rate_achieved']:.1f}/s (without: {plain['rate_achieved']:.0f}/s)")
            print(f"  max_running 2: at most {policies['db_most_at_once']:.0f} ran at once "
                  f"(without: {plain['db_most_at_once']:.0f})")
            print(f"  priority 1, submitted last: median start {policies['urgent_start_s']:.2f} s, the rest "
                  f"{policies['rest_start_s']:.2f} s (without: {plain['urgent_start_s']:.2f} s / "
                  f"{plain['rest_start_s']:.2f} s)", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
