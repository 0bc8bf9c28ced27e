"""Real processor and scheduler processes, killed and restarted; the Redis server killed too.

Afterwards every task is done exactly once in luasched, each ran at least once, duplicates stay
within kills x capacity, and audit holds."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import luasched
from tests.servers import RedisServer, start_redis

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.real_redis, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.chaos_app:sched"


class Cluster:
    """The processes of one chaos run, all stopped (by pid) at the end."""

    def __init__(self, server: RedisServer, tmp: Path, namespace: str) -> None:
        self.server = server
        self.dir = tmp / "runs"
        self.dir.mkdir()
        self.namespace = namespace
        self.env = dict(os.environ, CHAOS_DIR=str(self.dir), CHAOS_NAMESPACE=namespace,
                        PYTHONPATH=str(ROOT))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.app = APP  # or tests.aio_app:sched, the asyncio runtime

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{len(self.procs)}-{args[0]}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", "luasched", *args, self.app, "--redis", self.server.url],
                             cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(p)
        return p

    def processor(self, capacity: int = 2, lease: float = 1.0, *, duties: bool = True) -> subprocess.Popen[bytes]:
        """A processor process; ``duties=False``: with --no-scheduler (a scheduler process places)."""
        return self.spawn("processor", "--capacity", str(capacity), "--lease", str(lease),
                          "--grace", "10", "--no-log-tasks", *([] if duties else ["--no-scheduler"]))

    def scheduler(self) -> subprocess.Popen[bytes]:
        return self.spawn("scheduler")

    def runs(self) -> collections.Counter[str]:
        c: collections.Counter[str] = collections.Counter()
        for f in self.dir.glob("*.log"):
            c.update(line for line in f.read_text().split("\n") if line)
        return c

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)

    def tail(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(self.logs.iterdir()))


@pytest.fixture
def own_redis(tmp_path):
    server = start_redis("--appendonly", "yes", "--appendfsync", "always")
    yield server
    server.cleanup()


@pytest.fixture
def cluster(own_redis, tmp_path, namespace):
    c = Cluster(own_redis, tmp_path, namespace)
    yield c
    c.stop_all()


def wait_done(sched: luasched.Scheduler, n: int, cluster: Cluster, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            counts = sched.counts()
        except luasched.ConnectionLost:
            time.sleep(0.2)
            continue
        if counts["done"] + counts["failed"] >= n:
            return counts
        time.sleep(0.2)  # the test watches from outside; luasched itself never polls
    raise AssertionError(f"not finished in {timeout} s: {sched.counts()}\n{cluster.tail()}")


def check_end(sched: luasched.Scheduler, handles: list[luasched.TaskHandle], cluster: Cluster,
              max_duplicates: int) -> collections.Counter[str]:
    outcomes = {o.task_id: o for o in sched.outcomes([h.id for h in handles])}
    assert all(o.state == "done" for o in outcomes.values()), \
        collections.Counter(o.state for o in outcomes.values())
    assert [outcomes[h.id].value() for h in handles] == list(range(len(handles)))
    runs = cluster.runs()
    never = [h.id for h in handles if runs[h.id] == 0]
    assert not never, f"{len(never)} tasks are done but never ran"
    duplicates = sum(n - 1 for n in runs.values())
    assert duplicates <= max_duplicates, f"{duplicates} duplicate runs, more than {max_duplicates}"
    audit = sched.audit()
    assert audit.ok, audit.problems
    assert audit.counts["done"] == len(handles)
    return runs


def test_sigkill_processors_while_they_work(cluster, own_redis, namespace):
    n, capacity = 3000, 2
    sched = luasched.Scheduler(own_redis.client(), namespace=namespace)
    cluster.scheduler()
    workers = [cluster.processor(capacity) for _ in range(6)]
    handles = sched.submit_many("record", [(i,) for i in range(n)])
    kills = 0
    rng = random.Random(7)
    until = time.monotonic() + 4.0
    while time.monotonic() < until:
        time.sleep(0.3)
        victim = rng.choice([w for w in workers if w.poll() is None])
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        kills += 1
        workers[workers.index(victim)] = cluster.processor(capacity)
    wait_done(sched, n, cluster, timeout=120)
    runs = check_end(sched, handles, cluster, max_duplicates=kills * capacity)
    assert kills >= 10
    print(f"{kills} kills, {sum(runs.values()) - n} duplicate runs")  # shown with -s


def test_redis_killed_and_restarted_mid_run(cluster, own_redis, namespace):
    n = 1500
    sched = luasched.Scheduler(own_redis.client(), namespace=namespace)
    cluster.scheduler()
    for _ in range(4):
        cluster.processor(capacity=2, lease=2.0)
    handles = sched.submit_many("record", [(i, 0.01) for i in range(n)])
    deadline = time.monotonic() + 30
    while sched.counts()["done"] < 100 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the processes are up and working
    done_before = sched.counts()["done"]
    assert 0 < done_before < n, "kill Redis while the work is in flight"
    own_redis.stop(signal.SIGKILL)
    time.sleep(1.0)
    restarted = start_redis("--appendonly", "yes", "--appendfsync", "always", port=own_redis.port,
                            directory=own_redis.dir)
    own_redis.process = restarted.process
    sched.client.connection_pool.disconnect()
    counts = wait_done(sched, n, cluster, timeout=120)
    assert counts["done"] >= done_before, "acknowledged completions were lost"
    check_end(sched, handles, cluster, max_duplicates=4 * 2 * 3)


def test_sigterm_stops_gracefully_and_loses_nothing(cluster, own_redis, namespace):
    n = 400
    # Submits that place nothing and processors with --no-scheduler: only the scheduler process
    # places, so work under way means it is up (and has its signal handlers).
    sched = luasched.Scheduler(own_redis.client(), namespace=namespace, dispatch_on_submit=False)
    workers = [cluster.processor(capacity=2, lease=30.0, duties=False) for _ in range(3)]
    deadline = time.monotonic() + 20
    while sched.counts()["processors"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    handles = sched.submit_many("record", [(i, 0.05) for i in range(n)])
    watcher = luasched.Scheduler(own_redis.client(), namespace=namespace)
    sched_proc = cluster.scheduler()
    deadline = time.monotonic() + 30
    while sched.counts()["done"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)  # until work is under way
    for w in workers:
        w.send_signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0, 0, 0], cluster.tail()
    counts = sched.counts()
    assert counts["processors"] == 0 and counts["running"] == 0 and counts["assigned"] == 0
    assert 0 < counts["done"] < n
    sched_proc.send_signal(signal.SIGTERM)
    assert sched_proc.wait(10) == 0
    assert sched.audit().ok
    for _ in range(2):  # the rest runs on new processors, each task exactly once overall
        cluster.processor(capacity=4, lease=30.0)
    cluster.scheduler()
    wait_done(watcher, n, cluster, timeout=60)
    check_end(sched, handles, cluster, max_duplicates=0)


def test_two_schedulers_and_eager_producers_never_hand_out_twice(cluster, own_redis, namespace):
    n = 2000
    sched = luasched.Scheduler(own_redis.client(), namespace=namespace)
    eager = luasched.Scheduler(own_redis.client(), namespace=namespace, dispatch_on_submit=True)
    cluster.scheduler()
    cluster.scheduler()
    for _ in range(4):
        cluster.processor(capacity=2, lease=30.0)
    handles = sched.submit_many("record", [(i,) for i in range(n // 2)])
    handles += [eager.submit("record", i) for i in range(n // 2, n)]
    wait_done(sched, n, cluster, timeout=120)
    runs = check_end(sched, handles, cluster, max_duplicates=0)
    assert set(runs.values()) == {1}
