"""One measurement of one system, run by bench/run.py in that system's virtual environment.

    python bench/driver.py SYSTEM ACTION --url URL [options]      (prints one JSON line)

SYSTEM is an adapter module under bench/peers/ (rq, arq, saq, dramatiq, celery, huey, taskiq,
luasched) and --variant picks a variant of it. ACTION is one of:

    submit      time n submissions (no worker running): one call each, or --batch B per bulk call
    memory      Redis used_memory before and after n tasks are queued (no worker running)
    throughput  submit n tasks (bulk when possible; not timed), then start the workers and time
                the drain; with --stats also INFO commandstats and round trips per process
    latency     start the workers; n times: submit one marker task, wait for it, record
                start time - submit time (low load: one task at a time, 2 ms apart)

The Redis database is expected empty (the runner FLUSHDBs before each call).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: A snapshot of luasched's committed source (bench/run.py --core head): it comes first on the
#: path of this process and of every luasched process, so concurrent edits are not measured.
SRC = os.environ.get("BENCH_LUASCHED_SRC", "")
RTCOUNT = ROOT / "bench" / "rtcount"
SENTINEL = "bench:sentinel"
LATENCY_KEY = "bench:latency"
POLL_S = 0.005


def rt_count() -> Any:
    """This process's round-trip counter (bench/rtcount/sitecustomize.py), or None."""
    mod = sys.modules.get("sitecustomize")
    return mod if mod is not None and hasattr(mod, "COUNT") else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def session_cpu_s(sessions: set[int]) -> float:
    """CPU seconds (user + system) used so far by every live process of these sessions (each
    worker is started as a session leader, so its forked children are found too)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:  # field 6 of stat: session id
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(r: Any) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def commandstats(r: Any) -> dict[str, dict[str, float]]:
    """calls and usec per command, without the benchmark's own INFO and CONFIG."""
    out = {}
    for name, v in r.info("commandstats").items():
        cmd = name.removeprefix("cmdstat_")
        if cmd.split("|")[0] in ("info", "config"):
            continue
        out[cmd] = {"calls": int(v["calls"]), "usec": int(v["usec"])}
    return out


def minus(stats: dict[str, dict[str, float]], poll: Counter[str]) -> dict[str, dict[str, float]]:
    """commandstats without the poller's own commands (usec scaled down with the calls)."""
    out = {}
    for cmd, v in stats.items():
        calls = v["calls"] - poll.get(cmd, 0)
        if calls <= 0:
            continue
        out[cmd] = {"calls": calls, "usec": v["usec"] * calls / v["calls"]}
    return out


