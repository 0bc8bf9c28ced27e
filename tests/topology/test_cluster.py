"""Redis Cluster: a real 3-master cluster, started once for the module. The conservation state
machine and the demo run on it; every key of a namespace sits on the namespace's one slot (so
no script can hit CROSSSLOT); Sharded spreads one workload over the masters; purge scans every
primary; durability's WAIT goes to the node that holds the namespace."""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from redis.crc import key_slot

import luasched
from luasched.cli import main
from luasched.sharded import cluster_namespaces
from tests.integration.test_demo import check_report
from tests.property.test_conservation import Conservation
from tests.servers import Cluster, RedisServer, probe

pytestmark = pytest.mark.real_redis

EXAMPLES = max(int(os.environ.get("LUASCHED_PROPERTY_EXAMPLES", "200")) // 4, 10)


def keys_by_node(cluster: Cluster, pattern: str) -> dict[int, list[bytes]]:
    """Node port -> the keys matching ``pattern`` it holds (SCAN on each node itself)."""
    found: dict[int, list[bytes]] = {}
    for node in cluster.servers:
        with probe(node.port) as c:
            keys = list(c.scan_iter(match=pattern, count=1000))
        if keys:
            found[node.port] = keys
    return found


def evalsha_calls(node: RedisServer) -> int:
    stats = node.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


def test_the_conservation_machine_holds_on_a_cluster(cluster: Cluster) -> None:
    machine = type("ConservationOnCluster", (Conservation,), {"make_client": staticmethod(cluster.client)})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))


