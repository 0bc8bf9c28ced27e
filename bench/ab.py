"""A/B of two versions of luasched, end to end: throughput, submit and latency, run in turn.

    .venv/bin/python bench/ab.py --base 11187b4                 # against the working tree's HEAD
    .venv/bin/python bench/ab.py --base 11187b4 --head HEAD --rounds 5 --only submit
    .venv/bin/python bench/ab.py --base 11187b4 --rounds 21 --only latency --match default

Each version is ``luasched/`` and ``lua/`` as committed at its revision, extracted to a folder of
its own that goes first on the path of every process of its runs (the producer, the processor
and scheduler commands). Both are run through the same ``bench/driver.py`` and adapters, on one
private redis-server (``FLUSHDB`` before each run), alternating A B, then B A, round after round,
so that both see the machine as it drifts. The figure of a configuration is the median over the
rounds; the ratio is head / base (above 1: head is faster; for latency, below 1: head is faster).
The last column pairs the rounds: the median of the per-round ratios head / base, its 95%
bootstrap interval, and the rounds at or below 1 (bench/report.py ``paired``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import paired, paired_text  # noqa: E402
from tests.servers import start_redis  # noqa: E402

#: (workload, label, driver arguments, the figure kept, True when higher is better). Each
#: throughput row also keeps the CPU the worker processes and Redis spent per task, which the
#: machine's drift in speed moves far less than the rate (CPU_KEYS).
CONFIGS: list[tuple[str, str, list[str], str, bool]] = [
    ("throughput", "plain c4", ["throughput", "--n", "20000", "--capacity", "4", "--variant", "plain"], "rate", True),
    ("throughput", "plain+ack c4", ["throughput", "--n", "20000", "--capacity", "4", "--variant", "plain+ack"],
     "rate", True),
    ("throughput", "take_next c4", ["throughput", "--n", "20000", "--capacity", "4", "--variant", "take_next"],
     "rate", True),
    ("throughput", "take_next+batch c32", ["throughput", "--n", "20000", "--capacity", "32",
                                           "--variant", "take_next+batch"], "rate", True),
    ("submit", "one by one", ["submit", "--n", "5000"], "rate", True),
    ("submit", "submit_many 1000", ["submit", "--n", "20000", "--batch", "1000"], "rate", True),
    ("latency", "plain c1 p50", ["latency", "--n", "500", "--variant", "plain"], "p50_ms", False),
    ("latency", "eager c1 p50", ["latency", "--n", "500", "--variant", "eager"], "p50_ms", False),
    ("latency", "default c4 p50", ["latency", "--n", "500", "--variant", "default"], "p50_ms", False),
]


CPU_KEYS = ("worker_cpu_us_per_task", "redis_cpu_us_per_task")

#: The other figures kept of a workload's runs, beside the one its configuration names.
EXTRA_KEYS = {"throughput": CPU_KEYS, "latency": ("p99_ms",)}


def snapshot(rev: str) -> tuple[str, str]:
    """(folder holding luasched/ and lua/ at ``rev``, its short hash)."""
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    dest = tempfile.mkdtemp(prefix=f"bench-ab-{short}-")
    archive = subprocess.run(["git", "archive", rev, "luasched", "lua"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest, short


@contextlib.contextmanager
def versions_on_a_server(base: str, head: str) -> Iterator[tuple[list[tuple[str, str]], Any]]:
    """The two versions' folders (with their short hashes) and a private redis-server; all of
    them removed after."""
    versions = [snapshot(base), snapshot(head)]
    server = start_redis()
    try:
        yield versions, server
    finally:
        server.cleanup()
        for src, _ in versions:
            shutil.rmtree(src, ignore_errors=True)


def run_once(src: str, url: str, args: list[str]) -> dict[str, Any]:
    import redis

    redis.Redis.from_url(url).flushdb()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(ROOT)]))
    cmd = [sys.executable, str(ROOT / "bench" / "driver.py"), "luasched", args[0], "--url", url, *args[1:]]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", default="HEAD", help="the revision measured (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="throughput,submit,latency", help="comma-separated workloads")
    parser.add_argument("--match", default="", help="only the configurations whose label holds this")
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    opts = parser.parse_args()
    wanted = set(opts.only.split(","))
    figures: dict[str, dict[str, list[float]]] = {}
    with versions_on_a_server(opts.base, opts.head) as (versions, server):
        for round_no in range(opts.rounds):
            order = versions if round_no % 2 == 0 else versions[::-1]
            for workload, label, args, key, _ in CONFIGS:
                if workload not in wanted or opts.match not in label:
                    continue
                for src, short in order:
                    result = run_once(src, server.url, args)
                    for k in (key, *EXTRA_KEYS.get(workload, ())):
                        figures.setdefault(f"{label}|{k}", {}).setdefault(short, []).append(float(result[k]))
                    print(f"round {round_no + 1} {label:<22} {short}: {float(result[key]):,.3f}", flush=True)
    (_, base), (_, head) = versions
    print(f"\n| configuration | figure | {base} (base) | {head} | {head} / {base} | round by round |")
    print("| --- | --- | --- | --- | --- | --- |")
    units = {"rate": "tasks/s", "p50_ms": "p50 ms", "p99_ms": "p99 ms", "worker_cpu_us_per_task":
             "worker CPU µs/task", "redis_cpu_us_per_task": "Redis CPU µs/task"}
    for workload, label, _, key, higher in CONFIGS:
        for k in (key, *EXTRA_KEYS.get(workload, ())):
            runs = figures.get(f"{label}|{k}")
            if runs is None:
                continue
            a, b = statistics.median(runs[base]), statistics.median(runs[head])
            better = higher and k == key
            # a round runs both versions in turn: its ratio compares them in one phase of the machine
            rounds = paired_text(paired([{k: v} for v in runs[head]], [{k: v} for v in runs[base]], k))
            print(f"| {workload} {label} | {units[k]}{'' if better else ' (lower is better)'} | {a:,.2f} "
                  f"| {b:,.2f} | {b / a:.3f} | {rounds} |")
    if opts.json is not None:
        opts.json.write_text(json.dumps({"base": base, "head": head, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
