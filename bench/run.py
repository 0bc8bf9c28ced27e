"""The benchmark suite: luasched against RQ, arq, saq, dramatiq, Celery, huey and taskiq.

    .venv/bin/python bench/run.py                      # everything, median of 3 runs (~30 min)
    .venv/bin/python bench/run.py --quick              # a smoke run: small n, 1 run (~3 min)
    .venv/bin/python bench/run.py --only latency,memory --systems luasched,huey

Starts its own redis-server on a free loopback port (never 6379), creates the peers' virtual
environment bench/.peers-venv from bench/peers-requirements.txt when it is missing, and runs every
measurement as a subprocess: bench/driver.py under bench/.peers-venv for the peers, under this
interpreter (the luasched venv) for luasched; workers are the systems' own worker commands. The
database is FLUSHed before each measurement. Raw results go to bench/results/<workload>.json
(--quick: bench/results/quick/), then bench/report.py writes the tables into bench/README.md
and bench/plot.py draws bench/plots/*.png.

Workloads: throughput, submit, latency, memory, commands, dispatch, processes (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def snapshot_core() -> tuple[str, str]:
    """luasched/ and lua/ as committed at HEAD, extracted to a temporary folder that goes first
    on every luasched process's path: the working tree is shared with engineers who change the
    core while a suite runs, and a suite must measure one version. --core worktree skips this."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    dest = tempfile.mkdtemp(prefix=f"bench-luasched-{head}-")
    archive = subprocess.run(["git", "archive", "HEAD", "luasched", "lua"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest, head


def _core_arg() -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--core", choices=("head", "worktree"), default="head")
    return str(pre.parse_known_args()[0].core)


CORE = _core_arg()
SRC, HEAD = snapshot_core() if CORE == "head" else ("", "")
if SRC:
    import atexit
    import shutil

    sys.path.insert(0, SRC)
    os.environ["BENCH_LUASCHED_SRC"] = SRC
    atexit.register(shutil.rmtree, SRC, ignore_errors=True)

import luasched  # noqa: E402
from bench import dispatch_cost  # noqa: E402
from tests.servers import start_redis  # noqa: E402

BENCH = ROOT / "bench"
PEERS_VENV = BENCH / ".peers-venv"
PEERS_PY = PEERS_VENV / "bin" / "python"
DRIVER = BENCH / "driver.py"
RTCOUNT = BENCH / "rtcount"

WORKLOADS = ("throughput", "submit", "latency", "memory", "commands", "dispatch", "processes")
PEERS = ("rq", "arq", "saq", "dramatiq", "celery", "huey", "taskiq")
#: (system, variant) of each peer configuration; arq twice: its default poll and a 10 ms poll.
PEER_CONFIGS = [("rq", ""), ("arq", ""), ("arq", "poll10"), ("saq", ""), ("dramatiq", ""),
                ("celery", ""), ("huey", ""), ("taskiq", "")]
LUASCHED_MODES = ("plain", "eager", "take_next")
TP_KEYS = ("rate", "redis_cpu_us_per_task", "redis_cpu_pct", "worker_cpu_us_per_task")


def ensure_peers_venv() -> None:
    if PEERS_PY.exists():
        return
    print(f"creating {PEERS_VENV.relative_to(ROOT)} from bench/peers-requirements.txt", flush=True)
    venv.create(PEERS_VENV, with_pip=True)
    subprocess.run([str(PEERS_PY), "-m", "pip", "install", "-q", "-r",
                    str(BENCH / "peers-requirements.txt")], check=True)


class Runner:
    def __init__(self, url: str, repeat: int, out_dir: Path, systems: set[str]) -> None:
        self.url = url
        self.repeat = repeat
        self.out_dir = out_dir
        self.systems = systems
        import redis

        self.redis = redis.Redis.from_url(url)

    def driver(self, system: str, action: str, *args: Any, variant: str = "", stats: bool = False,
               timeout: float = 900) -> dict[str, Any]:
        """One measurement in a fresh database; the driver's JSON line."""
        self.redis.flushdb()
        py = sys.executable if system == "luasched" else str(PEERS_PY)
        cmd = [py, str(DRIVER), system, action, "--url", self.url, *map(str, args)]
        if variant:
            cmd += ["--variant", variant]
        path = [p for p in (SRC, str(ROOT)) if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        if stats:
            cmd.append("--stats")
            env["PYTHONPATH"] = os.pathsep.join([str(RTCOUNT), *path])
            env["BENCH_RT_FILE"] = str(Path(tempfile.mkdtemp(prefix="bench-rt-")) / "producer")
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        shown = os.path.relpath(py, ROOT) if py.startswith(str(ROOT)) else py
        result["command"] = " ".join([shown, os.path.relpath(cmd[1], ROOT), *cmd[2:]])
        return result

    def repeated(self, system: str, action: str, *args: Any, keys: tuple[str, ...], variant: str = "",
                 stats: bool = False, repeat: int | None = None) -> dict[str, Any]:
        runs = [self.driver(system, action, *args, variant=variant, stats=stats)
                for _ in range(repeat or self.repeat)]
        return self.row(system, args, variant, keys, runs)

    def in_turn(self, action: str, configs: list[tuple[str, tuple[Any, ...], str]],
                keys: tuple[str, ...]) -> list[dict[str, Any]]:
        """Each (system, args, variant) run once per round, ``repeat`` rounds, the rows' medians.
        A shared machine has slow phases that come and go; measured in turn, a phase slows every
        row alike instead of the rows measured during it (in the run of 2026-12-03 09:01 the
        row measured first ran 35% below one that does the same work per task)."""
        runs: list[list[dict[str, Any]]] = [[] for _ in configs]
        for round_ in range(self.repeat):
            print(f"  round {round_ + 1} of {self.repeat}: {len(configs)} rows", flush=True)
            for i, (system, args, variant) in enumerate(configs):
                runs[i].append(self.driver(system, action, *args, variant=variant))
        return [self.row(system, args, variant, keys, r)
                for (system, args, variant), r in zip(configs, runs, strict=True)]

    @staticmethod
    def row(system: str, args: tuple[Any, ...], variant: str, keys: tuple[str, ...],
            runs: list[dict[str, Any]]) -> dict[str, Any]:
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        first = runs[0]
        return {"system": system, "variant": variant, "label": first["label"], "version": first["version"],
                "concurrency": first["concurrency"], "batch_api": first["batch_api"],
                "args": [str(a) for a in args], **med, "runs": runs}

    def warm_up(self, system: str, action: str, *args: Any, variant: str = "") -> None:
        """One untimed run, discarded, before a workload's first row: a fresh redis-server grows
        its memory during its first workload (allocations, page faults), which slowed the row
        measured first and only that one (in the runs of 2026-12-03 the first row's three runs
        rose 3,971 -> 4,527 -> 5,157 tasks/s while its Redis CPU per task fell)."""
        self.driver(system, action, *args, variant=variant)

    def peer_configs(self) -> list[tuple[str, str]]:
        return [(s, v) for s, v in PEER_CONFIGS if s in self.systems]

    def save(self, workload: str, data: dict[str, Any]) -> None:
        data["meta"] = meta(self.redis, self.repeat)
        path = self.out_dir / f"{workload}.json"
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"  -> {path.relative_to(ROOT)}", flush=True)


def git_state() -> str:
    """The commit measured, and whether the core (luasched/, lua/) differed from it."""
    if SRC:
        return f"{HEAD} (luasched/ and lua/ as committed, from a snapshot)"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "luasched", "lua"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in luasched/ or lua/" if dirty else "")


def meta(r: Any, repeat: int) -> dict[str, Any]:
    info = r.info("server")
    return {"git": git_state(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "redis": info["redis_version"], "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "luasched": luasched.__version__,
            "repeat": repeat, "command": "python " + " ".join(sys.argv)}


def say(row: dict[str, Any], *fields: str) -> None:
    print(f"  {row['label']:32} " + "  ".join(f"{f}={row[f]:.4g}" for f in fields), flush=True)


# --- the workloads ---------------------------------------------------------------------------


def w_throughput(run: Runner, n: int) -> None:
    first = ("luasched", "default") if "luasched" in run.systems else run.peer_configs()[0]
    run.warm_up(first[0], "throughput", "--n", n, variant=first[1])
    configs: list[tuple[str, tuple[Any, ...], str]] = []
    if "luasched" in run.systems:
        modes = [("default", 0)]  # what the documented commands give (the capacity is the default's)
        modes += [(mode, cap) for mode in LUASCHED_MODES for cap in (1, 4)]
        modes += [("plain+ack", 1), ("plain+ack", 4), ("take_next+batch", 4), ("take_next+batch", 32),
                  ("plain+batch+ack", 32)]
        configs += [("luasched", ("--n", n, "--capacity", cap), mode) for mode, cap in modes]
    configs += [(system, ("--n", n), variant) for system, variant in run.peer_configs()]
    rows = run.in_turn("throughput", configs, TP_KEYS)
    for row in rows:
        say(row, "rate", "redis_cpu_us_per_task")
    run.save("throughput", {"n": n, "rows": rows})


def w_submit(run: Runner, n_one: int, n_batch: int) -> None:
    rows = []
    if "luasched" in run.systems:
        rows.append({"mode": "one", **run.repeated("luasched", "submit", "--n", n_one, keys=("rate",)),
                     "label": "luasched"})
        say(rows[-1], "rate")
        for batch in (100, 1000):
            rows.append({"mode": f"batch {batch}",
                         **run.repeated("luasched", "submit", "--n", n_batch, "--batch", batch, keys=("rate",)),
                         "label": "luasched"})
            say(rows[-1], "rate")
    for system, variant in run.peer_configs():
        if variant:
            continue  # a worker setting: the producer is the same
        rows.append({"mode": "one", **run.repeated(system, "submit", "--n", n_one, keys=("rate",))})
        say(rows[-1], "rate")
        if rows[-1]["batch_api"]:
            for batch in (100, 1000):
                rows.append({"mode": f"batch {batch}", **run.repeated(system, "submit", "--n", n_batch,
                                                                      "--batch", batch, keys=("rate",))})
                say(rows[-1], "rate")
    run.save("submit", {"n_one": n_one, "n_batch": n_batch, "rows": rows})


LATENCY_MODES = ("default", "plain", "eager", "eager+ack", "plain+result", "eager+result")


def w_latency(run: Runner, n: int, n_slow: int, modes: tuple[str, ...] = LATENCY_MODES) -> None:
    rows = []
    keys = ("p50_ms", "p99_ms", "max_ms", "mean_ms")
    first = ("luasched", "default") if "luasched" in run.systems else run.peer_configs()[0]
    run.warm_up(first[0], "latency", "--n", n, variant=first[1])
    configs: list[tuple[str, tuple[Any, ...], str]] = []
    if "luasched" in run.systems:
        configs += [("luasched", ("--n", n), mode)
                    for mode in modes]
    for system, variant in run.peer_configs():
        # arq's default 0.5 s poll makes each task wait ~0.25 s: fewer tasks, same percentiles
        count = n_slow if (system, variant) == ("arq", "") else n
        configs.append((system, ("--n", count), variant))
    rows = run.in_turn("latency", configs, keys)
    for row in rows:
        say(row, *keys)
    run.save("latency", {"n": n, "n_arq_default": n_slow, "rows": rows})


def w_memory(run: Runner, n: int) -> None:
    rows = []
    keys = ("bytes_per_task", "keys_per_task")
    if "luasched" in run.systems:
        rows.append({**run.repeated("luasched", "memory", "--n", n, keys=keys), "label": "luasched"})
        say(rows[-1], *keys)
    for system, variant in run.peer_configs():
        if variant:
            continue
        rows.append(run.repeated(system, "memory", "--n", n, keys=keys))
        say(rows[-1], *keys)
    run.save("memory", {"n": n, "rows": rows})


def w_commands(run: Runner, n: int) -> None:
    """``run.repeat`` runs each; the row is the run whose processing commands per task are the
    median (its round trips with it), every run kept under ``runs`` (the counts barely move:
    start-up and idle traffic)."""
    rows = []
    configs: list[tuple[str, str, int]] = []
    if "luasched" in run.systems:
        configs += [("luasched", m, c) for m in ("plain", "plain+ack", "take_next") for c in (1, 4)]
        configs += [("luasched", "take_next+batch", 32), ("luasched", "plain+batch+ack", 32)]
    configs += [(s, v, 1) for s, v in run.peer_configs()]
    for system, variant, cap in configs:
        runs = [run.driver(system, "throughput", "--n", n, "--capacity", cap, "--one", variant=variant, stats=True)
                for _ in range(run.repeat)]
        r = dict(sorted(runs, key=lambda x: sum(v["calls"] for v in x["commands_process"].values()))[len(runs) // 2])
        r["variant"] = variant
        r["runs"] = [{k: v for k, v in x.items() if k != "command"} for x in runs]
        rows.append(r)
        sub = r["commands_submit"]
        proc = r["commands_process"]
        rt = r["round_trips_process"]
        print(f"  {r['label']:32} submit: {sum(v['calls'] for v in sub.values()) / n:.2f} cmds/task, "
              f"{r['round_trips_producer'] / n:.2f} rt/task; process: "
              f"{sum(v['calls'] for v in proc.values()) / n:.2f} cmds/task, "
              f"{rt.get('worker', 0) / n:.2f} rt/task worker, {rt.get('scheduler', 0) / n:.2f} scheduler",
              flush=True)
    run.save("commands", {"n": n, "rows": rows})


def w_dispatch(run: Runner, quick: bool) -> None:
    procs = [10, 100, 1000] if quick else [10, 100, 1000, 10000]
    queues = [1000, 10000] if quick else [1000, 10000, 100000, 1000000]
    data = {"by_processors": dispatch_cost.by_processors(run.url, procs, run.repeat),
            "by_registered": dispatch_cost.by_registered(run.url, procs, run.repeat),
            "by_labelled": dispatch_cost.by_labelled(run.url, procs, run.repeat),
            "by_queue": dispatch_cost.by_queue(run.url, queues, run.repeat)}
    run.redis.flushdb()
    run.save("dispatch", data)


def w_processes(run: Runner, n: int) -> None:
    rows = []
    for mode, cap in (("take_next", 1), ("plain", 1), ("plain+ack", 1), ("take_next+batch", 32),
                      ("plain+batch+ack", 32)):
        for procs in (1, 2, 4):
            rows.append(run.repeated("luasched", "throughput", "--n", n, "--processes", procs, "--capacity", cap,
                                     variant=mode, keys=TP_KEYS))
            rows[-1]["processes"] = procs
            say(rows[-1], "rate", "redis_cpu_pct")
    run.save("processes", {"n": n, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small n and one run of each: a smoke test")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--systems", default="luasched," + ",".join(PEERS), help="comma-separated systems")
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite bench/README.md and the plots")
    parser.add_argument("--modes", default=",".join(LATENCY_MODES),
                        help="comma-separated luasched modes of the latency rows (fewer: a partial run, "
                             "kept in bench/results/partial)")
    parser.add_argument("--core", choices=("head", "worktree"), default="head",
                        help="measure luasched as committed at HEAD (a snapshot; default) or the working tree")
    args = parser.parse_args()
    only = [w for w in args.only.split(",") if w]
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    systems = set(s for s in args.systems.split(",") if s)
    repeat = args.repeat or (1 if args.quick else 3)
    modes = tuple(m for m in args.modes.split(",") if m)
    partial = set(modes) != set(LATENCY_MODES)  # its results go apart, never into the README's tables
    out_dir = BENCH / "results" / ("quick" if args.quick else "partial" if partial else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    if systems - {"luasched"}:
        ensure_peers_venv()
    server = start_redis()
    began = time.monotonic()
    try:
        run = Runner(server.url, repeat, out_dir, systems)
        print(f"redis-server {run.redis.info('server')['redis_version']} on 127.0.0.1:{server.port}; "
              f"{repeat} run(s) per figure", flush=True)
        q = args.quick
        for w in only:
            print(f"== {w}", flush=True)
            t = time.monotonic()
            if w == "throughput":
                w_throughput(run, 2000 if q else 20000)
            elif w == "submit":
                w_submit(run, 1000 if q else 5000, 5000 if q else 20000)
            elif w == "latency":
                w_latency(run, 100 if q else 500, 20 if q else 100, modes)
            elif w == "memory":
                w_memory(run, 2000 if q else 20000)
            elif w == "commands":
                w_commands(run, 1000 if q else 5000)
            elif w == "dispatch":
                w_dispatch(run, q)
            elif w == "processes":
                w_processes(run, 5000 if q else 20000)
            print(f"   ({time.monotonic() - t:.0f} s)", flush=True)
    finally:
        server.cleanup()
    print(f"suite done in {time.monotonic() - began:.0f} s", flush=True)
    if not args.no_report:
        subprocess.run([sys.executable, str(BENCH / "report.py"), "--results", str(out_dir)], check=True)
        if PEERS_PY.exists():
            subprocess.run([str(PEERS_PY), str(BENCH / "plot.py"), "--results", str(out_dir)], check=True)


if __name__ == "__main__":
    main()
