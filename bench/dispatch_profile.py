"""Where the dispatch script's time goes when each task goes to a processor of its own.

Section 6 of bench/README.md finds dispatch ~2x dearer per task with 100 or more idle processors
than with 10: a call's 100 tasks then go to 100 processors, one each, instead of 10 each to 10.
This prices the work done per processor touched by leaving it out: each ABLATION below is the
dispatch script with one part removed (NOT a valid script: it is run on a private Redis only, to
time what is left), measured beside the script as it is. Every (ablation, processors) point is set
up in its own namespace of one Redis (processors all idle, capacity ceil(D/P), D = 5,000 tasks
placed per point, 100 per call) and their calls alternate one by one, so the machine's drift
falls on all alike. Figures: EVALSHA usec from ``INFO commandstats`` per task placed.

    .venv/bin/python bench/dispatch_profile.py [--repeat 3]

Writes bench/results/dispatch_profile.json; the summary is in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from bench.dispatch_cost import _fill, _register  # noqa: E402
from luasched import scripts  # noqa: E402
from luasched.core import ops  # noqa: E402
from luasched.core.tasks import new_request_id  # noqa: E402
from tests.servers import start_redis  # noqa: E402

#: name -> [(text in lua/lib/placement.lua, what replaces it)]
ABLATIONS: dict[str, list[tuple[str, str]]] = {
    "as is": [],
    "no ranking write-back (the ZADD / ZREM / SREM of flush)": [
        ("    call_chunked('ZADD', pl.P .. 'idle:' .. q, args)", "    local _ = args"),
        ("    call_chunked('ZREM', pl.P .. 'idle:' .. q, pids)", "    local _ = pids"),
        ("    call_chunked('SREM', pl.idle, full)", "    local _ = full"),
    ],
    "no card read (HMGET cards, parse)": [
        ("    local cards = redis.call('HMGET', pl.cards, unpack(unknown))\n", "    local cards = {}\n"),
        ("        cap, qs, dl = unpack(redis.call('HMGET', pl.P .. 'p:' .. pid, PROC_CAPACITY, PROC_QUEUES, "
         "PROC_DEADLINE_MS))",
         "        cap, qs, dl = '1000000', 'default', '99999999999999'"),
    ],
    "no wake-up token (RPUSH p:<pid>:w)": [
        ("  redis.call('RPUSH', P .. 'p:' .. pid .. ':w', '1')\n", ""),
    ],
    "no inbox push (RPUSH p:<pid>:i)": [
        ("  redis.call('RPUSH', P .. 'p:' .. pid .. ':i', id)\n", ""),
    ],
}


def ablated(name: str) -> str:
    """The dispatch script as sent, with lua/lib/placement.lua ablated."""
    lib = (scripts.lua_dir() / scripts.LIB_DIR / "placement.lua").read_text()
    for old, new in ABLATIONS[name]:
        if lib.count(old) != 1:
            raise SystemExit(f"ablation {name!r}: {old.strip()!r} is not in lua/lib/placement.lua once; "
                             "update the ablation")
        lib = lib.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lua"
        shutil.copytree(scripts.lua_dir(), folder)
        (folder / scripts.LIB_DIR / "placement.lua").write_text(lib)
        return scripts.LuaTree(folder).build((folder / "dispatch.lua").read_text(), "lua/dispatch.lua")


def run_once(url: str, counts: list[int], want: int) -> dict[tuple[str, int], float]:
    admin = luasched.Scheduler(url, namespace="bench-profile")
    r = admin.client
    r.flushdb()
    points: dict[tuple[str, int], list[Any]] = {}
    for k, name in enumerate(ABLATIONS):
        sha = r.script_load(ablated(name))
        for p in counts:
            sched = luasched.Scheduler(url, namespace=f"bench-profile-{k}-{p}", dispatch_on_submit=False)
            _register(sched, p, math.ceil(want / p), "p")
            _fill(sched, want * 2)
            points[(name, p)] = [sched, sha, 0, 0]  # scheduler, script, EVALSHA usec, tasks placed
    order = list(points)
    rnd = 0
    while any(pt[3] < want for pt in points.values()):
        for key in order[rnd % len(order):] + order[:rnd % len(order)]:
            sched, sha, _, placed = pt = points[key]
            if placed >= want:
                continue
            call = ops.dispatch(sched.ns, None, min(100, want - placed), new_request_id())
            r.config_resetstat()
            got = r.evalsha(sha, len(call.keys), *call.keys, *call.args)
            if not got[0]:
                raise RuntimeError(f"{key}: dispatch placed nothing after {placed} tasks")
            pt[2] += int(r.info("commandstats")["cmdstat_evalsha"]["usec"])
            pt[3] += len(got[0]) // 2
        rnd += 1
    out = {key: pt[2] / pt[3] for key, pt in points.items()}
    for pt in points.values():
        pt[0].close()
    r.flushdb()
    admin.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processors", default="10,1000,10000")
    parser.add_argument("--want", type=int, default=5000)
    args = parser.parse_args()
    counts = [int(x) for x in args.processors.split(",")]
    runs: dict[tuple[str, int], list[float]] = {}
    server = start_redis()
    try:
        for _ in range(args.repeat):
            for key, us in run_once(server.url, counts, args.want).items():
                runs.setdefault(key, []).append(us)
    finally:
        server.stop()
    med = {key: statistics.median(v) for key, v in runs.items()}
    print(f"{'µs per task in the script':58}" + "".join(f"{p:>10,} procs" for p in counts))
    for name in ABLATIONS:
        print(f"{name:58}" + "".join(f"{med[(name, p)]:>16.2f}" for p in counts))
    print("the part's cost (as is - ablation):")
    for name in list(ABLATIONS)[1:]:
        print(f"  {name:56}" + "".join(f"{med[('as is', p)] - med[(name, p)]:>16.2f}" for p in counts))
    out = ROOT / "bench" / "results" / "dispatch_profile.json"
    out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "command": ".venv/bin/python bench/dispatch_profile.py " + " ".join(sys.argv[1:]),
                               "want": args.want, "limit": 100,
                               "rows": [{"ablation": n, "processors": p, "us_per_task_runs": runs[(n, p)],
                                         "us_per_task": med[(n, p)]} for n in ABLATIONS for p in counts]},
                              indent=1) + "\n")
    print(f"-> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
