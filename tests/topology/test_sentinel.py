"""Sentinel: a master, replicas and three sentinels on loopback. The master is SIGKILLed mid-run;
processors and scheduler loops made from a ``redis+sentinel://`` URL follow the failover and
finish the work. And what an asynchronous failover loses: writes the old master acknowledged
but had not replicated are gone with ``durability=0``; with ``durability=1`` every write that was
acknowledged survives, and the ones that could not be replicated raised NotReplicated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.sentinel

import luasched
from tests.servers import Replicated, probe, start_replicated, wait_until
from tests.topology.conftest import need_redis_server

pytestmark = pytest.mark.real_redis


MakeGroup = Callable[..., Replicated]


@pytest.fixture
def make_group() -> Iterator[MakeGroup]:
    """Each test kills its master: a group of its own, stopped by pid at the end."""
    need_redis_server()
    made: list[Replicated] = []

    def make(**kwargs: int) -> Replicated:
        made.append(start_replicated(**kwargs))
        return made[-1]

    yield make
    for g in made:
        g.cleanup()


def failed_over(group: Replicated, old_port: int, timeout: float = 30.0) -> int:
    """Wait until the sentinels name a new master the way clients ask (SENTINEL MASTERS, as
    redis-py's discover_master does: not flagged down), and it accepts writes; its port."""
    sentinel = redis.Sentinel([("127.0.0.1", s.port) for s in group.sentinels], socket_timeout=0.5)
    found: list[int] = []

    def promoted() -> bool:
        try:
            _, port = sentinel.discover_master(group.name)
        except redis.sentinel.MasterNotFoundError:
            return False
        if port == old_port:
            return False
        with probe(port) as c:
            if c.info("replication")["role"] != "master":
                return False
        found.append(port)
        return True

    try:
        wait_until(promoted, "the sentinels promoting a replica", timeout=timeout, every=0.05)
    finally:
        for c in sentinel.sentinels:
            c.close()
    return found[-1]


def test_processors_and_scheduler_loops_follow_a_failover_and_finish(make_group: MakeGroup) -> None:
    group = make_group(replicas=2, sentinels=3)
    url = group.sentinel_url
    sched = luasched.Scheduler(url, "failover")
    producer = sched.connect(url)
    runs: dict[int, int] = {}
    lock = threading.Lock()

    # The timeout is the backstop for an ack the old master had not replicated: that attempt
    # stays "running" on the new master until reap ends it and the task runs again.
    @sched.task(timeout=2.0, max_attempts=5, retry_backoff=0.05)
    def square(i: int) -> int:
        with lock:
            runs[i] = runs.get(i, 0) + 1
        time.sleep(0.01)
        return i * i

    n = 200
    durable = luasched.Scheduler(url, "failover", durability=2, durability_timeout=5.0)
    durable.registry = sched.registry
    group_of_tasks = durable.map(square, [(i,) for i in range(n)])  # on both replicas before the kill
    stop = threading.Event()
    loop = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    loop.start()
    processors = [sched.processor(capacity=2, lease=15.0) for _ in range(2)]
    for p in processors:
        p.start()
    try:
        wait_until(lambda: producer.counts()["done"] >= n // 10, "some tasks done before the kill")
        assert producer.counts()["done"] < n, "kill the master while the work is in flight"
        old = group.master.port
        group.master.stop()  # SIGKILL
        assert failed_over(group, old) in {r.port for r in group.replicas}

        deadline = time.monotonic() + 45
        while True:
            try:
                values = group_of_tasks.results(timeout=5)
                break
            except luasched.ConnectionLost:  # the wait itself is on the (old) primary
                assert time.monotonic() < deadline, "the work did not finish after the failover"
                time.sleep(0.2)
            except luasched.ResultTimeout:
                assert time.monotonic() < deadline, "the work did not finish after the failover"
        assert values == [i * i for i in range(n)]
        assert all(runs.get(i, 0) >= 1 for i in range(n))
        audit = producer.audit()
        assert audit.ok, audit.problems
        assert audit.counts["done"] == n
        # processors and the loop talk to the new master: a fresh task goes through them too
        assert producer.submit(square, 12).result(timeout=15) == 144
    finally:
        for p in processors:
            p.stop(timeout=5)
        stop.set()
        try:
            sched.wake()
        except luasched.LuaschedError:
            pass
        loop.join(10)
        for s in (sched, producer, durable):
            s.close()


def test_what_an_asynchronous_failover_loses_and_what_durability_keeps(make_group: MakeGroup) -> None:
    group = make_group(replicas=1, sentinels=3)
    url = group.sentinel_url
    fast = luasched.Scheduler(url, "loss")  # durability 0: Redis's asynchronous replication
    durable = luasched.Scheduler(url, "loss", durability=1, durability_timeout=0.2)
    durable.registry = fast.registry

    ran: list[str] = []

    @fast.task
    def echo(x: int) -> int:
        info = luasched.current_task()
        assert info is not None
        ran.append(info.id)
        return x

    before = durable.submit_many(echo, [(i,) for i in range(4)])  # replicated (WAIT said so)
    # A redis.Sentinel of your own works too: the master for writes, its replicas for reads.
    yours = redis.Sentinel([("127.0.0.1", s.port) for s in group.sentinels])
    on_object = luasched.Scheduler(yours, "loss", service_name=group.name, read_redis=yours)
    assert on_object.counts()["submitted"] == 4 and on_object.reads.split
    assert on_object.reads.replicas[0].connection_pool.is_master is False  # the sentinels' replicas
    on_object.close()
    assert yours.discover_master(group.name) == ("127.0.0.1", group.master.port)  # still yours, still usable
    for c in yours.sentinels:
        c.close()
    p_fast = fast.processor(capacity=2)
    p_durable = durable.processor(capacity=2)
    assert p_fast.register() and p_durable.register()
    assert len(durable.dispatch(4)) == 4  # two tasks in each inbox, replicated

    # Cut the replica off (paused, so it cannot reconnect): it keeps what it has, and the master
    # now replicates to no one.
    group.replicas[0].pause()
    try:
        with probe(group.master.port) as c:
            c.execute_command("CLIENT", "KILL", "TYPE", "replica")
        acked_fast = [fast.submit(echo, 100 + i) for i in range(10)]  # acknowledged by the master
        assert p_fast.process_available() == 2  # start and ack "done" acknowledged, twice
        refused = 0
        for i in range(3):
            try:
                durable.submit(echo, 200 + i)
            except luasched.NotReplicated:
                refused += 1
        with pytest.raises(luasched.NotReplicated):
            p_durable.process_available()  # its start is not replicated: it says so, runs nothing
        group.master.stop()  # SIGKILL, before anything of the above reached a replica
    finally:
        group.replicas[0].resume()
    failed_over(group, group.master.port)
    assert refused == 3

    after = luasched.Scheduler(url, "loss")
    states = {o.task_id: o.state for o in after.outcomes([h.id for h in before + acked_fast])}
    lost_submits = sum(states[h.id] == "unknown" for h in acked_fast)
    acked_done = list(ran)
    lost_acks = sum(states[t] != "done" for t in acked_done)
    # durability 0: every acknowledged write of the window is gone with the old master.
    assert lost_submits == len(acked_fast) == 10
    assert len(acked_done) == 2 and lost_acks == 2  # these tasks will run again: at-least-once
    # durability 1: everything acknowledged is there; what was not, raised instead.
    assert all(states[h.id] != "unknown" for h in before)
    assert after.audit().ok
    for s in (fast, durable, after):
        s.close()
