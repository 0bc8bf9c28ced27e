"""Profiles behind the unmet goals: where a processor and a producer spend their time.

    .venv/bin/python bench/profiles.py [--n 40000] [--only processor,submit,latency]

Needs py-spy in the luasched venv (`.venv/bin/pip install py-spy`). Starts its own redis-server.

- processor: `luasched processor` draining n queued tasks (take_next c1, take_next c4, plain c1
  with a scheduler process), sampled by py-spy at 1 kHz for 3 s in the middle of the drain,
  idle time included (so waiting on Redis shows as socket reads); the scheduler process is
  sampled too in plain mode.
- submit: cProfile of n/4 one-by-one ``Scheduler.submit`` calls in this process.
- latency: cProfile-free breakdown of one eager submit -> start: time of a bare EVALSHA round
  trip of ``return 1``, of the submit call, and of the whole submit -> task start.

Writes bench/results/profiles/<name>.txt: the top functions by own time and by total time
(from py-spy's collapsed stacks), which the analysis in bench/README.md summarises.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# first: this snapshots luasched/ and lua/ at HEAD and puts the snapshot first on the path
from bench.run import HEAD, SRC  # noqa: E402, I001

luasched = importlib.import_module("luasched")
from tests.servers import start_redis  # noqa: E402

OUT = ROOT / "bench" / "results" / "profiles"
PATH = os.pathsep.join(p for p in (SRC, str(ROOT)) if p)
CWD = SRC or str(ROOT)  # `python -m` puts the cwd first on sys.path
PYSPY = Path(sys.executable).parent / "py-spy"


def category(names: list[str]) -> str:
    """What a slot thread is doing, from the frames of a sample (innermost last)."""
    leaf = names[-1]
    if any(".blpop " in f or "_block " in f for f in names):
        return "blocked in BLPOP on its wake list (waiting for work)"
    if "read_from_socket" in leaf or "_socket_can_read" in leaf or "read_response" in leaf:
        return "waiting for Redis's reply (recv; the script runs meanwhile)"
    if "send_packed_command" in leaf:
        return "sending the command (sendall syscall, loopback TCP)"
    if "(redis/" in leaf or "/redis/" in leaf or "(<string>)" in leaf:
        return "redis-py's Python code (command building, pool, parsing)"
    if "bench/app.py" in leaf or "ThreadRunner" in leaf or leaf.startswith("execute "):
        return "running the task"
    if "luasched/" in leaf:
        return "luasched's Python code"
    if "json" in leaf:
        return "JSON"
    return "other: " + leaf


def summarise(raw: Path, title: str, top: int = 25) -> str:
    """Own and total sample shares per function from py-spy's raw (collapsed) output, then the
    slot threads alone (stacks through Processor._slot or the scheduler loop) by category."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    samples = busy = 0
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
        if any("Processor._slot" in f or "Scheduler.run " in f or "Scheduler.run (" in f for f in names):
            busy += n
            cats[category(names)] += n
    lines = [f"# {title}", f"{samples} samples (1 kHz, idle threads included)", ""]
    if busy:
        lines += ["## the slot threads (or the scheduler loop) only, by what they were doing"]
        lines += [f"{100 * c / busy:6.1f}%  {name}" for name, c in cats.most_common(12)]
        lines.append("")
    lines += ["## own time (leaf frames), all threads"]
    lines += [f"{100 * c / samples:6.1f}%  {name}" for name, c in own.most_common(top)]
    lines += ["", "## total time (inclusive), all threads"]
    lines += [f"{100 * c / samples:6.1f}%  {name}" for name, c in total.most_common(top)]
    return "\n".join(lines) + "\n"


