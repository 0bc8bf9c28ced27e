"""`luasched processor` and `luasched scheduler` as real processes: start, work, stop, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import luasched

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.real_redis]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "luasched", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("command", ["processor", "scheduler"])
@pytest.mark.parametrize("args, says", [
    (["nosuchmodule:sched"], "cannot import"),
    (["tests.chaos_app:nothing"], "no attribute"),
    (["tests.chaos_app:os"], "not a luasched.Scheduler"),
    (["no-colon"], "module:attribute"),
    # (a processor waits for Redis by default: --connect-timeout gives up)
    (["tests.chaos_app:sched", "--redis", "redis://user:s3cret@127.0.0.1:1/0", "--connect-timeout", "0.5"],
     "cannot reach Redis"),
])
def test_bad_input_is_one_line_and_exit_code_2(command, args, says):
    done = run(command, *args)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "ERROR" not in line and "WARNING" not in line]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout


def test_processor_option_errors(redis_server):
    for extra, says in ((["--grace", "-1"], "--grace"), (["--capacity", "0"], "capacity"),
                        (["--queues", "a b"], "queue"), (["--default-timeout", "0"], "default_timeout"),
                        (["--default-timeout", "nan"], "default_timeout"),
                        (["--take-next", "--dispatch-on-ack"], "exclude each other"),
                        (["--label", "gpu"], "NAME=VALUE"), (["--label", "1gpu=x"], "label name '1gpu'")):
        done = run("processor", "tests.chaos_app:sched", "--redis", redis_server.url, *extra)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr


def test_processor_and_scheduler_run_tasks_and_stop_on_sigterm(redis_server, namespace, tmp_path):
    env = {"CHAOS_DIR": str(tmp_path), "CHAOS_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    import os

    env = dict(os.environ, **env)
    cmd = [sys.executable, "-m", "luasched"]
    proc = subprocess.Popen([*cmd, "processor", "tests.chaos_app:sched", "--redis", redis_server.url,
                             "--capacity", "2", "--no-scheduler", "--log-tasks"],  # the scheduler process places
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    loop = subprocess.Popen([*cmd, "scheduler", "tests.chaos_app:sched", "--redis", redis_server.url],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    try:
        handles = sched.submit_many("record", [(i,) for i in range(20)])
        assert [h.result(timeout=30) for h in handles] == list(range(20))
    finally:
        proc.send_signal(signal.SIGTERM)
        loop.send_signal(signal.SIGTERM)
        out_p = proc.communicate(timeout=30)[1]
        out_l = loop.communicate(timeout=30)[1]
    assert proc.returncode == 0 and loop.returncode == 0, out_p + out_l
    assert "started: capacity 2" in out_p and "stopped after 20 tasks" in out_p
    assert sum(" record attempt 1: done in " in line for line in out_p.splitlines()) == 20
    assert "scheduler started" in out_l and "scheduler stopped" in out_l
    assert sched.counts()["processors"] == 0


def test_a_processor_registers_its_command_line_labels_typed(redis_server, namespace, tmp_path):
    import os

    env = dict(os.environ, CHAOS_DIR=str(tmp_path), CHAOS_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "tests.chaos_app:sched", "--redis",
                             redis_server.url, "--no-scheduler", "--label", "gpu=a100", "--label", "vram_gb=80"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    seen: list[str] = []  # its start line comes after it registers (and after its server checks): wait for it
    try:
        deadline = time.monotonic() + 20
        while not sched.processors() and time.monotonic() < deadline:
            time.sleep(0.05)
        info, = sched.processors()
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if " started: " in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        out = "".join(seen) + proc.communicate(timeout=30)[1]
    assert info.labels == {"gpu": "a100", "vram_gb": 80}
    assert "record" in info.tasks
    assert "labels gpu=a100 vram_gb=80" in out, out
    sched.close()


def test_a_processor_with_dispatch_on_ack_drains_a_backlog_after_one_dispatch(redis_server, namespace, tmp_path):
    """--dispatch-on-ack reaches the processor: no scheduler process, one dispatch call from here
    starts one task, and each ack places the next."""
    import os

    env = dict(os.environ, CHAOS_DIR=str(tmp_path), CHAOS_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "tests.chaos_app:sched", "--redis",
                             redis_server.url, "--dispatch-on-ack", "--no-log-tasks", "--no-scheduler",
                             "--capacity", "1"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    try:
        handles = sched.submit_many("record", [(i,) for i in range(20)])
        deadline = time.monotonic() + 20
        while sched.counts()["processors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sched.dispatch()) == 1
        assert [h.result(timeout=30) for h in handles] == list(range(20))
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "stopped after 20 tasks" in out, out
    sched.close()


@pytest.mark.parametrize("app", ["tests.chaos_app:sched", "tests.aio_app:sched"])
def test_a_second_signal_stops_at_once(app, redis_server, namespace, tmp_path):
    """The first SIGTERM waits for the running task (grace 60 s); a second one stops at once, on
    the threaded and on the asyncio runtime alike, leaving the task to the lease."""
    import os

    env = dict(os.environ, CHAOS_DIR=str(tmp_path), CHAOS_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", app,
                             "--redis", redis_server.url, "--lease", "30", "--grace", "60", "--no-scheduler"],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while sched.counts()["processors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        h = sched.submit("hold", 30.0)  # placed by the submit itself (dispatch_on_submit)
        while h.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.state == "running"
        proc.send_signal(signal.SIGTERM)  # graceful: waits for the running task (grace 60 s) ...
        time.sleep(0.3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)  # ... a second signal: at once
        assert proc.wait(10) == 1
        assert h.state == "running" and sched.counts()["processors"] == 1  # left to the lease
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sched.close()


def test_an_asyncio_app_runs_on_asyncio(redis_server, namespace):
    import os

    env = dict(os.environ, CHAOS_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "luasched"]
    proc = subprocess.Popen([*cmd, "processor", "tests.aio_app:sched", "--redis", redis_server.url,
                             "--capacity", "4"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    loop = subprocess.Popen([*cmd, "scheduler", "tests.aio_app:sched", "--redis", redis_server.url],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    try:
        adds = sched.submit_many("add", [(i, i) for i in range(10)])
        muls = sched.submit_many("mul", [(i, i) for i in range(10)])
        assert [h.result(timeout=30) for h in adds] == [2 * i for i in range(10)]
        assert [h.result(timeout=30) for h in muls] == [i * i for i in range(10)]
        status = subprocess.run([*cmd, "status", "tests.aio_app:sched", "--redis", redis_server.url,
                                 "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr  # the admin commands take an asyncio APP too
        assert json.loads(status.stdout)["counts"]["done"] == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        loop.send_signal(signal.SIGTERM)
        out_p = proc.communicate(timeout=30)[1]
        out_l = loop.communicate(timeout=30)[1]
    assert proc.returncode == 0 and loop.returncode == 0, out_p + out_l
    assert "asyncio" in out_p and "stopped after 20 tasks" in out_p
    assert sched.counts()["processors"] == 0
