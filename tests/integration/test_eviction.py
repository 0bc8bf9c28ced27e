"""A Redis that evicts keys deletes tasks without a word: luasched says so at start (processor,
scheduler), in `status`, and `health` fails on it unless told to accept it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

import luasched
from luasched.cli import main
from tests.chaos.test_chaos import APP, ROOT
from tests.servers import start_redis

pytestmark = [pytest.mark.real_redis]


@pytest.fixture(scope="module")
def evicting():
    server = start_redis("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    yield server
    server.cleanup()


def run(*args: str):
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})


def test_health_fails_on_an_evicting_redis_unless_allowed(evicting, redis_server, namespace):
    checks = ["--no-dispatch-check", "--no-heartbeat-check", "--namespace", namespace]
    bad = run("health", "--redis", evicting.url, *checks)
    assert bad.exit_code == 1, bad.output
    assert "maxmemory-policy allkeys-lru: Redis may delete tasks" in bad.output
    allowed = run("health", "--redis", evicting.url, *checks, "--allow-eviction")
    assert allowed.exit_code == 0, allowed.output
    good = run("health", "--redis", redis_server.url, *checks)
    assert good.exit_code == 0, good.output


def test_status_shows_the_eviction_policy(evicting, redis_server, namespace):
    for server, policy in ((evicting, "allkeys-lru"), (redis_server, "noeviction")):
        shown = run("status", "--redis", server.url, "--namespace", namespace, "--json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["maxmemory_policy"] == policy
    tables = run("status", "--redis", evicting.url, "--namespace", namespace)
    assert "eviction          allkeys-lru: Redis may delete tasks under memory pressure; set noeviction" \
        in tables.stdout, tables.stdout


def test_the_embedded_server_cannot_tell_and_says_nothing_alarming():
    sched = luasched.Scheduler()
    assert sched.eviction_policy() is None


@pytest.mark.parametrize("command", ["processor", "scheduler"])
def test_a_process_warns_at_start_on_an_evicting_redis(evicting, namespace, tmp_path, command):
    env = dict(os.environ, CHAOS_DIR=str(tmp_path), CHAOS_NAMESPACE=namespace, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "luasched", command, APP, "--redis", evicting.url],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        lines = []
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "maxmemory-policy" in line:
                break
        assert "WARNING" in lines[-1] and "maxmemory-policy is allkeys-lru" in lines[-1], "".join(lines)
        assert "set maxmemory-policy noeviction" in lines[-1]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # waits, and closes the pipe


@pytest.mark.parametrize("use", ["submit", "run"])
def test_a_scheduler_warns_once_at_its_first_use(evicting, redis_server, namespace, caplog, use):
    """A producer or a loop in the user's own process is told too: once, at its first submit or
    loop, and not on a server that keeps every key."""
    def first_use(sched: luasched.Scheduler) -> None:
        if use == "submit":
            sched.submit("noop")
        else:
            stop = threading.Event()
            stop.set()  # the loop checks, then sees the stop at once
            sched.run(stop)

    caplog.set_level("INFO", logger="luasched")
    for server, warned in ((evicting, True), (redis_server, False)):
        caplog.clear()
        with luasched.Scheduler(server.url, namespace=namespace) as sched:
            first_use(sched)
            first_use(sched)
            sched.submit("noop")
        said = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        if warned:
            assert len(said) == 1, [r.getMessage() for r in said]
            assert said[0].levelname == "WARNING" and "maxmemory-policy is allkeys-lru" in said[0].getMessage()
        else:
            assert said == []
