"""Chords when a member's processor is SIGKILLed mid-task: the member is reaped and run again
elsewhere (or, on its last attempt, ends failed), and each callback then fires exactly once, as
its _on_failure says. Real processor processes on a real redis-server."""

from __future__ import annotations

import signal
import time

import pytest

import luasched
from tests.chaos.test_chaos import Cluster
from tests.servers import start_redis

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.real_redis, pytest.mark.timeout(120)]


@pytest.fixture
def chaos(tmp_path, namespace):
    """Processor processes of tests.chaos_app on a redis-server of their own, stopped at the end."""
    server = start_redis()
    c = Cluster(server, tmp_path, namespace)
    yield c
    c.stop_all()
    server.cleanup()


def kill_the_stalled(cluster: Cluster, workers: list, timeout: float = 20) -> None:
    """SIGKILL the processor whose stalls_first attempt wrote its pid; forget the pid file."""
    pid_file = cluster.dir / "stalled.pid"
    deadline = time.monotonic() + timeout
    while not pid_file.exists():
        assert time.monotonic() < deadline, cluster.tail()
        time.sleep(0.05)  # the test watches from outside; luasched itself never polls
    victim = next(w for w in workers if w.pid == int(pid_file.read_text()))
    pid_file.unlink()
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    workers[workers.index(victim)] = cluster.processor(2)


def test_a_killed_member_runs_again_and_the_callback_fires_once(chaos: Cluster, namespace: str) -> None:
    sched = luasched.Scheduler(chaos.server.client(), namespace=namespace)
    workers = [chaos.processor(2) for _ in range(3)]
    group = sched.map("stalls_first", [(60.0,)])
    callback = group.then("collect")
    chained = callback.then("collect")
    kill_the_stalled(chaos, workers)
    assert chained.result(timeout=30) == [2]  # the callback returned [2]: the member's second attempt
    assert callback.result(timeout=5) == [2]
    runs = chaos.runs()
    assert (runs[callback.id], runs[chained.id]) == (1, 1)
    assert sched.audit().ok


def test_a_member_killed_on_its_last_attempt_ends_each_callback_by_its_policy(chaos: Cluster, namespace: str) -> None:
    sched = luasched.Scheduler(chaos.server.client(), namespace=namespace)
    workers = [chaos.processor(2) for _ in range(2)]
    group = sched.map("stalls_first", [(60.0,)], max_attempts=1)
    fail, run, skip = (group.then("collect", _on_failure=p) for p in ("fail", "run", "skip"))
    kill_the_stalled(chaos, workers)
    (given,) = run.result(timeout=30)
    assert given["type"] == "LeaseLost" and "lease" in given["error"]
    with pytest.raises(luasched.DependencyFailed):
        fail.result(timeout=5)
    with pytest.raises(luasched.TaskCancelled):
        skip.result(timeout=5)
    runs = chaos.runs()
    assert (runs[run.id], runs[fail.id], runs[skip.id]) == (1, 0, 0)
    assert sched.audit().ok
