"""Profiles behind the unmet goals: where a processor and a producer spend their time.

    .venv/bin/python bench/profiles.py [--n 40000] [--only processor,submit,latency]

Needs py-spy in the luasched venv (`.venv/bin/pip install py-spy`). Starts its own redis-server.

- processor: `luasched processor` draining n queued tasks (take_next c1, take_next c4, plain c1
  with a scheduler process), sampled by py-spy at 1 kHz including idle time (so waiting on
  Redis shows as socket reads); the scheduler process is sampled too in plain mode.
- submit: cProfile of n/4 one-by-one ``Scheduler.submit`` calls in this process.
- latency: cProfile-free breakdown of one eager submit -> start: time of a bare EVALSHA round
  trip of ``return 1``, of the submit call, and of the whole submit -> task start.

Writes bench/results/profiles/<name>.txt: the top functions by own time and by total time
(from py-spy's collapsed stacks), which the analysis in bench/README.md summarises.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from tests.servers import start_redis  # noqa: E402

OUT = ROOT / "bench" / "results" / "profiles"
PYSPY = Path(sys.executable).parent / "py-spy"


def summarise(raw: Path, title: str, top: int = 25) -> str:
    """Own and total sample shares per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        # drop the thread name frame; keep "function (file:line)" -> "function (file)"
        names = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in frames[1:]]
        samples += n
        if names:
            own[names[-1]] += n
        for name in set(names):
            total[name] += n
    lines = [f"# {title}", f"{samples} samples", "", "## own time (leaf frames)"]
    lines += [f"{100 * c / samples:6.1f}%  {name}" for name, c in own.most_common(top)]
    lines += ["", "## total time (inclusive)"]
    lines += [f"{100 * c / samples:6.1f}%  {name}" for name, c in total.most_common(top)]
    return "\n".join(lines) + "\n"


def profile_processor(url: str, n: int, mode: str, capacity: int) -> None:
    sched = luasched.Scheduler(url, namespace="bench-profile")
    sched.client.flushdb()
    sched.submit_many("noop", [()] * n)
    env = dict(os.environ, BENCH_NAMESPACE="bench-profile", BENCH_EAGER="0", PYTHONPATH=str(ROOT))
    exe = [sys.executable, "-m", "luasched"]
    take = ["--take-next"] if mode == "take_next" else []
    procs = [subprocess.Popen([*exe, "processor", "bench.app:sched", "--redis", url, "--capacity", str(capacity),
                               "--no-log-tasks", "--log-level", "warning", *take], cwd=ROOT, env=env)]
    if mode != "take_next":
        procs.append(subprocess.Popen([*exe, "scheduler", "bench.app:sched", "--redis", url, "--log-level",
                                       "warning"], cwd=ROOT, env=env))
    name = f"processor-{mode}-c{capacity}"
    spies = []
    try:
        while sched.counts()["processors"] < 1:
            time.sleep(0.01)
        for i, p in enumerate(procs):
            role = "processor" if i == 0 else "scheduler"
            raw = OUT / f"{name}-{role}.raw"
            spies.append((role, raw, subprocess.Popen(
                [str(PYSPY), "record", "--pid", str(p.pid), "--rate", "1000", "--idle", "--format", "raw",
                 "--output", str(raw), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(1.0)  # py-spy attaches
        if mode == "take_next":
            sched.dispatch(limit=100)
        t = time.perf_counter()
        while sched.counts()["done"] < n:
            time.sleep(0.01)
        rate = n / (time.perf_counter() - t)
        for _, _, spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sched.close()
    text = f"{name}: {n} tasks at {rate:,.0f}/s under py-spy (sampling slows it)\n\n"
    for role, raw, _ in spies:
        text += summarise(raw, f"{name} {role}") + "\n"
    (OUT / f"{name}.txt").write_text(text)
    print(text[:4000])


def profile_submit(url: str, n: int) -> None:
    sched = luasched.Scheduler(url, namespace="bench-profile")
    sched.client.flushdb()
    for _ in range(100):
        sched.submit("noop")
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(n):
        sched.submit("noop")
    prof.disable()
    elapsed = time.perf_counter() - t
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumtime").print_stats(30)
    # the same without the profiler, for the real rate
    t = time.perf_counter()
    for _ in range(n):
        sched.submit("noop")
    plain = n / (time.perf_counter() - t)
    r = sched.client
    r.config_resetstat()
    for _ in range(1000):
        sched.submit("noop")
    ev = r.info("commandstats")["cmdstat_evalsha"]
    header = (f"submit one by one: {plain:,.0f}/s without the profiler, {n / elapsed:,.0f}/s with it; "
              f"the submit script takes {int(ev['usec']) / int(ev['calls']):.1f} us per call in Redis\n\n")
    sched.client.flushdb()
    sched.close()
    (OUT / "submit-one.txt").write_text(header + buf.getvalue())
    print(header + buf.getvalue()[:6000])


def latency_breakdown(url: str, n: int) -> None:
    """Where the time from submit to start goes, eager mode, one idle processor."""
    import redis

    env = dict(os.environ, BENCH_NAMESPACE="bench-profile", BENCH_EAGER="1", PYTHONPATH=str(ROOT))
    sched = luasched.Scheduler(url, namespace="bench-profile", dispatch_on_submit=True)
    sched.client.flushdb()
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "bench.app:sched", "--redis", url,
                             "--capacity", "1", "--no-log-tasks", "--log-level", "warning"], cwd=ROOT, env=env)
    r = redis.Redis.from_url(url)
    one = r.register_script("return 1")
    try:
        while sched.counts()["processors"] < 1:
            time.sleep(0.01)
        for _ in range(50):
            sched.submit("started_at").result(timeout=10)
        rt, sub, lat = [], [], []
        for _ in range(n):
            t = time.perf_counter()
            one()
            rt.append(time.perf_counter() - t)
            time.sleep(0.002)
            sent = time.time()
            t = time.perf_counter()
            h = sched.submit("started_at")
            sub.append(time.perf_counter() - t)
            began = h.result(timeout=10)
            lat.append(began - sent)
            time.sleep(0.002)
        r.config_resetstat()
        for _ in range(200):
            sched.submit("started_at").result(timeout=10)
            time.sleep(0.002)
        cs = r.info("commandstats")
    finally:
        proc.terminate()
        proc.wait(30)
        sched.close()
    ev = cs["cmdstat_evalsha"]
    text = (f"eager latency breakdown over {n} tasks (medians, ms)\n"
            f"  EVALSHA 'return 1' round trip from Python: {statistics.median(rt) * 1000:.3f}\n"
            f"  sched.submit (eager, assigns to the idle processor): {statistics.median(sub) * 1000:.3f}\n"
            f"  submit -> task start: {statistics.median(lat) * 1000:.3f}\n"
            f"  scripts per task (submit, start, ack, result...): {int(ev['calls']) / 200:.1f} EVALSHA, "
            f"{int(ev['usec']) / int(ev['calls']):.1f} us each in Redis on average\n")
    (OUT / "latency-eager.txt").write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40000)
    parser.add_argument("--only", default="processor,submit,latency")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    server = start_redis()
    try:
        only = args.only.split(",")
        if "processor" in only:
            profile_processor(server.url, args.n, "take_next", 1)
            profile_processor(server.url, args.n, "take_next", 4)
            profile_processor(server.url, args.n // 4, "plain", 1)
        if "submit" in only:
            profile_submit(server.url, args.n // 4)
        if "latency" in only:
            latency_breakdown(server.url, 500)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
