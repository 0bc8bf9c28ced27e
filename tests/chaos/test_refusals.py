"""An operator's bad day, on real redis-servers with the CLI's processes: Redis refuses for a
while (out of memory, busy with a long script, unable to save, a replica for a moment), is
loading its data, or is not up yet. Each time: nothing is lost, duplicates stay within what was
in flight, audit holds, every process lives, the fault is logged once per episode and its end
once, and the work resumes by itself within seconds of the condition clearing."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import luasched
from luasched.errors import TRANSIENT
from tests.chaos.test_chaos import APP, ROOT, Cluster, check_end
from tests.servers import RedisServer, free_port, probe, start_redis

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.real_redis, pytest.mark.timeout(120)]

N, PROCESSORS, CAPACITY, LEASE = 400, 2, 2, 2.0


def counts_through(sched: luasched.Scheduler) -> dict[str, int] | None:
    """The counts, or None while Redis refuses or cannot be reached."""
    try:
        return sched.counts()
    except TRANSIENT:
        return None


def finish(sched: luasched.Scheduler, n: int, cluster: Cluster, timeout: float) -> float:
    """Seconds until every task is finished (watched from outside the system under test)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        counts = counts_through(sched)
        if counts is not None and counts["done"] + counts["failed"] >= n:
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"not finished in {timeout} s: {counts_through(sched)}\n{cluster.tail()}")


def recovered(folder: Path, which: Callable[[str], bool]) -> dict[str, str]:
    """The logs, once each one ``which`` names has logged its recovery: a process between two
    tries sees Redis up at its next one (at most 2 s later), perhaps after the work is done."""
    deadline = time.monotonic() + 10
    while True:
        logs = {p.name: p.read_text() for p in folder.iterdir()}
        if all("Redis answers again" in text for name, text in logs.items() if which(name)):
            return logs
        assert time.monotonic() < deadline, logs
        time.sleep(0.1)


def ride_out(cluster: Cluster, server: RedisServer, fault_on: Callable[[], None],
             fault_off: Callable[[], None], *, says: str, reason: str, hold_s: float = 3.0) -> None:
    """Processors at work; the fault for ``hold_s`` (longer than their lease); then the checks."""
    sched = luasched.Scheduler(server.client(), namespace=cluster.namespace)
    procs = [cluster.processor(capacity=CAPACITY, lease=LEASE) for _ in range(PROCESSORS)]
    deadline = time.monotonic() + 20
    while sched.counts()["processors"] < PROCESSORS:
        assert time.monotonic() < deadline, cluster.tail()
        time.sleep(0.05)
    handles = sched.submit_many("record", [(i, 0.02) for i in range(N)])
    while sched.counts()["done"] < N // 10:
        assert time.monotonic() < deadline, cluster.tail()
        time.sleep(0.02)
    fault_on()
    try:
        before = counts_through(sched)
        # A producer meets the refusal at its call, as a LuaschedError naming it; nothing is written.
        with pytest.raises(luasched.ServerRefused) as refused:
            sched.submit("record", -1)
        assert refused.value.reason == reason and says in str(refused.value)
        time.sleep(hold_s)  # the fault lasts: leases lapse meanwhile
        assert all(p.poll() is None for p in procs), cluster.tail()
    finally:
        fault_off()
    took = finish(sched, N, cluster, timeout=30)
    assert took < 15, f"resumed only after {took:.1f} s"
    if before is not None:
        assert sched.counts()["submitted"] == N, "the refused submit wrote nothing"
    check_end(sched, handles, cluster, max_duplicates=PROCESSORS * CAPACITY * 2)
    assert all(p.poll() is None for p in procs), "every process lives\n" + cluster.tail()
    recovered(cluster.logs, lambda name: True)
    for log in sorted(cluster.logs.iterdir()):
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        faults = [line for line in text.splitlines() if says in line]
        # once per episode per part of the process (its processor, its scheduler loop); a lease
        # lost meanwhile makes a new processor id, whose own line may follow
        assert 1 <= len(faults) <= 4, (log.name, faults)
        assert re.search(r"Redis answers again after \d+\.\d s", text), text[-3000:]
    sched.close()