def profile_processor(url: str, n: int, mode: str, capacity: int, seconds_: int = 3) -> None:
    """Sample the processes for ``seconds_`` in the middle of a drain of n tasks (steady state:
    py-spy attaches after the work began, so start-up and idle waiting stay out)."""
    sched = luasched.Scheduler(url, namespace="bench-profile")
    sched.client.flushdb()
    env = dict(os.environ, BENCH_NAMESPACE="bench-profile", BENCH_EAGER="0", PYTHONPATH=PATH)
    exe = [sys.executable, "-m", "luasched"]
    take = ["--take-next"] if mode == "take_next" else []
    procs = [subprocess.Popen([*exe, "processor", "bench.app:sched", "--redis", url, "--capacity", str(capacity),
                               "--no-log-tasks", "--log-level", "warning", *take], cwd=CWD, env=env)]
    if mode != "take_next":
        procs.append(subprocess.Popen([*exe, "scheduler", "bench.app:sched", "--redis", url, "--log-level",
                                       "warning"], cwd=CWD, env=env))
    name = f"processor-{mode}-c{capacity}"
    spies = []
    try:
        while sched.counts()["processors"] < 1:
            time.sleep(0.01)
        sched.submit_many("noop", [()] * n)
        if mode == "take_next":
            sched.dispatch(limit=100)
        t = time.perf_counter()
        time.sleep(0.3)
        for i, p in enumerate(procs):
            role = "processor" if i == 0 else "scheduler"
            raw = OUT / f"{name}-{role}.raw"
            spies.append((role, raw, subprocess.Popen(
                [str(PYSPY), "record", "--pid", str(p.pid), "--rate", "1000", "--idle", "--format", "raw",
                 "--output", str(raw), "--duration", str(int(seconds_)), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for _, _, spy in spies:
            spy.wait(60)
        left = n - sched.counts()["done"]
        while sched.counts()["done"] < n:
            time.sleep(0.01)
        rate = n / (time.perf_counter() - t)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sched.close()
    if left <= 0:
        print(f"warning: {name}: the drain ended before the sampling did; raise --n")
    text = (f"luasched at {HEAD}, {name}: {n} tasks at {rate:,.0f}/s, {seconds_} s sampled mid-drain by py-spy "
            f"(which slows it)\n\n")
    for role, raw, _ in spies:
        text += summarise(raw, f"{name} {role}") + "\n"
        raw.unlink()
    (OUT / f"{name}.txt").write_text(text)
    print(text[:3000])


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
    one = r.register_script("return 1")
    one()
    floor = {}
    for what, fn in (("PING", r.ping), ("EVALSHA of 'return 1'", one), ("LPUSH", lambda: r.lpush("bench:x", "1"))):
        t = time.perf_counter()
        for _ in range(5000):
            fn()
        floor[what] = (time.perf_counter() - t) / 5000 * 1e6
    r.delete("bench:x")
    header = ("back-to-back round trips from redis-py on this machine: "
              + ", ".join(f"{k} {v:.0f} us" for k, v in floor.items()) + "\n")
    header += (f"luasched at {HEAD}: submit one by one: {plain:,.0f}/s without the profiler, "
              f"{n / elapsed:,.0f}/s with it; "
              f"the submit script takes {int(ev['usec']) / int(ev['calls']):.1f} us per call in Redis\n")
    header += submit_script_steps(sched) + "\n"
    sched.client.flushdb()
    sched.close()
    (OUT / "submit-one.txt").write_text(header + buf.getvalue())
    print(header + buf.getvalue()[:6000])


#: Where submit.lua is cut to time its steps: (the line the cut comes before, what the step adds).
SUBMIT_STEPS = (
    ("local now = clock_ms", "starting the script (KEYS, ARGV, its helpers' closures)"),
    ("local dispatch = ", "the server's clock (TIME)"),
    ("-- every input checked; writes start here", "checking the input and that the id is new (EXISTS)"),
    ("if #fresh > 0 then", "writing the record and queueing the id (HSET, SADD, RPUSH)"),
    ("local assigned = {}", "the submitted counter (HINCRBY)"),
    ("if #fresh > #assigned / 2 then", "placing at submit (off here)"),
    (None, "the scheduler's wake-up token (LLEN, RPUSH when it waits)"),
)


def submit_script_steps(sched: luasched.Scheduler, calls: int = 1000, rounds: int = 7) -> str:
    """The submit script cut after each step (the rest replaced by ``return 1``), every cut
    called in turn ``calls`` times per round with one new task each: the median EVALSHA usec per
    call of each cut, and what each step adds to the one before."""
    from luasched import scripts
    from luasched.core import ops

    body = (scripts.lua_dir() / "submit.lua").read_text()
    def sent(lua: str) -> tuple[str, str]:  # (the helpers sent, the script as sent)
        built = scripts.build(lua, "lua/submit.lua")
        at = built.rindex("--[[ submit:")
        return built[:at], built[at:]

    prefix = sent(body)[0]  # the helpers the whole script uses
    lines = body.split("\n")
    cuts = []
    for anchor, what in SUBMIT_STEPS:
        at = len(lines) if anchor is None else next(i for i, line in enumerate(lines) if line.startswith(anchor))
        cuts.append((what, prefix + sent("\n".join(lines[:at]) + ("" if anchor is None else "\nreturn 1"))[1]))
    r = sched.client
    shas = [r.script_load(src) for _, src in cuts]
    usec: list[list[float]] = [[] for _ in cuts]
    for _ in range(rounds):
        for k, sha in enumerate(shas):
            r.config_resetstat()
            for _ in range(calls):
                call = ops.submit(sched.ns, None, [sched.submission("noop", (), {})], dispatch=False, group="")[0]
                r.evalsha(sha, len(call.keys), *call.keys, *call.args)
            usec[k].append(int(r.info("commandstats")["cmdstat_evalsha"]["usec"]) / calls)
    out = ["the submit script step by step (EVALSHA usec per call, median of "
           f"{rounds} rounds of {calls} calls, the cuts alternated):"]
    before = 0.0
    for (what, _), xs in zip(cuts, usec, strict=True):
        med = statistics.median(xs)
        out.append(f"  +{med - before:5.2f} us = {med:5.2f}  {what}")
        before = med
    return "\n".join(out) + "\n"


def latency_breakdown(url: str, n: int) -> None:
    """Where the time from submit to start goes, eager mode, one idle processor."""
    import redis

    env = dict(os.environ, BENCH_NAMESPACE="bench-profile", BENCH_EAGER="1", PYTHONPATH=PATH)
    sched = luasched.Scheduler(url, namespace="bench-profile", dispatch_on_submit=True)
    sched.client.flushdb()
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "bench.app:sched", "--redis", url,
                             "--capacity", "1", "--no-log-tasks", "--log-level", "warning"], cwd=CWD, env=env)
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
    text = (f"luasched at {HEAD}: eager latency breakdown over {n} tasks (medians, ms)\n"
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
            profile_processor(server.url, args.n // 2, "plain", 1)
        if "submit" in only:
            profile_submit(server.url, args.n // 4)
        if "latency" in only:
            latency_breakdown(server.url, 500)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
