"""A/B of the dispatch script: an earlier commit's against the working tree's, call by call.

    .venv/bin/python bench/dispatch_ab.py --base 6557189 --processors 10,100,10000

On one private redis-server and one keyspace, the two versions (``lua/_lib.lua`` + ``lua/dispatch.lua``
of ``--base``, and of the working tree) are loaded side by side and called in turn, ``dispatch``
limit 100 each, so both see the same machine at the same moment: on a shared machine whose speed
drifts by 1.5x between minutes, that is the way to see a 5% change. Processors are registered
by the working tree's ``register`` (records and cards), ``ceil(20,000 / P)`` slots each; the
figure is the median over the calls of wall µs per placed task (the round trip included: the
same for both). Both versions make the same choices (``tests/scripts/test_placement.py``), so
alternating them leaves the rankings as either alone would.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from bench import dispatch_cost  # noqa: E402
from luasched import scripts  # noqa: E402
from luasched.core import ops  # noqa: E402
from luasched.core.tasks import new_request_id  # noqa: E402
from tests.servers import start_redis  # noqa: E402


def source_at(rev: str | None) -> str:
    """The dispatch script as sent to Redis, at ``rev`` (None: the working tree)."""
    def read(name: str) -> str:
        if rev is None:
            return (ROOT / "lua" / name).read_text(encoding="utf-8")
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:lua/{name}"], check=True,
                              capture_output=True, text=True).stdout
    body = read("dispatch.lua")
    return scripts.lib_for(read("_lib.lua"), body) + "\n" + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare the working tree with")
    parser.add_argument("--processors", default="10,100,1000,10000")
    parser.add_argument("--calls", type=int, default=100, help="dispatch calls per version and point")
    args = parser.parse_args()
    versions = {args.base: source_at(args.base), "working tree": source_at(None)}
    server = start_redis()
    try:
        for p in (int(x) for x in args.processors.split(",")):
            sched = luasched.Scheduler(server.url, namespace="bench-ab")
            r = sched.client
            r.flushdb()
            dispatch_cost._register(sched, p, math.ceil(20_000 / p), "ab")
            dispatch_cost._fill(sched, 100 * args.calls * 2 + 1000)
            shas = {name: r.script_load(src) for name, src in versions.items()}
            per_task: dict[str, list[float]] = {name: [] for name in versions}
            for i in range(2 * args.calls):
                name = list(versions)[i % 2]
                call = ops.dispatch(sched.ns, None, 100, new_request_id())
                t = time.perf_counter()
                reply = r.evalsha(shas[name], len(call.keys), *call.keys, *call.args)
                placed = len(reply[0]) // 2
                if placed:
                    per_task[name].append((time.perf_counter() - t) / placed * 1e6)
            found = sched.audit()
            assert found.ok, found.problems
            a, b = (statistics.median(per_task[n]) for n in versions)
            print(f"{p:>6} processors: {args.base} {a:6.2f} µs/task, working tree {b:6.2f} µs/task "
                  f"({(b / a - 1) * 100:+.0f}%)", flush=True)
            sched.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
