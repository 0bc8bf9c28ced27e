"""What durability costs, and what it saves in a failover.

    python bench/durability.py [--tasks 4000] [--latency-tasks 500] [--repeat 3] [--failovers N]

Cost: a master and one replica on loopback (started here, free ports). For durability 0 and 1,
alternately in the same run: throughput (``map`` of --tasks no-op tasks, two `luasched
processor` processes of capacity 4 in complete-and-take-next mode, dispatch at submit; tasks/s
from the submit to the last result) and latency (one task at a time, submit -> result, p50/p99).
With durability 1 every script that writes is followed by WAIT 1 in the same round trip.

--failovers N: N times for each durability, a master, two replicas and three sentinels; a producer
thread submits tasks one at a time and two processors (threads) run them, all on a
``redis+sentinel://`` URL; the master is SIGKILLed after 2 s; once everything has finished on the
new master, it counts the submits the producer had been told succeeded but that the new master does
not have (lost), and the tasks that ran more than once (acks or starts lost). Once with durability
0, once with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from tests.servers import start_replicated, wait_until  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cost_run(url: str, durability: int, tasks: int, latency_tasks: int, namespace: str) -> dict[str, float]:
    env = dict(os.environ, BENCH_REDIS=url, BENCH_NAMESPACE=namespace, BENCH_DURABILITY=str(durability),
               PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "luasched", "processor", "bench.durability_app:sched",
                               "--redis", url, "--capacity", "4", "--take-next", "--no-log-tasks",
                               "--log-level", "warning"], cwd=ROOT, env=env) for _ in range(2)]
    sched = luasched.Scheduler(url, namespace=namespace, dispatch_on_submit=True, durability=durability,
                               durability_timeout=5.0)
    try:
        wait_until(lambda: sched.counts()["processors"] >= 2, "processors registering", timeout=30)
        for _ in range(20):  # warm up connections and script caches
            sched.submit("noop").result(timeout=10)
        latencies = []
        for _ in range(latency_tasks):
            began = time.perf_counter()
            sched.submit("noop").result(timeout=10)
            latencies.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        sched.map("noop", [() for _ in range(tasks)]).results(timeout=300)
        rate = tasks / (time.perf_counter() - began)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sched.purge()
        sched.close()
    return {"tasks/s": rate, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)}


def cost(args: argparse.Namespace) -> None:
    group = start_replicated(replicas=1)
    try:
        print(f"luasched {luasched.__version__}: master 127.0.0.1:{group.master.port} + 1 replica, loopback; "
              f"{args.tasks} tasks for throughput, {args.latency_tasks} one at a time for latency; "
              f"median of {args.repeat} runs, modes alternating")
        runs: dict[int, list[dict[str, float]]] = {0: [], 1: []}
        for i in range(args.repeat):
            for d in (0, 1):
                runs[d].append(cost_run(group.master.url, d, args.tasks, args.latency_tasks, f"dur-{d}-{i}"))
        print(f"{'durability':>10} {'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for d, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("tasks/s", "p50", "p99")}
            print(f"{d:>10} {med['tasks/s']:9.0f} {med['p50']:8.2f} {med['p99']:8.2f}")
    finally:
        group.cleanup()


def failover_run(durability: int, seconds_before_kill: float = 2.0) -> dict[str, int]:
    group = start_replicated(replicas=2, sentinels=3)
    url = group.sentinel_url
    runs: dict[int, int] = {}
    lock = threading.Lock()
    sched = luasched.Scheduler(url, "failover", durability=durability, durability_timeout=2.0)

    @sched.task(timeout=2.0, max_attempts=10, retry_backoff=0.05)
    def work(i: int) -> int:
        with lock:
            runs[i] = runs.get(i, 0) + 1
        return i

    acked: list[str] = []
    refused = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            try:
                acked.append(sched.submit(work, i).id)
            except luasched.NotReplicated:
                refused += 1
            except luasched.ConnectionLost:
                time.sleep(0.05)
            i += 1

    producer = threading.Thread(target=produce, daemon=True)
    loop = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    processors = [sched.processor(capacity=4, lease=15.0, take_next=True) for _ in range(2)]
    try:
        for p in processors:
            p.start()
        loop.start()
        producer.start()
        time.sleep(seconds_before_kill)
        old = group.master.port
        group.master.stop()

        def promoted() -> bool:
            now = group.current_master()
            return now is not None and now[1] != old

        began = time.monotonic()
        wait_until(promoted, "failover", timeout=60, every=0.05)
        failover_s = time.monotonic() - began
        time.sleep(1.0)  # keep producing on the new master for a while
        stop.set()
        producer.join(30)
        after = luasched.Scheduler(url, "failover")
        deadline = time.monotonic() + 120
        while True:
            try:
                outcomes = after.outcomes(acked)
                if all(o.state in ("done", "unknown") for o in outcomes) or time.monotonic() > deadline:
                    break
            except luasched.ConnectionLost:
                pass
            time.sleep(0.2)
        lost = sum(o.state == "unknown" for o in outcomes)
        unfinished = sum(o.state not in ("done", "unknown") for o in outcomes)
        after.close()
        return {"acked submits": len(acked), "lost": lost, "unfinished": unfinished, "refused": refused,
                "ran twice": sum(1 for n in runs.values() if n > 1), "failover ms": int(failover_s * 1000)}
    finally:
        stop.set()
        for p in processors:
            p.halt()
        group.cleanup()
        sched.close()


def failover(args: argparse.Namespace) -> None:
    logging.getLogger("luasched").setLevel(logging.CRITICAL)  # the reconnection warnings, by the hundred
    print(f"failover under load, {args.failovers} runs per durability: master + 2 replicas + 3 sentinels; "
          f"a producer submitting one at a time, 2 processors (capacity 4, take-next); master SIGKILLed after 2 s")
    for i in range(args.failovers):
        for d in (0, 1):
            result = failover_run(d)
            print(f"run {i + 1} durability {d}: " + ", ".join(f"{k} {v}" for k, v in result.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--latency-tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--failovers", type=int, default=0, help="also measure what a failover loses, N times")
    args = parser.parse_args()
    cost(args)
    if args.failovers:
        failover(args)


if __name__ == "__main__":
    main()