class Workers:
    """The worker (and scheduler) processes of one measurement."""

    def __init__(self, ad: Any, rtdir: Path | None) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[tuple[str, Path]] = []
        bindir = Path(sys.executable).parent
        for i, argv in enumerate(ad.worker_commands()):
            env = dict(os.environ, **ad.worker_env(), BENCH_REDIS_URL=ad.url,
                       PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
            path = [p for p in (SRC, str(ROOT)) if p]
            if rtdir is not None:
                path.insert(0, str(RTCOUNT))
                rt = rtdir / f"worker{i}.json"
                env["BENCH_RT_FILE"] = str(rt)
                self.files.append(("scheduler" if "scheduler" in argv else "worker", rt))
            else:
                env.pop("BENCH_RT_FILE", None)
            env["PYTHONPATH"] = os.pathsep.join(path)
            if argv[0] != sys.executable:
                argv = [str(bindir / argv[0]), *argv[1:]]
            # a session of its own: stop() signals the whole group (taskiq forks a child worker)
            # cwd: `python -m` puts it first on sys.path, so luasched comes from the snapshot
            self.procs.append(subprocess.Popen(argv, cwd=SRC or ROOT, env=env, stdout=subprocess.DEVNULL,
                                               start_new_session=True))

    def check(self) -> None:
        for p in self.procs:
            code = p.poll()
            if code not in (None, 0):
                raise RuntimeError(f"worker {p.args} exited with {code}")

    def round_trips(self) -> dict[str, int]:
        """Round trips by role, summed over each process and its forked children."""
        out: Counter[str] = Counter()
        for role, f in self.files:
            for part in f.parent.glob(f.name + ".*"):
                if not part.name.endswith(".tmp"):
                    out[role] += json.loads(part.read_text())["round_trips"]
        return dict(out)

    def stop(self) -> None:
        for p in self.procs:
            self._signal(p, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                pass
            self._signal(p, signal.SIGKILL)  # whatever is left of its group
            p.wait()

    @staticmethod
    def _signal(p: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass


def submit_backlog(ad: Any, n: int, one: bool = False) -> None:
    if ad.batch_api and not one:
        ad.submit_batch(n, 1000)
    else:
        ad.submit_one(n)


def do_submit(ad: Any, n: int, batch: int) -> dict[str, Any]:
    ad.submit_one(50)  # connections, script loads
    start = time.perf_counter()
    if batch:
        ad.submit_batch(n, batch)
    else:
        ad.submit_one(n)
    elapsed = time.perf_counter() - start
    return {"rate": n / elapsed, "elapsed_s": elapsed, "n": n, "batch": batch}


def do_memory(ad: Any, n: int) -> dict[str, Any]:
    ad.submit_one(10)
    before = int(ad.redis.info("memory")["used_memory"])
    keys_before = int(ad.redis.dbsize())
    submit_backlog(ad, n)
    after = int(ad.redis.info("memory")["used_memory"])
    keys = int(ad.redis.dbsize()) - keys_before
    return {"bytes_per_task": (after - before) / n, "used_memory_delta": after - before, "n": n,
            "keys_per_task": keys / n}


def do_throughput(ad: Any, n: int, stats: bool, timeout_s: float, one: bool = False) -> dict[str, Any]:
    r = ad.redis
    ad.draining = True
    counter = rt_count()
    out: dict[str, Any] = {"n": n}
    if stats:
        r.config_resetstat()
    rt0 = counter.COUNT["round_trips"] if counter else 0
    submit_backlog(ad, n, one)
    out["submitted"] = "one at a time" if one or not ad.batch_api else "bulk"
    total = n
    if not ad.exact_remaining:
        ad.submit_marker(SENTINEL)
        total += 1
    if counter:
        out["round_trips_producer"] = counter.COUNT["round_trips"] - rt0
        counter.ENABLED[0] = False  # the poll below is not part of any system
    if stats:
        out["commands_submit"] = commandstats(r)
        r.config_resetstat()
    ad.poll_commands.clear()
    rtdir = Path(tempfile.mkdtemp(prefix="bench-rt-")) if stats else None
    cpu0 = redis_cpu_s(r)
    launched = time.perf_counter()
    workers = Workers(ad, rtdir)
    try:
        kicked = False
        t0 = launched
        sessions = {p.pid for p in workers.procs}
        wcpu0 = 0.0
        deadline = launched + timeout_s
        while True:
            now = time.perf_counter()
            if not kicked:
                kicked = ad.kick()
            left = ad.remaining(total)
            if left >= total:
                t0 = now
                wcpu0 = session_cpu_s(sessions)  # the workers' start-up, not counted
            if left == 0:
                ad.poll_commands["llen"] += 0 if ad.exact_remaining else 1
                if ad.exact_remaining or r.llen(SENTINEL) > 0:
                    t_end = now
                    break
            if now > deadline:
                raise RuntimeError(f"{ad.label()}: {left} of {total} tasks left after {timeout_s} s")
            workers.check()
            time.sleep(POLL_S)
        cpu1 = redis_cpu_s(r)
        wcpu1 = session_cpu_s(sessions)
        elapsed = t_end - t0
        out.update(rate=n / elapsed, elapsed_s=elapsed, startup_s=t0 - launched,
                   redis_cpu_s=cpu1 - cpu0, redis_cpu_us_per_task=(cpu1 - cpu0) / n * 1e6,
                   redis_cpu_pct=100 * (cpu1 - cpu0) / max(t_end - launched, 1e-9),
                   worker_cpu_us_per_task=(wcpu1 - wcpu0) / n * 1e6)
        if stats:
            out["commands_process"] = minus(commandstats(r), ad.poll_commands)
            time.sleep(1.0)  # workers idle now: let their round-trip files settle (written every 0.2 s)
            out["round_trips_process"] = workers.round_trips()
            out["note"] = "process-side counts include the workers' start-up and 1 s of idling"
    finally:
        workers.stop()
    return out


def do_latency(ad: Any, n: int, warmup: int) -> dict[str, Any]:
    r = ad.redis
    workers = Workers(ad, None)
    try:
        deadline = time.monotonic() + 60
        while not ad.kick():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ad.label()}: workers did not come up")
            time.sleep(0.01)

        def once(timeout: float) -> float:
            if getattr(ad, "wait_with_result", False):
                return float(ad.result_latency_once())
            sent = time.time()
            ad.submit_marker(LATENCY_KEY)
            got = r.blpop([LATENCY_KEY], timeout=timeout)
            if got is None:
                workers.check()
                raise RuntimeError(f"{ad.label()}: the marker task did not start within {timeout} s")
            return float(got[1]) - sent

        for _ in range(warmup):
            once(60)
        lat = []
        for _ in range(n):
            lat.append(once(30) * 1000)
            time.sleep(0.002)  # low load: the worker is idle when the next task comes
    finally:
        workers.stop()
    return {"p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99), "max_ms": max(lat),
            "mean_ms": statistics.fmean(lat), "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system")
    parser.add_argument("action", choices=("submit", "memory", "throughput", "latency", "info"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--variant", default="")
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--one", action="store_true", help="throughput: submit the backlog one task per call")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    os.environ["BENCH_REDIS_URL"] = args.url  # before the adapter's module makes its broker
    sys.path.insert(0, str(ROOT))
    if SRC:
        sys.path.insert(0, SRC)
    module = importlib.import_module(f"bench.peers.{args.system}_")
    ad = module.Adapter(args.url, args.variant, args.capacity, args.processes)
    try:
        if args.action == "submit":
            result = do_submit(ad, args.n, args.batch)
        elif args.action == "memory":
            result = do_memory(ad, args.n)
        elif args.action == "throughput":
            if args.stats and hasattr(ad, "cheap_poll"):
                ad.cheap_poll = True
            result = do_throughput(ad, args.n, args.stats, args.timeout, args.one)
        elif args.action == "latency":
            result = do_latency(ad, args.n, args.warmup)
        else:
            result = {}
        result.update(system=args.system, label=ad.label(), version=ad.version,
                      concurrency=ad.concurrency, batch_api=ad.batch_api)
    finally:
        ad.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
