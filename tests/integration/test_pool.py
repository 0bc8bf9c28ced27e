"""The process pool: tasks run in spawned children, killed at their timeout, replaced after a death."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import luasched
from luasched.core import ops
from luasched.pool import ProcessRunner

APP = "tests.pool_app:sched"

pytestmark = pytest.mark.timeout(60)


def gone(pid: int) -> bool:
    """True once no process has this id (a zombie still has it, so this also proves it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def dead(pid: int) -> bool:
    """Gone, or a zombie: for an orphan, whose reaping is up to whatever reaps orphans here."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def pool_children() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "luasched-pool"]


def started(task_id: str, name: str, args_json: str = "[]", timeout_ms: int = 0) -> ops.Started:
    return ops.Started(task_id, name, args_json, 1, timeout_ms)


@pytest.fixture
def pooled(sched: luasched.Scheduler) -> Iterator[Callable[..., luasched.Processor]]:
    """Registered processors with a process pool, by hand; their children are closed at the end."""
    made: list[luasched.Processor] = []

    def make(capacity: int = 1) -> luasched.Processor:
        p = sched.processor(capacity=capacity, pool="process", app=APP)
        assert p.register()
        made.append(p)
        return p

    yield make
    for p in made:
        # stop() closes runners only for a started processor; these were driven by hand.
        p._runners.close()
    assert not pool_children()


@pytest.fixture
def runner() -> Iterator[ProcessRunner]:
    r = ProcessRunner(APP)
    yield r
    r.close()


def run_one(sched: luasched.Scheduler, p: luasched.Processor, handle: luasched.TaskHandle) -> None:
    assert sched.dispatch() == [(handle.id, p.id)]
    assert p.process_available() == 1


def test_tasks_run_in_another_process_and_see_current_task(sched, pooled):
    p = pooled()
    add = sched.submit("add", 2, 3)
    run_one(sched, p, add)
    assert add.result(timeout=5) == 5
    who = sched.submit("whoami")
    run_one(sched, p, who)
    info = who.result(timeout=5)
    assert info["pid"] != os.getpid()
    assert (info["id"], info["attempt"], info["processor"]) == (who.id, 1, p.id)
    assert sched.audit().ok


def test_a_task_past_its_timeout_is_killed_then_retried_then_failed(sched, pooled, clock, tmp_path: Path):
    p = pooled()
    trace = tmp_path / "trace"
    h = sched.submit("sleepy", str(trace), 30, _timeout=0.5, _max_attempts=2, _retry_backoff=1)
    began = time.monotonic()
    run_one(sched, p, h)
    assert time.monotonic() - began < 10, "the 30 s task was not cut short"
    assert trace.read_text() == "started\n"
    assert h.state == "delayed"  # attempt 1 failed; attempt 2 waits out the backoff
    clock.advance(1)
    run_one(sched, p, h)
    assert trace.read_text() == "started\nstarted\n"  # killed twice, never finished
    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=5)
    assert failed.value.error_type == "TaskTimeout"
    assert failed.value.message == f"task {h.id} ran past its timeout of 500 ms and its process was killed"
    assert sched.audit().ok


def test_a_crash_fails_the_task_and_the_next_task_gets_a_fresh_process(sched, pooled):
    p = pooled()
    before = sched.submit("whoami")
    run_one(sched, p, before)
    crash = sched.submit("crash", _max_attempts=1)
    run_one(sched, p, crash)
    with pytest.raises(luasched.TaskFailed) as failed:
        crash.result(timeout=5)
    assert failed.value.error_type == "ProcessDied"
    assert "exit code 3" in failed.value.message
    after = sched.submit("whoami")
    run_one(sched, p, after)
    assert after.result(timeout=5)["pid"] != before.result(timeout=5)["pid"]
    assert gone(before.result(timeout=5)["pid"])
    assert sched.audit().ok


def test_an_unknown_task_name_fails_clearly_in_the_child(sched, pooled):
    p = pooled()
    h = sched.submit("no_such_task", _max_attempts=1)
    run_one(sched, p, h)
    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=5)
    assert failed.value.error_type == "UnknownTask"
    assert "no_such_task" in failed.value.message and "add" in failed.value.message


def test_start_and_stop_run_tasks_end_to_end_and_leave_no_child(sched):
    p = sched.processor(capacity=2, pool="process", app=APP, take_next=True)  # no scheduler loop needed
    p.start()
    try:
        handles = [sched.submit("add", i, i) for i in range(4)] + [sched.submit("whoami") for _ in range(4)]
        sched.dispatch()
        assert [h.result(timeout=20) for h in handles[:4]] == [0, 2, 4, 6]
        pids = {h.result(timeout=20)["pid"] for h in handles[4:]}
    finally:
        assert p.stop(timeout=10)
    assert os.getpid() not in pids and len(pids) <= 2  # one child per slot, reused
    assert all(gone(pid) for pid in pids)
    assert not pool_children()
    assert sched.audit().ok


def test_stop_while_a_task_runs_kills_its_process(sched, tmp_path: Path):
    p = sched.processor(capacity=1, pool="process", app=APP)
    p.start()
    trace = tmp_path / "trace"
    h = sched.submit("sleepy", str(trace), 30)
    sched.dispatch()
    deadline = time.monotonic() + 10
    while not trace.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert trace.exists(), "the task never started"
    assert not p.stop(timeout=0.1)  # the slot is still busy: stop gives up on it and closes the pool
    deadline = time.monotonic() + 10
    while (pool_children() or p.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pool_children() and not p.running
    assert trace.read_text() == "started\n"
    assert h.state != "done"
    assert sched.audit().ok


def test_the_child_ignores_sigint(runner):
    first = runner.run(started("a", "whoami"), "p")
    assert first[0] == "done"
    pid = runner.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    assert runner.run(started("b", "add", "[1,1]"), "p") == ("done", "2")
    assert runner.pid == pid and not gone(pid)


def test_sigint_during_start_up_does_not_kill_the_child(runner):
    """The child blocks SIGINT from its birth until it ignores it: a Ctrl-C storm cannot kill it."""
    answer: list[tuple[str, str]] = []
    t = threading.Thread(target=lambda: answer.append(runner.run(started("a", "add", "[1,2]"), "p")))
    t.start()
    sent = 0
    while t.is_alive():
        pid = runner.pid
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGINT)
            sent += 1
        time.sleep(0.002)
    assert sent and answer == [("done", "3")]


def test_a_child_killed_between_tasks_is_replaced_without_failing_the_next(runner):
    assert runner.run(started("a", "add", "[1,2]"), "p") == ("done", "3")
    pid = runner.pid
    assert pid is not None and runner._process is not None
    os.kill(pid, signal.SIGKILL)
    assert multiprocessing.connection.wait([runner._process.sentinel], 5)
    assert runner.run(started("b", "add", "[2,2]"), "p") == ("done", "4")
    assert runner.pid not in (None, pid) and gone(pid)


HALTED_PARENT = """
import os, sys, threading, time
from luasched.core import ops
from luasched.pool import ProcessRunner

runner = ProcessRunner("tests.pool_app:sched")
runner.run(ops.Started("a", "add", "[1,2]", 1, 0), "p")
print(runner.pid, flush=True)
args = '[' + repr(sys.argv[1]).replace("'", '"') + ', 30]'
threading.Thread(target=runner.run, args=(ops.Started("b", "sleepy", args, 1, 0), "p"), daemon=True).start()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
os._exit(1)  # as a halted processor does: no clean-up at all
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc")
def test_a_child_does_not_outlive_its_parent(tmp_path: Path):
    """A halted processor exits at once; its child must not run on beside the task's next attempt."""
    trace = tmp_path / "trace"
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", HALTED_PARENT, str(trace)], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    with parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.wait(20) == 1
    deadline = time.monotonic() + 10
    while not dead(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dead(child), "the child of a dead processor is still running its task"
    assert trace.read_text() == "started\n"


def test_close_stops_the_child_and_a_closed_runner_starts_again(runner):
    assert runner.run(started("a", "add", "[1,2]"), "p") == ("done", "3")
    pid = runner.pid
    assert pid is not None
    runner.close()
    assert gone(pid) and runner.pid is None and not pool_children()
    assert runner.run(started("b", "add", "[2,2]"), "p") == ("done", "4")
    assert runner.pid not in (None, pid)


def test_close_from_another_thread_while_a_task_runs(runner, tmp_path: Path):
    trace = tmp_path / "trace"
    answer: list[tuple[str, str]] = []
    t = threading.Thread(target=lambda: answer.append(
        runner.run(started("a", "sleepy", f'["{trace}", 30]'), "p")))
    t.start()
    deadline = time.monotonic() + 10
    while not trace.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    runner.close()
    t.join(10)
    assert not t.is_alive() and answer[0][0] == "error" and "ProcessDied" in answer[0][1]
    assert not pool_children()


@pytest.mark.parametrize("app, problem", [
    ("tests.no_such_module:sched", "cannot import 'tests.no_such_module'"),
    ("tests.pool_app:nothing", "has no attribute 'nothing'"),
    ("tests.pool_app:add", "not a luasched.Scheduler"),
])
def test_an_app_the_child_cannot_load_fails_the_task_without_hanging(app, problem):
    r = ProcessRunner(app)
    try:
        outcome, payload = r.run(started("a", "add", "[1,2]"), "p")
    finally:
        r.close()
    assert outcome == "error"
    assert problem in payload and "AppError" in payload
    assert r.pid is None and not pool_children()
