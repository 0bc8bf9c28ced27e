"""Latency from submit to task start at low load, with one processor process.

    python bench/latency.py [--tasks 500] [--repeat 3]

Starts its own redis-server on a free loopback port, one `luasched processor` process (capacity
1) and, in the plain mode, one `luasched scheduler` process; then submits one task at a time,
waits for it, and records start time minus submit time. Reports p50/p99/max per mode (the median
of --repeat runs of each figure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from tests.servers import start_redis  # noqa: E402

MODES = {
    "plain": "a scheduler process dispatches (submit and processor do only their own step)",
    "eager": "dispatch at submit (no scheduler process)",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_mode(url: str, mode: str, tasks: int, namespace: str) -> dict[str, float]:
    env = dict(os.environ, BENCH_NAMESPACE=namespace, BENCH_EAGER="1" if mode == "eager" else "0",
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "luasched"]
    procs = [subprocess.Popen([*cmd, "processor", "bench.app:sched", "--redis", url, "--capacity", "1",
                               "--no-log-tasks", "--log-level", "warning"], cwd=ROOT, env=env)]
    if mode == "plain":
        procs.append(subprocess.Popen([*cmd, "scheduler", "bench.app:sched", "--redis", url,
                                       "--log-level", "warning"], cwd=ROOT, env=env))
    sched = luasched.Scheduler(url, namespace=namespace, dispatch_on_submit=mode == "eager")
    try:
        deadline = time.monotonic() + 30
        while sched.counts()["processors"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the processor did not register")
            time.sleep(0.05)
        for _ in range(20):  # warm up connections and script caches
            sched.submit("started_at").result(timeout=10)
        latencies = []
        for _ in range(tasks):
            sent = time.time()
            began = sched.submit("started_at").result(timeout=10)
            latencies.append((began - sent) * 1000)
            time.sleep(0.002)  # low load: the processor is idle when the next task comes
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sched.purge()
        sched.close()
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99), "max": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    server = start_redis()
    try:
        print(f"luasched {luasched.__version__}, redis-server on 127.0.0.1:{server.port}, "
              f"{args.tasks} tasks one at a time, median of {args.repeat} runs")
        print(f"{'mode':8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for mode in args.modes.split(","):
            runs = [run_mode(server.url, mode, args.tasks, f"latency-{mode}-{i}") for i in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "max")}
            print(f"{mode:8} {med['p50']:8.2f} {med['p99']:8.2f} {med['max']:8.2f}   {MODES[mode]}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
