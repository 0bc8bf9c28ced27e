"""Read/write split on a real master with two replicas: reads land on the replicas (INFO
commandstats on each server proves where every command ran), scripts and writes stay on the
primary, a script sent to a replica fails at once with a clear error, and durability makes
writes wait for replicas (WAIT in the same round trip)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

import luasched
from luasched import scripts
from luasched.cli import main
from tests.servers import RedisServer, Replicated, probe, start_replicated
from tests.topology.conftest import need_redis_server

pytestmark = pytest.mark.real_redis

_names = iter(range(10**6))


@pytest.fixture(scope="module")
def group() -> Iterator[Replicated]:
    need_redis_server()
    g = start_replicated(replicas=2)
    yield g
    g.cleanup()


@pytest.fixture
def ns() -> str:
    return f"repl-{next(_names)}"


def calls(server: RedisServer) -> dict[str, int]:
    """Command name -> calls that succeeded since the last reset, on one server (an EVALSHA
    refused with NOSCRIPT, then sent again after loading, counts once). Redis before 7.0 counts
    subcommands under their command (``script``, not ``script|load``): named as 7.0 does here."""
    got = {k.removeprefix("cmdstat_"): int(v["calls"]) - int(v.get("failed_calls", 0))
           for k, v in server.info("commandstats").items()}
    if server.version < (7, 0) and "script" in got:
        got["script|load"] = got.pop("script")  # luasched sends no other SCRIPT subcommand
    # a script that writes goes as its function where the server has them: the same call
    got["evalsha"] = got.get("evalsha", 0) + got.pop("fcall", 0)
    got["script|load"] = got.get("script|load", 0) + got.pop("function|load", 0)
    return {name: n for name, n in got.items() if n}


def reset(*servers: RedisServer) -> None:
    for s in servers:
        with probe(s.port) as c:
            c.config_resetstat()


#: Commands that only a reader sends: the replication stream never carries them (Redis
#: replicates a script as its effects, never as EVALSHA).
READS = ("evalsha", "hmget", "hget", "zrange")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "250"})


def fill(group: Replicated, ns: str) -> tuple[luasched.Scheduler, list[luasched.TaskHandle]]:
    """A namespace with tasks done, failed, queued, a processor, a group; durability 2 makes sure
    both replicas have all of it before the test reads them."""
    # dispatch_on_submit=False: the last two stay queued although the processor is idle
    writer = luasched.Scheduler(group.master.url, ns, durability=2, durability_timeout=5.0,
                                dispatch_on_submit=False)

    @writer.task(max_attempts=1)
    def add(a: int, b: int) -> int:
        if a < 0:
            raise ValueError("negative")
        return a + b

    g = writer.map(add, [(1, 2), (3, 4), (-1, 0)])
    p = writer.processor(capacity=3)
    assert p.register()
    writer.dispatch()
    assert p.process_available() == 3
    queued = writer.submit_many(add, [(5, 6), (7, 8)])
    return writer, g.handles + queued


def test_reads_land_on_the_replica_and_writes_on_the_primary(group: Replicated, ns: str) -> None:
    writer, handles = fill(group, ns)
    replica = group.replicas[0]
    with probe(replica.port) as c:
        c.script_flush()  # the script cache is not replicated: the reader must load what it runs
    sched = luasched.Scheduler(group.master.url, ns, read_redis=replica.url)
    reset(group.master, replica, group.replicas[1])

    counts, queues = sched.counts_and_queues()
    procs = sched.processors()
    dead = sched.failed()
    outcomes = sched.outcomes([h.id for h in handles])
    one = sched.outcome(handles[0].id)
    state = sched.handle(handles[-1].id).state
    audit = sched.audit()

    on_master, on_replica, on_other = calls(group.master), calls(replica), calls(group.replicas[1])
    assert not {k for k in READS if on_master.get(k)}, on_master
    assert on_replica["evalsha"] >= 3 and on_replica["script|load"] >= 3  # counts, processors, audit
    assert on_replica["hmget"] >= 1 + len(handles) and on_replica["hget"] >= 1 and on_replica["zrange"] >= 1
    assert not {k for k in READS if on_other.get(k)}, on_other
    # ... and what they read is the primary's state.
    assert (counts["submitted"], counts["done"], counts["failed"], counts["queued"]) == (5, 2, 1, 2)
    assert queues == {"default": 2} and [p.id for p in procs] == [p.id for p in writer.processors()]
    assert [d.error_type for d in dead] == ["ValueError"]
    assert [o.state for o in outcomes] == ["done", "done", "failed", "queued", "queued"]
    assert (one.state, one.value()) == ("done", 3) and state == "queued"
    assert audit.ok and audit.counts == writer.audit().counts

    reset(group.master, replica)
    h = sched.submit("add", 1, 1)
    sched.dispatch()
    sched.reap()
    h.cancel()
    assert calls(group.master)["evalsha"] == 4
    assert not calls(replica).get("evalsha")
    writer.purge()


def test_a_list_of_replicas_is_read_in_turn(group: Replicated, ns: str) -> None:
    fill(group, ns)[0].close()
    r1, r2 = group.replicas
    sched = luasched.Scheduler(group.master.url, ns, read_redis=[r1.url, r2.client()])
    reset(group.master, r1, r2)
    for _ in range(4):
        assert sched.counts()["submitted"] == 5
    assert (calls(r1).get("evalsha"), calls(r2).get("evalsha"), calls(group.master).get("evalsha")) == (2, 2, None)


def test_waiting_for_results_follows_the_primary(group: Replicated, ns: str) -> None:
    sched = luasched.Scheduler(group.master.url, ns, read_redis=group.replicas[0].url)

    @sched.task
    def double(x: int) -> int:
        return 2 * x

    g = sched.map(double, [(1,), (2,)])
    h = sched.submit(double, 5)
    p = sched.processor(capacity=3)
    assert p.register()
    sched.dispatch()
    p.process_available()
    reset(group.master, group.replicas[0])
    assert h.result(timeout=5) == 10 and g.results(timeout=5) == [2, 4]
    on_replica = calls(group.replicas[0])
    assert not {k for k in (*READS, "blpop", "xread") if on_replica.get(k)}, on_replica
    assert calls(group.master)["evalsha"] >= 1 and calls(group.master)["xread"] >= 1
    sched.purge()


def test_a_replica_that_lags_sends_the_task_reads_to_the_primary(group: Replicated, ns: str,
                                                                  redis_server: RedisServer) -> None:
    # The session's plain server stands in for a replica that has seen none of this namespace.
    sched = luasched.Scheduler(group.master.url, ns, read_redis=redis_server.url)
    h = sched.submit("anything", 1)
    assert sched.counts()["submitted"] == 0  # a read of the "replica": it has nothing yet
    assert h.state == "queued"  # unknown there: asked the primary
    assert sched.outcome(h.id).state == "queued"
    assert [o.state for o in sched.outcomes([h.id, "never-made"])] == ["queued", "unknown"]
    with pytest.raises(luasched.TaskNotFound):
        _ = sched.handle("never-made").state
    sched.purge()


@pytest.mark.parametrize("how", ["submit", "submit_many", "dispatch", "counts"])
def test_a_script_sent_to_a_replica_fails_at_once_with_a_clear_error(group: Replicated, ns: str,
                                                                     how: str) -> None:
    wrong = luasched.Scheduler(group.replicas[0].url, ns)  # the replica given as the primary
    began = time.monotonic()
    if how == "counts":  # a read-only script runs there (it is what read_redis does)
        assert wrong.counts()["submitted"] == 0
        return
    with pytest.raises(luasched.ServerRefused, match="the server is a read-only replica") as refused:
        if how == "submit":
            wrong.submit("anything", 1)
        elif how == "submit_many":
            wrong.submit_many("anything", [(i,) for i in range(1500)])  # two scripts in one pipeline
        else:
            wrong.dispatch()
    assert time.monotonic() - began < 2.0
    assert refused.value.reason == "readonly"
    says = {"submit": "could not submit the task", "submit_many": "could not submit the task",
            "dispatch": "could not place queued tasks"}[how]
    assert str(refused.value).startswith(f"{says}: the server is a read-only replica"), refused.value
    assert luasched.Scheduler(group.master.url, ns).counts()["submitted"] == 0


def test_durability_waits_for_replicas_in_the_same_round_trip(group: Replicated, ns: str) -> None:
    sched = luasched.Scheduler(group.master.url, ns, durability=2, durability_timeout=0.3)
    # loaded as luasched sends them (Redis before 7.0 reads no shebang): no NOSCRIPT round (and
    # second WAIT) to count
    sources = scripts.flagged_sources() if group.master.version >= (7, 0) else scripts.sources()
    with probe(group.master.port) as c:
        for source in sources.values():
            c.script_load(source)
        if group.master.version >= (7, 0):  # and the functions of the scripts that write
            for _, library in scripts.libraries().values():
                c.function_load(library, replace=True)
    sched.counts()  # a server that reads no shebang says so now, not in the round trip counted
    reset(group.master)
    h = sched.submit("anything", 1, _id="first")
    sched.counts()  # read-only: no WAIT
    stats = calls(group.master)
    assert stats["wait"] == 1 and stats["evalsha"] == 2
    for r in group.replicas:
        with probe(r.port) as c:
            assert c.hget(sched.keys.task(h.id), "s") == b"queued"

    group.replicas[1].pause()
    try:
        began = time.monotonic()
        with pytest.raises(luasched.NotReplicated) as short:
            sched.submit("anything", 2, _id="second")
        assert 0.3 <= time.monotonic() - began < 2.0
        assert (short.value.acked, short.value.wanted) == (1, 2)
        assert isinstance(short.value, luasched.ConnectionLost)  # the loops retry it as such
        assert "a failover now could lose it" in str(short.value)
        one = luasched.Scheduler(group.master.url, ns, durability=1)
        one.submit("anything", 3, _id="third")  # one replica is enough for durability 1
    finally:
        group.replicas[1].resume()
    # Submitting the same id again is a replay: it creates nothing and now has both replicas.
    sched.submit("anything", 2, _id="second")
    assert sched.counts()["submitted"] == 3
    sched.purge()


def test_cli_status_failed_and_audit_read_the_replica(group: Replicated, ns: str) -> None:
    writer, _ = fill(group, ns)
    replica = group.replicas[1]
    base = ["--redis", group.master.url, "--namespace", ns, "--read-redis", replica.url]
    reset(group.master, replica)

    status = cli("status", *base, "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["counts"]["submitted"] == 5 and report["read_from"] == replica.url
    failed = cli("failed", *base)
    assert failed.exit_code == 0 and "ValueError: negative" in failed.stdout
    audit = cli("audit", *base)
    assert (audit.exit_code, audit.stdout) == (0, "ok\n")
    assert f"read from replica {replica.url}" in audit.stderr

    assert not {k for k in READS if calls(group.master).get(k)}
    assert calls(replica)["evalsha"] >= 3  # status (processors, counts) and audit
    text = cli("status", *base)
    assert f"read from replica {replica.url}" in text.stdout
    writer.purge()


def test_cli_metrics_reads_the_replica(group: Replicated, ns: str) -> None:
    writer, _ = fill(group, ns)
    replica = group.replicas[0]
    reset(group.master, replica)

    shown = cli("metrics", "--redis", group.master.url, "--namespace", ns, "--read-redis", replica.url)

    assert shown.exit_code == 0, shown.output
    assert f"read from replica {replica.url}" in shown.stderr
    assert f'luasched_tasks_submitted_total{{namespace="{ns}"}} 5.0' in shown.stdout
    assert f'luasched_tasks{{namespace="{ns}",state="queued"}} 2.0' in shown.stdout
    assert not calls(group.master).get("evalsha") and calls(replica)["evalsha"] == 1
    writer.purge()


def test_durability_needs_a_real_server() -> None:
    with pytest.raises(ValueError, match="embedded server has none"):
        luasched.Scheduler(None, "x", durability=1)


def test_processor_and_scheduler_commands_take_durability(group: Replicated, ns: str, tmp_path) -> None:
    """--durability N on `luasched processor` and `luasched scheduler`: their scripts' writes
    wait for N replicas (WAIT on the master), though the APP sets none; out of range: exit 2."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, CHAOS_DIR=str(tmp_path), CHAOS_NAMESPACE=ns, PYTHONPATH=str(root))
    base = [sys.executable, "-m", "luasched"]
    bad = subprocess.run([*base, "processor", "tests.chaos_app:sched", "--redis", group.master.url,
                          "--durability", "99"], cwd=root, env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--durability" in bad.stderr and "Traceback" not in bad.stderr
    embedded = subprocess.run([*base, "scheduler", "tests.chaos_app:sched", "--durability", "1"],
                              cwd=root, env=env, capture_output=True, text=True, timeout=30)
    assert embedded.returncode == 2 and "embedded in-process server" in embedded.stderr

    reset(group.master)
    # --no-scheduler: the scheduler process places, so the tasks finishing means it is up (a
    # SIGTERM before it installs its handlers would end it with -15)
    procs = [subprocess.Popen([*base, *command, "tests.chaos_app:sched", "--redis", group.master.url,
                               "--durability", "2"], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
             for command in (["processor", "--no-scheduler", "--no-dispatch-on-ack"], ["scheduler"])]
    producer = luasched.Scheduler(group.master.url, ns)  # durability 0: its submits send no WAIT
    try:
        handles = producer.submit_many("record", [(i,) for i in range(10)])
        assert [h.result(timeout=30) for h in handles] == list(range(10))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        errors = "".join(p.communicate(timeout=30)[1] for p in procs)
    assert all(p.returncode == 0 for p in procs), errors
    # every start, ack and dispatch of those 10 tasks (the plain mode: a start and an ack each) was
    # followed by a WAIT
    assert calls(group.master)["wait"] >= 20
    assert producer.audit().ok
    producer.purge()
