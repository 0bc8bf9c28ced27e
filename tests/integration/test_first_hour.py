"""The first hour of a new user, through the ``luasched`` command as they meet it: an APP on the
embedded server is refused instead of hanging, ``LUASCHED_REDIS_URL`` points an unchanged APP at
Redis, and an APP that fails to import is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import luasched
from luasched.cli import main
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.cli_app:sched"


def luasched_command(*args: str, env: dict[str, str] | None = None, timeout: float = 30
                     ) -> subprocess.CompletedProcess[str]:
    """``luasched ARGS`` in a process of its own, as a shell runs it."""
    base = {k: v for k, v in os.environ.items() if k != "LUASCHED_REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "luasched", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def one_line_exit_2(done: subprocess.CompletedProcess[str], *says: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for words in says:
        assert words in lines[0], lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


# --- the embedded server is refused, not a silent hang -------------------------------------------


@pytest.mark.parametrize("args", [
    ["processor", APP],
    ["scheduler", APP],
    ["submit", APP, "add", "1", "2", "--wait"],
])
def test_a_long_running_or_waiting_command_refuses_the_embedded_server(args: list[str]) -> None:
    """The README's first line makes a Scheduler on the in-process server; a processor started
    from it, or a submit that waits, would each have a private server and wait forever."""
    line = one_line_exit_2(luasched_command(*args), "embedded in-process server", "--redis URL",
                           "LUASCHED_REDIS_URL", 'redis="redis://..."')
    assert line.startswith(f"luasched {args[0]}: error: APP {APP} runs on the embedded")


@pytest.mark.parametrize("command", ["status", "audit", "failed", "retry-failed", "purge", "health"])
def test_every_admin_command_refuses_the_embedded_server(command: str) -> None:
    result = CliRunner().invoke(main, [command, APP, *(["--yes"] if command == "purge" else [])])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"APP {APP} runs on the embedded in-process server" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_memory_url_names_the_in_process_server_on_purpose() -> None:
    """``--redis memory://`` is the in-process server asked for by name: within one process (a
    test driving the CLI with CliRunner) it works; it is never the silent default."""
    result = CliRunner().invoke(main, ["status", APP, "--redis", "memory://", "--json"])
    assert result.exit_code == 0, result.output
    assert '"namespace": "cli-app"' in result.stdout


# --- LUASCHED_REDIS_URL: one APP, embedded in a test, real in production -----------------------------


def test_a_scheduler_without_redis_reads_the_environment(redis_server: RedisServer, namespace: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUASCHED_REDIS_URL", redis_server.url)
    sched = luasched.Scheduler(namespace=namespace)
    try:
        assert not sched.embedded
        handle = sched.submit("add", 1, 2)
        with redis_server.client() as direct:  # the task is on the real server, not in this process
            assert direct.exists(sched.keys.task(handle.id)) == 1
    finally:
        sched.purge()
        sched.close()
    monkeypatch.delenv("LUASCHED_REDIS_URL")
    alone = luasched.Scheduler(namespace=namespace)
    assert alone.embedded and alone.counts()["submitted"] == 0


def test_the_environment_points_the_commands_at_redis(redis_server: RedisServer, namespace: str) -> None:
    env = {"LUASCHED_REDIS_URL": redis_server.url, "CHAOS_NAMESPACE": namespace}
    done = luasched_command("submit", "tests.chaos_app:sched", "record", "7", env=env)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    sched = luasched.Scheduler(redis_server.url, namespace=namespace)
    try:
        assert sched.handle(task_id).state == "queued"
    finally:
        sched.purge()
        sched.close()


# --- an APP that fails to import: one line, the traceback only with --debug --------------------------


@pytest.mark.parametrize("command", [["status"], ["processor"], ["submit"]])
def test_an_app_that_fails_to_import_is_one_line_and_exit_2(command: list[str]) -> None:
    extra = ["task"] if command == ["submit"] else []
    done = luasched_command(*command, "tests.broken_app:sched", *extra)
    one_line_exit_2(done, "importing 'tests.broken_app'", "RuntimeError",
                    "the APP's settings are missing: DATABASE_URL is not set")


def test_debug_shows_the_traceback_of_the_import() -> None:
    done = luasched_command("--debug", "status", "tests.broken_app:sched")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert 'raise RuntimeError("the APP\'s settings are missing' in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("luasched status: error: importing")


# --- a processor is a complete deployment ---------------------------------------------------------


def test_processors_alone_run_delayed_tasks_retries_and_reaps(redis_server: RedisServer, namespace: str,
                                                              tmp_path: Path) -> None:
    """Two ``luasched processor`` processes and no ``luasched scheduler``: a delayed task is promoted
    and run, a failed attempt is retried after its backoff, and when one processor is killed
    mid-task the other reaps its lapsed lease and runs the task again."""
    env = {**{k: v for k, v in os.environ.items() if k != "LUASCHED_REDIS_URL"}, "PYTHONPATH": str(ROOT),
           "CHAOS_DIR": str(tmp_path), "CHAOS_NAMESPACE": namespace}
    command = [sys.executable, "-m", "luasched", "processor", "tests.chaos_app:sched", "--redis", redis_server.url,
               "--lease", "1", "--capacity", "2", "--grace", "1"]
    logs = [open(tmp_path / f"processor-{i}.log", "wb") for i in range(2)]  # noqa: SIM115
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stderr=log) for log in logs]
    for log in logs:
        log.close()  # the processes hold their own copies
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    try:
        deadline = time.monotonic() + 20
        while sched.counts()["processors"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stalled = sched.submit("stalls_first", 60.0)
        pid_file = tmp_path / "stalled.pid"
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = next(p for p in procs if p.pid == int(pid_file.read_text()))
        victim.send_signal(signal.SIGKILL)  # mid-task: its lease lapses in 1 s
        victim.wait(10)
        delayed = sched.submit("record", 1, _delay=0.5)
        retried = sched.submit("fails_first", 7)
        assert delayed.result(timeout=20) == 1
        assert retried.result(timeout=20) == 7
        assert stalled.result(timeout=20) == 2, "the survivor reaped the killed one and ran the task again"
        record = sched.task_record(retried.id)
        assert record.attempts == 2 and record.error["message"] == "chunk 7: corrupt input"
        assert sched.counts()["processors"] == 1 and sched.audit().ok
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        assert [p.wait(30) for p in procs if p.returncode != -signal.SIGKILL] == [0]
        sched.close()


@pytest.mark.parametrize("mode", [[], ["--take-next"], ["--no-dispatch-on-ack"]])
def test_a_processor_alone_drains_what_is_submitted_in_every_mode(redis_server: RedisServer, namespace: str,
                                                                  tmp_path: Path, mode: list[str]) -> None:
    """No dispatch call from anywhere, no scheduler process: `--take-next` used to wait forever
    for a first dispatch, and the plain mode for a scheduler."""
    env = {**{k: v for k, v in os.environ.items() if k != "LUASCHED_REDIS_URL"}, "PYTHONPATH": str(ROOT),
           "CHAOS_DIR": str(tmp_path), "CHAOS_NAMESPACE": namespace, "LUASCHED_REDIS_URL": redis_server.url}
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "processor", "tests.chaos_app:sched", *mode],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    try:
        handles = sched.submit_many("record", [(i,) for i in range(30)])
        assert [h.result(timeout=20) for h in handles] == list(range(30))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        sched.close()
