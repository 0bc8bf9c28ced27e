"""Throughput of one workload spread over 1, 2, 3 shards of a real 3-master Redis Cluster.

    python bench/cluster.py [--workers 4] [--seconds 5] [--batch 200] [--repeat 3]
                            [--submit-only | --dispatch-only [--fill 400000]]

Starts a 3-master cluster on free loopback ports. For each shard count S, the namespaces come
from ``luasched.sharded.cluster_namespaces`` (one per master, so S shards use S masters) and
--workers processes each run the whole task lifecycle through ``luasched.Sharded`` for --seconds:
``submit_many`` of --batch no-op tasks with dispatch at submit (one round trip per shard, tasks
spread over the shards by id), then for each shard one ``start`` call that starts every task it
was given and one ``ack`` call that acks them all (batch mode; its own processor per shard, on
its own queue): three script calls per shard and batch, each on its namespace's node, so that
the clients' Python costs little per task and the masters do most of the work. Reports tasks/s
(median of --repeat).

It also reads each master's CPU time (INFO cpu) over the run: "busiest master" is the CPU
share of the most loaded master, and "ceiling" = tasks/s / that share, the rate at which that
master would be saturated, i.e. what the shards could carry with a core each for Redis. On a
machine with fewer cores than masters + client processes, measured tasks/s is bounded by the
cores, not by the cluster; the ceiling and the per-master share show the load splitting.

--dispatch-only: the placing step alone, the part of the work that is all Lua on the masters:
before the clock starts, ``Sharded.submit_many`` queues --fill tasks per shard (spread over the
shards by id) and every shard gets processors with room for all its tasks; then each worker
calls ``dispatch(limit=1000)`` on its shard (worker i on shard i mod S) until the time is up.
A call places 1,000 tasks and the client only reads the pairs back, so the masters, not the
clients, are the limit, and the rate grows with the masters the cores can run.

--submit-only: the workers only submit (``submit_many`` of --batch tasks, no dispatch), the
sharded submit alone: per task the client builds 8 arguments and Redis writes a record and a
queue entry, so Redis does most of the work and the rate can grow with the masters even here.

This measures what the servers carry, with clients that batch: with one task per round trip
(the threaded processor runtime), the Python processes are the limit long before Redis is.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luasched  # noqa: E402
from luasched.core import kinds, ops  # noqa: E402
from luasched.core.tasks import new_request_id  # noqa: E402
from luasched.sharded import cluster_namespaces  # noqa: E402
from tests.servers import Cluster, start_cluster  # noqa: E402


def worker(url: str, names: list[str], index: int, start_at: float, seconds: float, batch: int,
           submit_only: bool, out: mp.Queue) -> None:  # type: ignore[type-arg]
    work = luasched.Sharded(url, namespaces=names, dispatch_on_submit=not submit_only)
    work.task(name="noop")(lambda: None)
    queue = f"w{index}"
    procs = work.processor(capacity=batch, queues=(queue,), lease=120.0)
    assert procs.register()
    pairs = list(zip(work.schedulers, procs.processors, strict=True))
    done = 0
    while time.time() < start_at:
        time.sleep(0.001)
    until = start_at + seconds
    while time.time() < until:
        handles = work.submit_many("noop", [()] * batch, queue=queue)
        if submit_only:
            done += len(handles)
            continue
        for sched, proc in pairs:
            n = sum(1 for h in handles if h._sched is sched)
            if not n:
                continue
            started = ops.decode_start(sched.call(ops.start(sched.ns, None, proc.id, "s0", new_request_id(), n)))
            if not started.tasks:
                continue
            finished = [(t, "done", "null") for t in started.tasks]
            statuses = ops.decode_ack(sched.call(ops.ack_many(sched.ns, None, proc.id, "s0", new_request_id(),
                                                              finished, ops.NEXT_NONE, 0))).statuses
            done += statuses.count("done")
    out.put(done)
    procs.deregister()
    work.close()


def dispatcher(url: str, names: list[str], index: int, start_at: float, seconds: float,
               out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Worker of --dispatch-only: dispatch calls of 1,000 on shard index mod S until the time is up."""
    sched = luasched.Scheduler(url, namespace=names[index % len(names)])
    sched.dispatch(limit=1)  # scripts loaded and connected before the clock starts
    placed = 1
    while time.time() < start_at:
        time.sleep(0.001)
    until = start_at + seconds
    while time.time() < until:
        got = len(sched.dispatch(limit=1000))
        if not got:
            raise RuntimeError(f"shard {sched.namespace} ran dry: raise --fill")
        placed += got
    out.put(placed)
    sched.close()


