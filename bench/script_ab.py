"""A/B of the submit and ack scripts: an earlier commit's against the working tree's, block by block.

    .venv/bin/python bench/script_ab.py --base 11187b4

The sibling of dispatch_ab.py (which says how each version's script is assembled): on one
private redis-server and one keyspace, both versions are loaded and called in alternating blocks
of ``--block`` calls (A B B A ...), so both see the same machine at the same moment. Workloads:

- submit 1: one new task per call (no dispatch at submit), the queue growing;
- submit 100: a hundred new tasks per call;
- submit place: one new task per call, placed at once (dispatch at submit, the default) on an
  idle processor whose capacity it never fills;
- ack place: a processor of capacity 1 acks its one running task with next = place, want 1
  (dispatch on ack): the same call places the queue's head on it and starts it at once, so every
  call acks one task and starts the next one;
- ack take: the same with next = take (complete-and-take-next).

A base whose ack.lua still takes next as '0'..'3' gets the digit of the same mode. Figures per
workload: medians over the blocks of wall µs per call (the round trip included: the same for
both) and of the script's own µs per call (``INFO commandstats`` usec of the EVALSHA, reset
before each block).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from bench.dispatch_ab import ratio, source_at, turn  # noqa: E402
from luasched.core import ops  # noqa: E402
from luasched.core.tasks import new_request_id  # noqa: E402
from tests.servers import start_redis  # noqa: E402

#: ack's next modes as ARGV before they had names
DIGITS = {ops.NEXT_NONE: "0", ops.NEXT_INBOX: "1", ops.NEXT_TAKE: "2", ops.NEXT_PLACE: "3"}


def shaped(source: str, call: ops.Call) -> ops.Call:
    """A submit call as ``source`` reads it: a base from before deadlines takes no keep_s (five
    fixed ARGV, not six) and 9 fields per task, not 10; one from before priorities, keys and
    limits 8. A dispatch or start call of such a base has no keep_s at its end either."""
    found = re.search(r"local PER_TASK = (\d+)", source)
    if call.script in ("dispatch", "start"):
        return call if "keep_s" in source.split("]]")[0] else ops.Call(call.script, call.keys, call.args[:-1])
    if found is None or int(found[1]) == ops.PER_TASK:
        return call
    old = int(found[1])
    head, body = list(call.args[:5]), call.args[6:]
    per = ops.PER_TASK
    kept = [v for i in range(0, len(body), per) for v in body[i:i + old]]
    return ops.Call(call.script, call.keys, tuple(head + kept))


class Acker:
    """One processor of capacity 1 whose every ack starts its next task (the chain of a workload)."""

    def __init__(self, sched: luasched.Scheduler, mode: str) -> None:
        self.sched, self.mode = sched, mode
        proc = sched.processor(capacity=1, queues=("default",), lease=3600)
        assert proc.register()
        self.pid = proc.id
        assert sched.dispatch(limit=1)
        start = ops.decode_start(sched.call(ops.start(sched.ns, None, self.pid, "s0", new_request_id())))
        assert start.task is not None
        self.task = start.task

    def call(self, source: str) -> ops.Call:
        call = ops.ack(self.sched.ns, None, self.pid, "s0", new_request_id(), self.task, "done", "1", self.mode)
        if "'place'" not in source:  # a base from before the modes had names
            args = list(call.args)
            args[6] = DIGITS[self.mode]
            call = ops.Call(call.script, call.keys, tuple(args))
        return call

    def took(self, reply: Any) -> None:
        nxt = ops.decode_ack(reply).next
        assert nxt is not None, "the ack started no next task"
        self.task = nxt


def run(r: Any, versions: dict[str, str], make: Callable[[str], ops.Call], took: Callable[[Any], None],
        blocks: int, block: int) -> dict[str, tuple[list[float], list[float]]]:
    """Blocks of calls, the versions in turn: per version, wall and in-script µs per call of each block."""
    shas = {name: r.script_load(src) for name, src in versions.items()}
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in versions}
    for i in range(2 * blocks):
        name = turn(i, list(versions))
        r.config_resetstat()
        wall = 0.0
        for _ in range(block):
            call = make(versions[name])
            t = time.perf_counter()
            reply = r.evalsha(shas[name], len(call.keys), *call.keys, *call.args)
            wall += time.perf_counter() - t
            took(reply)
        usec = int(r.info("commandstats")["cmdstat_evalsha"]["usec"])
        out[name][0].append(wall / block * 1e6)
        out[name][1].append(usec / block)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare the working tree with")
    parser.add_argument("--blocks", type=int, default=100, help="blocks per version and workload")
    parser.add_argument("--block", type=int, default=20, help="calls per block")
    args = parser.parse_args()
    calls = args.blocks * args.block * 2
    server = start_redis()
    try:
        sched = luasched.Scheduler(server.url, namespace="bench-script-ab")
        r = sched.client
        r.flushdb()
        workloads: list[tuple[str, str, Callable[[str], ops.Call], Callable[[Any], None]]] = []
        for n in (1, 100):
            def submit(source: str, n: int = n) -> ops.Call:
                news = [sched.submission("noop", (), {}) for _ in range(n)]
                return shaped(source, ops.submit(sched.ns, None, news)[0])
            workloads.append((f"submit {n}", "submit", submit, lambda reply: None))
        placing = luasched.Scheduler(server.url, namespace="bench-script-ab-placing")
        assert placing.processor(capacity=calls + 10, lease=3600).register()

        def submit_placed(source: str) -> ops.Call:
            news = [placing.submission("noop", (), {})]
            return shaped(source, ops.submit(placing.ns, None, news, dispatch=True)[0])

        def was_placed(reply: Any) -> None:
            assert ops.decode_submit([reply]).assignments, "the submit placed nothing"
        workloads.append(("submit place", "submit", submit_placed, was_placed))
        for mode, label in ((ops.NEXT_PLACE, "place"), (ops.NEXT_TAKE, "take")):
            ns = luasched.Scheduler(server.url, namespace=f"bench-script-ab-{label}", dispatch_on_submit=False)
            ns.submit_many("noop", [()] * (calls + 10))
            acker = Acker(ns, mode)
            workloads.append((f"ack {label}", "ack", acker.call, acker.took))
        for label, script, make, took in workloads:
            versions = {args.base: source_at(args.base, script), "working tree": source_at(None, script)}
            got = run(r, versions, make, took, args.blocks, args.block)
            (wa, ia), (wb, ib) = ((statistics.median(w), statistics.median(i)) for w, i in got.values())
            print(f"{label:>10}: {args.base} {wa:6.2f} µs/call, working tree {wb:6.2f} µs/call, ratio "
                  f"{ratio(wa, wb)}; in the script {ia:6.2f} / {ib:6.2f} µs/call, ratio {ratio(ia, ib)}",
                  flush=True)
        assert placing.counts()["assigned"] == calls
        assert sched.counts()["submitted"] == calls * 101  # every submit created its tasks (an audit of
        # a million tasks would hold the server longer than its busy-script limit)
        sched.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
