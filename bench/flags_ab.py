"""A/B of `luasched processor` flags against the defaults, on the latency workload, in turn.

    .venv/bin/python bench/flags_ab.py --rounds 25 "--capacity 1" "--no-log-tasks"

Each argument is a set of flags given to the processor of the *default* latency row
(``BENCH_PROCESSOR_FLAGS``, see bench/peers/luasched_.py); the defaults (no flag) are the base.
One private redis-server; every round runs the base and each set once (``FLUSHDB`` before each,
the order turned round every other round) through bench/driver.py, so that all see the machine as
it drifts. Prints, per set, the medians of p50 and p99 and the median of the per-round ratios to
the base (below 1: the flags start tasks sooner) with the rounds below 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import start_redis  # noqa: E402

KEYS = ("p50_ms", "p99_ms")


def measure(url: str, flags: str, n: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_PROCESSOR_FLAGS=flags, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "bench/driver.py", "luasched", "latency", "--url", url, "--n", str(n),
                           "--variant", "default"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the latency run with flags {flags!r} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flags", nargs="+", help="a set of processor flags (quoted), measured against the defaults")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=500, help="tasks per run")
    args = parser.parse_args()
    sets = ["", *args.flags]
    runs: dict[str, list[dict[str, Any]]] = {f: [] for f in sets}
    server = start_redis()
    try:
        import redis

        r = redis.Redis.from_url(server.url)
        for i in range(args.rounds):
            for flags in sets if i % 2 == 0 else sets[::-1]:
                r.flushdb()
                runs[flags].append(measure(server.url, flags, args.n))
            print(f"  round {i + 1} of {args.rounds}", flush=True)
    finally:
        server.stop()
    for flags in sets:
        line = [f"{flags or '(the defaults)':>28}"]
        for key in KEYS:
            ratios = [a[key] / b[key] for a, b in zip(runs[flags], runs[""], strict=True)]
            line.append(f"{key} {statistics.median(x[key] for x in runs[flags]):.3f} ms" + (
                f", ratio {statistics.median(ratios):.3f} ({sum(x < 1 for x in ratios)} of {len(ratios)} below 1)"
                if flags else ""))
        print(";  ".join(line))


if __name__ == "__main__":
    main()