def fill(url: str, names: list[str], per_shard: int) -> None:
    """--dispatch-only set-up: per_shard tasks per shard on average, submitted through
    ``Sharded.submit_many`` (spread over the shards by id), and on every shard processors with
    room for all the tasks it got."""
    work = luasched.Sharded(url, namespaces=names)
    work.task(name="noop")(lambda: None)
    total = per_shard * len(names)
    for start in range(0, total, 10_000):
        work.submit_many("noop", [()] * min(10_000, total - start))
    for sched in work.schedulers:
        queued = sched.counts()["queued"]
        sched.call_many([ops.register(sched.ns, None, f"bench-{i}", 4096, 600_000, ("default",), "bench", 0,
                                      kinds.kind_of((), {}))
                         for i in range(-(-queued // 4096))])
    work.close()


def cpu_seconds(cluster: Cluster) -> list[float]:
    """CPU time each node has used so far (user + system, main and background threads)."""
    out = []
    for node in cluster.servers:
        info = node.info("cpu")
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return out


def run(cluster: Cluster, names: list[str], workers: int, seconds: float, batch: int,
        mode: str, per_shard: int) -> tuple[float, float]:
    """(tasks/s, CPU share of the busiest master over the run)."""
    url = cluster.url
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    if mode == "dispatch":
        fill(url, names, per_shard)
    start_at = time.time() + 3.0  # every worker imported and connected before the clock starts
    procs = [ctx.Process(target=dispatcher, args=(url, names, i, start_at, seconds, out))
             if mode == "dispatch" else
             ctx.Process(target=worker, args=(url, names, i, start_at, seconds, batch, mode == "submit", out))
             for i in range(workers)]
    for p in procs:
        p.start()
    time.sleep(max(start_at - time.time(), 0))
    cpu_before = cpu_seconds(cluster)
    time.sleep(seconds)
    busiest = max(b - a for a, b in zip(cpu_before, cpu_seconds(cluster), strict=True)) / seconds
    done = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    check = luasched.Sharded(url, namespaces=names)
    if mode == "dispatch":  # conservation from the counters (an audit of 10^6 tasks blocks for long)
        counts = check.counts()
        assert counts["submitted"] == per_shard * len(names), counts
        assert counts["queued"] + counts["assigned"] == counts["submitted"], counts
        assert counts["assigned"] == done, (counts, done)
    else:
        assert check.audit().ok
    check.purge()
    check.close()
    return done / seconds, busiest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--submit-only", action="store_true", help="the workers only submit (no processing)")
    parser.add_argument("--dispatch-only", action="store_true",
                        help="the workers only dispatch tasks queued before the clock starts")
    parser.add_argument("--fill", type=int, default=400_000,
                        help="--dispatch-only: tasks queued per shard before each run")
    args = parser.parse_args()
    if args.submit_only and args.dispatch_only:
        parser.error("--submit-only and --dispatch-only exclude each other")
    mode = "submit" if args.submit_only else "dispatch" if args.dispatch_only else "all"
    # long script calls (a dispatch of 1,000, a purge of 10^6 keys) must not look like a dead node
    cluster = start_cluster(3, "--cluster-node-timeout", "60000")
    try:
        client = cluster.client()
        print(f"luasched {luasched.__version__}: 3-master cluster on 127.0.0.1 ports "
              f"{', '.join(str(s.port) for s in cluster.servers)}; {args.workers} worker processes, "
              f"{'submit only, ' if args.submit_only else ''}"
              f"{f'dispatch only, calls of 1000, {args.fill} queued per shard, ' if args.dispatch_only else ''}"
              f"batches of {args.batch}, "
              f"{args.seconds:g} s per run, median of {args.repeat}; "
              f"{os.cpu_count()} CPU cores")
        print(f"{'shards':>6} {'masters':>7} {'tasks/s':>9} {'busiest master':>15} {'ceiling tasks/s':>16}")
        for shards in (1, 2, 3):
            names = cluster_namespaces(client, f"bench{shards}", shards)
            used = len({client.get_node_from_key(f"luasched:{{{n}}}:stats").name for n in names})
            runs = [run(cluster, names, args.workers, args.seconds, args.batch, mode, args.fill)
                    for _ in range(args.repeat)]
            rate = statistics.median(r for r, _ in runs)
            share = statistics.median(b for _, b in runs)
            print(f"{shards:>6} {used:>7} {rate:9.0f} {share * 100:14.0f}% {rate / share:16.0f}")
        client.close()
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()