def test_the_demo_runs_on_a_cluster_url(cluster: Cluster) -> None:
    result = CliRunner().invoke(main, ["demo", "--tasks", "12", "--processors", "3", "--seed", "3",
                                       "--redis", cluster.url], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    check_report(result.stdout, 12, 3)
    assert keys_by_node(cluster, "luasched:{demo-*") == {}  # it cleaned up after itself, on every node


def test_every_key_of_a_namespace_is_on_its_slot_after_a_full_workload(cluster: Cluster) -> None:
    sched = luasched.Scheduler(cluster.url, "slots", keep=60)

    @sched.task(max_attempts=2, retry_backoff=0.01)
    def flaky(i: int) -> int:
        info = luasched.current_task()
        if i % 3 == 0 and info is not None and info.attempt == 1:
            raise RuntimeError("first attempt")
        if i == 4:
            raise ValueError("always")
        return i

    g = sched.map(flaky, [(i,) for i in range(12)])
    h = sched.submit(flaky, 100)
    sched.submit(flaky, 5, _delay=30).cancel()
    stop = threading.Event()
    loop = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    loop.start()
    p = sched.processor(capacity=3, take_next=True)
    p.start()
    try:
        assert h.result(timeout=15) == 100
        values = g.results(timeout=15, return_exceptions=True)
        assert [v for i, v in enumerate(values) if i != 4] == [i for i in range(12) if i != 4]
        assert isinstance(values[4], luasched.TaskFailed)
        assert sched.retry_failed() == [g.ids[4]]
        with pytest.raises(luasched.TaskFailed):  # it fails again: a dead letter, purged here
            sched.handle(g.ids[4]).result(timeout=15)
        assert sched.purge_finished() == 1
        live = keys_by_node(cluster, "luasched:{slots}:*")  # with the processor's own keys
    finally:
        p.stop(timeout=10)
        stop.set()
        sched.wake()
        loop.join(10)
    assert sched.audit().ok
    # the scripts ran with their shebang: Redis then refuses a key of another slot (no
    # allow-cross-slot-keys), even one built inside a script and held by the same node
    assert sched.scripts.flagged
    after = keys_by_node(cluster, "luasched:{slots}:*")
    for on in (live, after):
        assert len(on) == 1, f"the namespace's keys are on {len(on)} nodes"
    keys = [k for ks in live.values() for k in ks]
    kinds = Counter(k.decode().split(":")[2] for k in keys)
    assert {"stats", "t", "g", "gs", "gi", "p", "r", "rate", "queues", "procs"} <= set(kinds), kinds
    assert {key_slot(k) for k in keys} == {key_slot(b"luasched:{slots}:stats")}
    assert sched.purge() == len(next(iter(after.values())))
    assert keys_by_node(cluster, "luasched:{slots}:*") == {}
    sched.close()


def test_a_flagged_script_may_not_reach_past_its_slot(cluster: Cluster) -> None:
    """What keeps every luasched key on its namespace's slot now that scripts carry a shebang:
    a key built inside the script, outside the slot of its KEYS, is refused even on the node
    that holds both, where a plain script (as on Redis 6) was let through."""
    key = "luasched:{reach}:stats"
    node = cluster.owner(key_slot(key.encode()))
    other = next(f"elsewhere:{i}" for i in range(10_000)
                 if key_slot(f"elsewhere:{i}".encode()) != key_slot(key.encode())
                 and cluster.owner(key_slot(f"elsewhere:{i}".encode())) is node)
    reach = "return redis.call('EXISTS', KEYS[1]) + redis.call('EXISTS', ARGV[1])"
    with probe(node.port) as c:
        assert c.eval(reach, 1, key, other) == 0
        with pytest.raises(redis.exceptions.ResponseError, match="do not hash to the same slot"):
            c.eval("#!lua\n" + reach, 1, key, other)


def test_sharded_spreads_one_workload_over_every_master(cluster: Cluster) -> None:
    client = cluster.client()
    names = cluster_namespaces(client, "spread", 3)
    owners = {client.get_node_from_key(f"luasched:{{{n}}}:stats").port for n in names}
    assert owners == {n.port for n in cluster.servers}
    for node in cluster.servers:
        with probe(node.port) as c:
            c.config_resetstat()
    work = luasched.Sharded(client, namespaces=names)

    @work.task
    def double(i: int) -> int:
        return 2 * i

    handles = work.submit_many(double, [(i,) for i in range(90)])
    again = work.submit(double, 7, _id="fixed-id")
    assert work.submit(double, 7, _id="fixed-id").id == again.id  # same shard: created once
    assert Counter(h._sched.namespace for h in handles).keys() == set(names)
    processors = work.processor(capacity=2)
    processors.start()
    stop = threading.Event()
    loop = threading.Thread(target=work.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert [h.result(timeout=15) for h in handles] == [2 * i for i in range(90)]
        assert again.result(timeout=15) == 14
    finally:
        processors.stop(timeout=10)
        stop.set()
        work.wake()
        loop.join(10)
    assert processors.processed == 91
    counts = work.counts()
    assert (counts["submitted"], counts["done"]) == (91, 91)
    assert work.audit().ok
    assert all(evalsha_calls(node) > 30 for node in cluster.servers)  # every master did its share
    assert work.purge() > 0 and keys_by_node(cluster, "luasched:{spread.*") == {}
    work.close()
    client.close()


def test_durability_waits_on_the_node_that_holds_the_namespace(cluster: Cluster) -> None:
    sched = luasched.Scheduler(cluster.client(), "durable-c", durability=1, durability_timeout=0.1)
    holder = sched.client.get_node_from_key(sched.keys.stats).port
    for node in cluster.servers:
        with probe(node.port) as c:
            c.config_resetstat()
    with pytest.raises(luasched.NotReplicated) as short:  # these masters have no replicas
        sched.submit("anything", 1)
    assert (short.value.acked, short.value.wanted) == (0, 1)
    waits: dict[int, Any] = {n.port: n.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
                             for n in cluster.servers}
    assert waits == {n.port: int(n.port == holder) for n in cluster.servers}
    sched.purge()
    sched.client.close()


def test_pipelines_of_scripts_go_to_the_node_and_follow_a_moved_slot(cluster: Cluster) -> None:
    # RedisCluster refuses EVALSHA in its pipelines: luasched sends them through the node's client.
    client = cluster.client()
    sched = luasched.Scheduler(client, "moving")
    first = sched.submit_many("anything", [(i,) for i in range(1500)])  # two scripts, one pipeline
    slot = key_slot(sched.keys.stats.encode())
    holder = cluster.owner(slot)
    other = next(s for s in cluster.servers if s is not holder)
    cluster.move_slot(slot, other)  # the client's slot map is now stale
    second = sched.submit_many("anything", [(i,) for i in range(1500)])  # MOVED, refreshed, sent again
    assert cluster.owner(slot) is other and list(keys_by_node(cluster, "luasched:{moving}:*")) == [other.port]
    counts = sched.counts()
    assert counts["submitted"] == counts["queued"] == 3000
    assert {o.state for o in sched.outcomes([h.id for h in first + second])} == {"queued"}
    assert sched.audit().ok
    sched.purge()
    client.close()