#: The threaded and the asyncio runtime (both front ends' processors and scheduler loops).
APPS = [pytest.param(APP, id="threads"), pytest.param("tests.aio_app:sched", id="asyncio")]


@pytest.fixture
def cluster(request, tmp_path, namespace):
    server = start_redis("--save", "3600 1", "--enable-protected-configs", "yes")
    c = Cluster(server, tmp_path, namespace)
    c.app = getattr(request, "param", APP)
    c.admin = probe(server.port)  # the operator's connection: CONFIG, REPLICAOF, BGSAVE
    yield c
    c.admin.close()
    c.stop_all()
    server.cleanup()


@pytest.mark.parametrize("cluster", APPS, indirect=True)
def test_out_of_memory_is_ridden_out(cluster):
    admin = cluster.admin
    ride_out(cluster, cluster.server, lambda: admin.config_set("maxmemory", 1),
             lambda: admin.config_set("maxmemory", 0), says="out of memory", reason="oom")


def test_a_long_script_is_ridden_out(cluster):
    """BUSY: another client's script spins past busy-reply-threshold, then is killed."""
    admin = cluster.admin
    admin.config_set("busy-reply-threshold", 100)
    spinning: list[BaseException] = []

    def spin() -> None:
        try:
            with probe(cluster.server.port, socket_timeout=60) as client:
                client.eval("while true do end", 0)
        except redis.exceptions.RedisError as exc:
            spinning.append(exc)

    spinner = threading.Thread(target=spin)

    def busy() -> None:
        spinner.start()
        time.sleep(0.3)  # past the threshold: every other client now gets BUSY

    def kill() -> None:
        with probe(cluster.server.port) as client:
            client.script_kill()
        spinner.join(10)

    ride_out(cluster, cluster.server, busy, kill, says="busy running a long script", reason="busy")
    assert spinning and "killed" in str(spinning[0]).lower()


def test_a_failed_save_is_ridden_out(cluster):
    """MISCONF: a background save fails (its folder cannot be written), writes are refused."""
    admin = cluster.admin
    home = admin.config_get("dir")["dir"]

    def fail_save() -> None:
        admin.config_set("dir", "/proc")
        admin.bgsave()
        deadline = time.monotonic() + 10
        while admin.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def save_again() -> None:
        admin.config_set("dir", home)
        admin.bgsave()

    ride_out(cluster, cluster.server, fail_save, save_again, says="cannot save", reason="misconf")


@pytest.mark.parametrize("cluster", APPS, indirect=True)
def test_a_moment_as_a_replica_is_ridden_out_and_no_ack_is_dropped(cluster):
    """READONLY, as during a failover: the server is a replica of a primary that does not answer
    (it keeps its data), then a primary again. Acks refused meanwhile land afterwards: no
    finished task is left running."""
    admin = cluster.admin
    ride_out(cluster, cluster.server, lambda: admin.replicaof("127.0.0.1", free_port()),
             lambda: admin.replicaof("NO", "ONE"), says="read-only replica", reason="readonly")


