"""Where one task's submit -> start time goes, with the defaults (the latency workload's path).

    .venv/bin/python bench/latency_parts.py [--n 500] [--rounds 3]

Starts its own redis-server and ``luasched processor bench.latency_parts:sched`` (the defaults,
nothing else), then, 2 ms apart as in bench/run.py's latency workload, submits one task at a time
and splits each submit -> start into:

- producer: ``Scheduler.submit`` called -> its request written to the socket;
- Redis and wake-ups: request written -> the processor's slot has the reply of its start (the
  submit script, which places the task and pushes the wake-up; the slot's BLPOP returning; the
  start script pipelined behind it; both processes woken);
- processor: the start's reply -> the task's function running.

For scale, the same machine's floor at that moment: a PING's round trip, and an LPUSH seen by a
BLPOP in another process (what one LPUSH + BRPOP queue such as huey has at least). Each round
measures all of it; medians (p50) and p90 over the tasks of every round.

The timestamps come from wrapping three of luasched's own functions (this module is also the APP
the processor runs: imported there, it wraps the processor side): a measuring aid, not an API.
"""

from __future__ import annotations

import argparse
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
from luasched._backends import fastpath  # noqa: E402
from luasched._sync import transport  # noqa: E402

sched = luasched.Scheduler(os.environ.get("LATENCY_PARTS_URL") or None, namespace="parts")
_seen: dict[str, float] = {}
_marker: Any = None


@sched.task
def report_start(key: str) -> None:
    """RPUSH when the start's reply came and when this function began to ``key``."""
    began = time.time()
    global _marker
    if _marker is None:
        import redis

        _marker = redis.Redis.from_url(os.environ["LATENCY_PARTS_URL"])
    _marker.rpush(key, f"{_seen.get('reply', 0.0)!r} {began!r}")


def _wrap_processor() -> None:
    after_wake = transport.Transport.call_after_wake

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = after_wake(self, *args, **kwargs)
        _seen["reply"] = time.time()
        return reply
    transport.Transport.call_after_wake = timed  # type: ignore[method-assign]


def _wrap_producer() -> None:
    send = fastpath.send_packed

    def timed(*args: Any) -> Any:
        _seen["sent"] = time.time()
        return send(*args)
    fastpath.send_packed = timed


if os.environ.get("LATENCY_PARTS_PROCESSOR"):
    _wrap_processor()


def q(values: list[float], f: float) -> float:
    values = sorted(values)
    return values[int(f * (len(values) - 1))] * 1e3


def floor(url: str, n: int) -> tuple[list[float], list[float]]:
    import redis

    r = redis.Redis.from_url(url)
    pings = []
    for _ in range(n):
        time.sleep(0.002)
        t = time.time()
        r.ping()
        pings.append(time.time() - t)
    code = f"import redis, time\nr = redis.Redis.from_url({url!r})\nwhile True:\n    r.blpop('parts:a')\n" \
           f"    r.rpush('parts:b', repr(time.time()))\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        r.lpush("parts:a", "warm")
        r.blpop("parts:b")
        hand = []
        for _ in range(n):
            time.sleep(0.002)
            t = time.time()
            r.lpush("parts:a", "x")
            _, got = r.blpop("parts:b")
            hand.append(float(got) - t)
    finally:
        child.kill()
        child.wait()
    return pings, hand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import redis

    from tests.servers import start_redis

    server = start_redis()
    env = dict(os.environ, LATENCY_PARTS_URL=server.url, LATENCY_PARTS_PROCESSOR="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "bench.latency_parts:sched",
                             "--redis", server.url, "--log-level", "warning"], env=env, cwd=ROOT)
    parts: dict[str, list[float]] = {k: [] for k in ("producer", "redis", "processor", "total", "ping", "handoff")}
    try:
        producer = luasched.Scheduler(server.url, namespace="parts")
        r = redis.Redis.from_url(server.url)
        _wrap_producer()
        for _ in range(50):  # warm: the processor registered, every function loaded
            producer.submit("report_start", "parts:k")
            r.blpop("parts:k", timeout=30)
        for _ in range(args.rounds):
            for _ in range(args.n):
                time.sleep(0.002)
                t0 = time.time()
                producer.submit("report_start", "parts:k")
                _, got = r.blpop("parts:k")
                reply, began = map(float, got.split())
                parts["producer"].append(_seen["sent"] - t0)
                parts["redis"].append(reply - _seen["sent"])
                parts["processor"].append(began - reply)
                parts["total"].append(began - t0)
            ping, hand = floor(server.url, args.n)
            parts["ping"] += ping
            parts["handoff"] += hand
        producer.close()
    finally:
        proc.terminate()
        proc.wait()
        server.stop()
    names = {"producer": "producer: submit() -> request written", "redis": "Redis and wake-ups -> start's reply",
             "processor": "processor: reply -> task running", "total": "submit -> start",
             "ping": "floor: PING round trip", "handoff": "floor: LPUSH -> BLPOP in another process"}
    total = statistics.median(parts["total"])
    for key, label in names.items():
        share = f"  ({statistics.median(parts[key]) / total:.0%} of the median)" if key in (
            "producer", "redis", "processor") else ""
        print(f"{label:42s} p50 {q(parts[key], 0.5):.3f} ms  p90 {q(parts[key], 0.9):.3f} ms{share}")


if __name__ == "__main__":
    main()
