"""A/B of the dispatch script: an earlier commit's against the working tree's, call by call.

    .venv/bin/python bench/dispatch_ab.py --base 6557189 --processors 10,100,10000

On one private redis-server and one keyspace, the two versions (the dispatch script as sent to
Redis at ``--base``, and at the working tree) are loaded side by side and called in turn
(A B B A ...), ``dispatch`` limit 100 each, so both see the same machine at the same moment: on
a shared machine whose speed drifts by 1.5x between minutes, that is the way to see a 5% change.

A base from before ``lua/lib/`` is assembled as its loader did (``lua/_lib.lua``'s helpers the
script names, then the script); a later one through the working tree's loader
(``luasched/scripts.py``, and the field names of ``luasched/core/fields.py`` as they are now) on
its ``lua/`` folder. Calls get the working tree's KEYS and ARGV: a script ignores KEYS it does
not read. Processors are registered by the working tree's ``register`` (records and cards),
``ceil(200 * calls / P)`` slots each (room for every task placed; at most 4096: with few
processors the last calls place nothing and are not counted). The figures are medians over the
calls of wall µs per placed task (the round trip included: the same for both) and of the
script's own µs per placed task (``INFO commandstats`` usec of the EVALSHA, reset before each
call). Both versions make the same choices (``tests/scripts/test_placement.py``), so
alternating them leaves the rankings as either alone would.

``--apart``: for a base whose processors' keys differ from the working tree's (before the idle
rankings per kind, 328071c and earlier), each version gets a namespace of its own, its processors
registered by its own ``register`` script; the calls still alternate, on the same server.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from bench import dispatch_cost  # noqa: E402
from luasched import scripts  # noqa: E402
from luasched.core import kinds, ops  # noqa: E402
from luasched.core.tasks import new_request_id  # noqa: E402
from tests.servers import start_redis  # noqa: E402


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def _legacy_lib_for(lib: str, script: str) -> str:
    """What the loader sent before lua/lib/ (until 11187b4): ``_lib.lua``'s header, then every
    top-level local of it whose name the script's text holds, directly or through another one."""
    top = re.compile(r"^local (?:function (\w+)|([\w, ]+?) =)", re.M)
    comment = re.compile(r"--\[\[.*?\]\]|--[^\n]*", re.S)

    def names(lua: str) -> set[str]:
        return set(re.findall(r"[A-Za-z_]\w*", comment.sub(" ", lua)))

    starts = [m.start() for m in top.finditer(lib)]
    chunks = [lib[a:b] for a, b in zip(starts, [*starts[1:], len(lib)], strict=True)]
    defines = []
    for chunk in chunks:
        m = top.match(chunk)
        assert m is not None
        defines.append({n.strip() for n in (m.group(1) or m.group(2)).split(",")})
    wanted = names(script)
    for i in reversed(range(len(chunks))):
        if defines[i] & wanted:
            wanted |= names(chunks[i])
    return lib[:starts[0]] + "".join(c for c, d in zip(chunks, defines, strict=True) if d & wanted)


def source_at(rev: str | None, name: str = "dispatch") -> str:
    """The script ``name`` as sent to Redis at ``rev`` (None: the working tree)."""
    if rev is None:
        return scripts.sources()[name]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lua"
        for path in _git("ls-tree", "-r", "--name-only", rev, "lua").split():
            (Path(tmp) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / path).write_text(_git("show", f"{rev}:{path}"), encoding="utf-8")
        body = (folder / f"{name}.lua").read_text(encoding="utf-8")
        if (folder / "_lib.lua").exists():
            return _legacy_lib_for((folder / "_lib.lua").read_text(encoding="utf-8"), body) + "\n" + body
        return scripts.LuaTree(folder).build(body, f"lua/{name}.lua")


def timed(r: Any, sha: str, call: ops.Call) -> tuple[Any, float, int]:
    """One EVALSHA: its reply, wall µs (the round trip included) and the script's own µs."""
    r.config_resetstat()
    t = time.perf_counter()
    reply = r.evalsha(sha, len(call.keys), *call.keys, *call.args)
    wall = (time.perf_counter() - t) * 1e6
    return reply, wall, int(r.info("commandstats")["cmdstat_evalsha"]["usec"])


def turn(i: int, names: list[str]) -> str:
    """The version of call (or block) i: A B B A A B B A ..., so that neither always goes first
    (each call meets the state the one before left) and a steady drift falls on both alike."""
    return names[(i + 1) // 2 % 2]


def ratio(a: float, b: float) -> str:
    return f"{b / a:.3f} ({(b / a - 1) * 100:+.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare the working tree with")
    parser.add_argument("--processors", default="10,100,1000,10000")
    parser.add_argument("--calls", type=int, default=100, help="dispatch calls per version and point")
    parser.add_argument("--apart", action="store_true", help="a namespace per version (see above)")
    args = parser.parse_args()
    versions = {args.base: source_at(args.base), "working tree": source_at(None)}
    server = start_redis()
    try:
        for p in (int(x) for x in args.processors.split(",")):
            sched = luasched.Scheduler(server.url, namespace="bench-ab", dispatch_on_submit=False)
            r = sched.client
            r.flushdb()
            shas = {name: r.script_load(src) for name, src in versions.items()}
            slots = min(math.ceil(200 * args.calls / p), 4096)
            on = {name: sched for name in versions}
            if args.apart:
                for rev, name in zip((args.base, None), versions, strict=True):
                    on[name] = luasched.Scheduler(server.url, namespace=f"bench-ab-{'b' if rev else 'w'}",
                                                  dispatch_on_submit=False)
                    register = r.script_load(source_at(rev, "register"))
                    for i in range(p):
                        call = ops.register(on[name].ns, None, f"bench-ab-{i}", slots, 600_000, ("default",), "bench",
                                            0, kinds.kind_of(("noop",), {}))  # they run noop, the tasks' name
                        r.evalsha(register, len(call.keys), *call.keys, *call.args)
                    dispatch_cost._fill(on[name], 100 * args.calls + 1000)
            else:
                dispatch_cost._register(sched, p, slots, "ab")
                dispatch_cost._fill(sched, 100 * args.calls * 2 + 1000)
            wall: dict[str, list[float]] = {name: [] for name in versions}
            inside: dict[str, list[float]] = {name: [] for name in versions}
            for i in range(2 * args.calls):
                name = turn(i, list(versions))
                call = ops.dispatch(on[name].ns, None, 100, new_request_id())
                reply, us, usec = timed(r, shas[name], call)
                placed = len(reply[0]) // 2
                if placed:
                    wall[name].append(us / placed)
                    inside[name].append(usec / placed)
            found = on["working tree"].audit()
            assert found.ok, found.problems
            a, b = (statistics.median(wall[n]) for n in versions)
            ia, ib = (statistics.median(inside[n]) for n in versions)
            print(f"{p:>6} processors: {args.base} {a:6.2f} µs/task, working tree {b:6.2f} µs/task, "
                  f"ratio {ratio(a, b)}; in the script {ia:6.2f} / {ib:6.2f} µs/task, ratio {ratio(ia, ib)}",
                  flush=True)
            sched.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