def _spawn(cluster: Cluster, url: str, *args: str) -> subprocess.Popen[bytes]:
    log = open(cluster.logs / f"{len(cluster.procs)}-{args[0]}.log", "wb")  # noqa: SIM115
    p = subprocess.Popen([sys.executable, "-m", "luasched", *args, APP, "--redis", url],
                         cwd=ROOT, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    cluster.procs.append(p)
    return p


def _loading_server(port: int, directory: Path, keys: int) -> subprocess.Popen[bytes]:
    """A redis-server that spends a few seconds loading ``keys`` keys (key-load-delay)."""
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--save", "", "--appendonly", "no", "--key-load-delay", str(int(2_000_000 / keys)),
                             "--loading-process-events-interval-bytes", "1024",  # answer LOADING meanwhile
                             "--logfile", str(directory / "redis.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_processes_started_before_redis_wait_for_it_through_its_loading(tmp_path, namespace):
    # fewer, longer per-key delays (100 us each, ~2 s in all): a loaded machine stretches each
    # sleep, and 100,000 sleeps of 20 us once took past the 20 s the probe allowed
    port, keys = free_port(), 20_000
    data = tmp_path / "data"
    data.mkdir()
    seed = start_redis(port=port, directory=data)
    pipe = seed.client().pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"filler:{i}", "x")
    pipe.execute()
    seed.client().save()  # dump.rdb: what the restarted server loads, slowly
    seed.stop()
    url = f"redis://127.0.0.1:{port}/0"
    cluster = Cluster(seed, tmp_path, namespace)
    server = None
    try:
        # Nothing listens on the port yet: the processes wait (the default), or give up (exit 2).
        procs = [_spawn(cluster, url, "processor", "--lease", "2", "--no-log-tasks"),
                 _spawn(cluster, url, "scheduler")]
        impatient = _spawn(cluster, f"redis://127.0.0.1:{free_port()}/0", "processor", "--connect-timeout", "1")
        assert impatient.wait(15) == 2
        server = _loading_server(port, data, keys)
        loading_seen = False
        deadline = time.monotonic() + 60
        while True:
            try:
                with probe(port) as client:
                    client.ping()
                break
            except redis.exceptions.BusyLoadingError:
                loading_seen = True
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass  # not listening yet, or too busy loading to answer
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert loading_seen, "the server must have been loading for this test to mean anything"
        assert all(p.poll() is None for p in procs), cluster.tail()
        sched = luasched.Scheduler(url, namespace=namespace)
        handles = sched.submit_many("record", [(i,) for i in range(50)])
        assert [h.result(timeout=20) for h in handles] == list(range(50))
        assert sched.audit().ok
        sched.close()
        logs = recovered(cluster.logs, lambda name: not name.startswith("2-"))
        [gave_up] = [text for name, text in logs.items() if name.startswith("2-")]
        assert "could not register the processor: cannot reach Redis" in gave_up, gave_up
        for name, text in logs.items():
            if name.startswith("2-"):
                continue
            waits = [line for line in text.splitlines() if "waiting for Redis (as long as it takes)" in line]
            assert len(waits) == 1, (name, text[-3000:])
            assert re.search(r"Redis answers again after \d+\.\d s", text), text[-3000:]
            assert "Traceback" not in text, text[-3000:]
    finally:
        cluster.stop_all()
        if server is not None:
            server.kill()
            server.wait(10)
        seed.cleanup()


def test_a_processor_frozen_out_past_its_lease_again_and_again_registers_once(tmp_path, namespace):
    """Its slots and its heartbeat learn of the lost lease at the same moment; only one of them
    registers the new id, so the processor never leaves an orphan registration behind."""
    server = start_redis()
    sched = luasched.Scheduler(server.client(), namespace=namespace)

    @sched.task
    def pause(seconds: float) -> None:
        time.sleep(seconds)

    p = sched.processor(capacity=4, lease=1.0, name="frozen")  # threads: 4 slots and a heartbeat
    p.start()
    try:
        ids = set()
        for _ in range(5):
            sched.submit_many(pause, [(0.05,)] * 8)
            server.pause()
            time.sleep(1.6)  # Redis frozen past the lease
            server.resume()
            deadline = time.monotonic() + 10
            while True:
                counts = sched.counts()
                live = [x.id for x in sched.processors()
                        if x.name == "frozen" and x.lease_deadline_ms > counts["now_ms"]]
                if p.id in live:
                    break
                assert time.monotonic() < deadline, live
                time.sleep(0.05)
            time.sleep(0.5)  # room for a second registration, were there a race
            counts = sched.counts()
            live = [x.id for x in sched.processors() if x.name == "frozen" and x.lease_deadline_ms > counts["now_ms"]]
            assert live == [p.id], f"{len(live)} live registrations of one processor: {live}"
            ids.add(p.id)
        assert len(ids) >= 3, "the freezes must have cost the processor its lease"
        assert p.running
    finally:
        p.stop(timeout=5)
        sched.close()
        server.cleanup()
