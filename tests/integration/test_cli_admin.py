"""The admin commands (submit, status, audit, failed, retry-failed, purge, health) on the embedded
server (CliRunner in-process shares it with the test) and on the session's real redis-server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import luasched
from luasched.cli import main
from luasched.routing import ACTIONS
from tests import cli_app
from tests.conftest import FakeClock
from tests.servers import RedisServer

APP = "tests.cli_app:sched"
ROOT = Path(__file__).resolve().parents[2]
SECRET_URL = "redis://user:s3cret@127.0.0.1:1/0"
ROW = r"^[│|] {label} +[│|] +(?P<value>\d+) [│|]$"


def cli(*args: str) -> Result:
    """The command as a user types it, on the APP's embedded server: ``--redis memory://`` names it
    (in this one process, CliRunner's, the test reaches it too); without --redis a command refuses
    the embedded server (``test_the_embedded_server_is_refused_across_processes``)."""
    command, *rest = args
    if "--redis" not in rest and command != "demo":
        rest = ["--redis", "memory://", *rest]
    return raw_cli(command, *rest)


def raw_cli(*args: str) -> Result:
    # Wide enough that rich never wraps a table cell, so rows can be read back.
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "250"})


def ok(result: Result, code: int = 0) -> Result:
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    return result


def refused(result: Result, says: str) -> None:
    """Bad input: exit 2, one line on stderr saying what, nothing on stdout, no traceback."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}"
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.output


def row(output: str, label: str) -> int:
    found = re.search(ROW.format(label=re.escape(label)), output, re.MULTILINE)
    assert found, f"no row {label!r} in:\n{output}"
    return int(found["value"])


def run_one(sched: luasched.Scheduler, capacity: int = 1, queues: tuple[str, ...] = ("default",)) -> int:
    """Run what is queued: a processor registers, gets what dispatch gives it, runs it in this
    thread, and leaves (so that the next dispatch cannot give a task to it instead)."""
    p = sched.processor(capacity=capacity, queues=queues)
    p.register()
    sched.dispatch()
    ran = p.process_available()
    p.deregister()
    return ran


@contextmanager
def running(sched: luasched.Scheduler) -> Iterator[luasched.Processor]:
    """A started processor (with the scheduler's duties, the default), stopped on exit."""
    p = sched.processor(capacity=2)
    p.start()
    try:
        yield p
    finally:
        p.stop(timeout=10)


def submitted_id(stderr: str) -> str:
    """The id ``submit --wait`` reports on stderr (stdout keeps the result alone)."""
    found = re.search(r"^luasched submit: task (\S+) submitted; waiting for its result$", stderr, re.M)
    assert found, stderr
    return found.group(1)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- submit --------------------------------------------------------------------------------------


def test_submit_prints_the_id_of_a_queued_task_with_the_json_arguments(app: luasched.Scheduler) -> None:
    result = ok(cli("submit", APP, "add", "2", "40"))
    task_id = result.stdout.strip()
    assert app.handle(task_id).state == "queued"
    run_one(app)
    assert app.handle(task_id).result(timeout=5) == 42


def test_submit_options_queue_delay_id(app: luasched.Scheduler) -> None:
    assert ok(cli("submit", APP, "add", "1", "2", "--id", "mine-1", "--delay", "60")).stdout == "mine-1\n"
    assert app.handle("mine-1").state == "delayed"
    task_id = ok(cli("submit", APP, "hold", '"k"', "--queue", "other")).stdout.strip()
    assert app.queue_lengths() == {"default": 0, "other": 1}  # not "slow", hold's own queue
    assert app.counts()["delayed"] == 1
    assert app.handle(task_id).state == "queued"
    # JSON of every kind, and an argument that looks like an option after "--".
    echo = ok(cli("submit", APP, "add", "--", "-1", "[1]")).stdout.strip()
    assert app.handle(echo).state == "queued"


def test_submit_wait_prints_the_result_or_the_remote_error(app: luasched.Scheduler) -> None:
    with running(app):
        result = ok(cli("submit", APP, "add", "20", "22", "--wait", "--timeout", "10"))
        assert json.loads(result.stdout) == 42  # stdout is the result alone: JSON
        task_id = submitted_id(result.stderr)
        assert app.handle(task_id).state == "done"

        failed = ok(cli("submit", APP, "boom", '"out of cheese"', "--wait"), code=1)
        task_id = submitted_id(failed.stderr)
        assert failed.stdout == ""
        assert app.handle(task_id).state == "failed"
        assert failed.stderr.splitlines()[-1] == f"luasched submit: task {task_id} failed: RuntimeError: out of cheese"

        as_json = ok(cli("submit", APP, "add", "1", "2", "--wait", "--json"))
        report = json.loads(as_json.stdout)
        assert report == {"id": report["id"], "state": "done", "result": 3} and as_json.stderr == ""
        failed_json = json.loads(ok(cli("submit", APP, "boom", '"no"', "--wait", "--json"), code=1).stdout)
        assert failed_json == {"id": failed_json["id"], "state": "failed",
                               "error": {"type": "RuntimeError", "message": "no"}}
        assert app.handle(failed_json["id"]).state == "failed"


def test_submit_wait_timeout_exits_1(app: luasched.Scheduler) -> None:
    result = ok(cli("submit", APP, "add", "1", "2", "--wait", "--timeout", "0.2"), code=1)
    task_id = submitted_id(result.stderr)
    assert "did not finish within 0.2 s" in result.stderr and result.stdout == ""
    assert app.handle(task_id).state == "queued"  # no processor: still waiting, not lost


@pytest.mark.parametrize("args, says", [
    (["add", "1", "{oops"], "argument 2 ('{oops') is not JSON"),
    (["add", "1", "hello"], "argument 2 ('hello') is not JSON"),
    (["add", "NaN", "1"], "argument 1 ('NaN') is not JSON"),
    (["add", "1", "--bogus"], "argument 2 ('--bogus') is not JSON"),
    (["nope", "1"], "has no task named 'nope' (registered: add, boom, flaky, hold)"),
    (["add", "1"], "task 'add' takes add(a, b): missing a required argument: 'b'"),
    (["add", "1", "2", "3"], "too many positional arguments"),
    (["add", "1", "2", "--timeout", "5"], "--timeout goes with --wait"),
    (["add", "1", "2", "--wait", "--timeout", "0"], "--timeout"),
    (["add", "1", "2", "--delay", "-1"], "delay must be a finite number of seconds >= 0"),
    (["add", "1", "2", "--delay", "soon"], "'soon' is not a valid float"),
    (["add", "1", "2", "--id", "no spaces"], "must be 1-128 characters"),
    (["add", "1", "2", "--queue", "bad queue"], "must be 1-64 characters"),
    ([], "Missing argument 'TASK'"),
])
def test_submit_bad_input_is_one_line_exit_2_and_submits_nothing(
        app: luasched.Scheduler, args: list[str], says: str) -> None:
    refused(cli("submit", APP, *args), says)
    assert app.counts()["submitted"] == 0


@pytest.mark.parametrize("spec, says", [
    ("tests.cli_app", "APP must look like module:attribute"),
    ("tests.no_such_module:sched", "cannot import 'tests.no_such_module'"),
    ("tests.cli_app:missing", "has no attribute 'missing'"),
    ("tests.cli_app:not_a_scheduler", "is a str, not a luasched.Scheduler"),
])
@pytest.mark.parametrize("command", ["submit", "status", "audit", "failed", "retry-failed", "purge",
                                     "purge-finished", "health"])
def test_unknown_app_is_one_line_exit_2(command: str, spec: str, says: str) -> None:
    extra = ["add", "1", "2"] if command == "submit" else ["--yes"] if command.startswith("purge") else []
    refused(cli(command, spec, *extra), says)


def test_submit_on_real_redis_runs_there(app: luasched.Scheduler, real: luasched.Scheduler,
                                         redis_server: RedisServer) -> None:
    with running(real):
        result = ok(cli("submit", APP, "add", "3", "4", "--wait", "--timeout", "10",
                        "--redis", redis_server.url))
    task_id = submitted_id(result.stderr)
    assert json.loads(result.stdout) == 7
    assert real.handle(task_id).state == "done"
    assert app.counts()["submitted"] == 0  # nothing went to the APP's own (embedded) server


def test_submit_wait_timeout_on_real_redis_past_the_socket_timeout(
        real: luasched.Scheduler, redis_server: RedisServer) -> None:
    result = cli("submit", APP, "add", "1", "2", "--wait", "--timeout", "5.5", "--redis", redis_server.url)
    assert result.exit_code == 1, result.output
    assert "did not finish within 5.5 s" in result.stderr


# --- status --------------------------------------------------------------------------------------


def _busy_namespace(sched: luasched.Scheduler, key: str) -> luasched.Processor:
    """done 1, failed 1, running 1 (on a started processor "busy"), queued 2 (behind it), delayed 1, and
    a second processor "by-hand"; returns the started one (the caller stops it)."""
    by_hand = sched.processor(capacity=2, name="by-hand")
    by_hand.register()
    sched.submit("add", 1, 1)
    sched.submit("boom", "bad luck")
    sched.dispatch()
    assert by_hand.process_available() == 2
    busy = sched.processor(capacity=1, queues=("slow",), name="busy", scheduler=False)  # no duties
    busy.start()
    held = sched.submit("hold", key)
    sched.dispatch()
    wait_until(lambda: held.state == "running", "the held task to start")
    sched.submit("add", 2, 2, _queue="slow")  # queued: the only processor of "slow" is full
    sched.submit("add", 3, 3, _queue="slow")
    sched.submit("add", 4, 4, _delay=600)
    return busy


def test_status_shows_what_counts_says(app: luasched.Scheduler, namespace: str) -> None:
    key = f"status-{namespace}"
    busy = _busy_namespace(app, key)
    try:
        as_json = json.loads(ok(cli("status", APP, "--json")).stdout)
        tables = ok(cli("status", APP)).stdout
        counts = app.counts()
    finally:
        cli_app.gate(key).set()
        busy.stop(timeout=10)
    expected = {"submitted": 6, "queued": 2, "delayed": 1, "assigned": 0, "running": 1, "done": 1,
                "failed": 1, "cancelled": 0, "processors": 2}
    assert {k: counts[k] for k in expected} == expected
    shown = {k: v for k, v in counts.items()
             if k not in ("now_ms", "last_dispatch_ms", "done_last_minute", "failed_last_minute")}
    assert as_json["counts"] == shown
    assert as_json["queues"] == {"default": 0, "slow": 2}
    assert as_json["done_last_minute"] == 1 and as_json["failed_last_minute"] == 1
    assert as_json["last_dispatch_ms"] == counts["last_dispatch_ms"]
    assert 0 <= as_json["last_dispatch_age_s"] < 10
    procs = {p["name"]: p for p in as_json["processors"]}
    assert set(procs) == {"busy", "by-hand"}
    assert (procs["busy"]["load"], procs["busy"]["capacity"], procs["busy"]["queues"]) == (1, 1, ["slow"])
    assert (procs["by-hand"]["load"], procs["by-hand"]["capacity"]) == (0, 2)
    for p in procs.values():
        assert 0 <= p["heartbeat_age_s"] < 10 and 0 < p["lease_left_s"] <= 10 and not p["lapsed"]
        assert p["stuck"] == 0 and p["default_timeout_s"] is None
    assert 0 <= procs["busy"]["longest_running_s"] < 10  # how long the held task has run
    assert procs["by-hand"]["longest_running_s"] is None
    # The tables show the same numbers.
    for name, value in shown.items():
        assert row(tables, name.replace("_", " ")) == value, name
    assert as_json["no_processor"] == {"default": 0, "slow": 0}  # both served by a live processor
    # depth, how long its oldest queued task has been ready ("-": none), tasks no processor takes
    assert re.search(r"^[│|] default +[│|] +0 [│|] +- [│|] +0 [│|]$", tables, re.MULTILINE), tables
    assert re.search(r"^[│|] slow +[│|] +2 [│|] +\d+\.\d s [│|] +0 [│|]$", tables, re.MULTILINE), tables
    assert re.search(rf"^[│|] {re.escape(procs['busy']['id'])} +[│|] busy +[│|] +1/1 [│|] +\d+\.\d s [│|] "
                     r"slow +[│|] +\d+\.\d s ago [│|] +\d+\.\d s left [│|]$", tables, re.MULTILINE), tables
    assert re.search(rf"^[│|] {re.escape(procs['by-hand']['id'])} +[│|] by-hand +[│|] +0/2 [│|] +- [│|] ",
                     tables, re.MULTILINE), tables
    assert re.search(r"^last dispatch +\d+\.\d s ago$", tables, re.MULTILINE)
    assert re.search(r"^last minute +1 done, 1 failed$", tables, re.MULTILINE)


def test_status_of_a_fresh_namespace_on_real_redis(redis_server: RedisServer, namespace: str) -> None:
    as_json = json.loads(ok(cli("status", "--redis", redis_server.url, "--namespace", namespace,
                                "--json")).stdout)
    assert as_json["namespace"] == namespace
    assert set(as_json["counts"].values()) == {0}
    assert as_json["last_dispatch_ms"] is None and as_json["processors"] == [] and as_json["queues"] == {}
    tables = ok(cli("status", "--redis", redis_server.url, "--namespace", namespace)).stdout
    assert re.search(r"^last dispatch +never$", tables, re.MULTILINE)
    assert "processors: none registered" in tables


def test_status_on_real_redis_with_app_and_with_namespace(real: luasched.Scheduler,
                                                          redis_server: RedisServer) -> None:
    real.submit("add", 1, 2)
    real.submit("hold", "never-run")
    p = real.processor(capacity=2, queues=("default", "slow"), name="far")
    p.register()
    real.dispatch()  # both to "far", which is then full
    real.submit("add", 5, 6)  # so this one stays queued
    for args in (["status", APP, "--redis", redis_server.url, "--json"],
                 ["status", "--redis", redis_server.url, "--namespace", real.namespace, "--json"]):
        shown = json.loads(ok(cli(*args)).stdout)
        assert shown["counts"]["assigned"] == 2 and shown["counts"]["queued"] == 1
        assert shown["queues"] == real.queue_lengths() == {"default": 1, "slow": 0}
        [far] = shown["processors"]
        assert (far["id"], far["name"], far["load"], far["capacity"]) == (p.id, "far", 2, 2)
        assert far["queues"] == ["default", "slow"]


@pytest.mark.parametrize("args, says", [
    ([], "give APP (module:attribute), or --redis URL and --namespace NS"),
    (["--namespace", "x"], "give APP (module:attribute), or --redis URL and --namespace NS"),
    ([APP, "--namespace", "x"], "--namespace goes with --redis when no APP is given"),
    (["--redis", "memory://", "--namespace", "not a namespace"], "must be 1-64 characters"),
    (["--redis", "http://127.0.0.1:1", "--namespace", "x"], "must start with memory://, redis://"),
    (["--redis", "redis://127.0.0.1:1/0", "--namespace", "x"], "cannot reach Redis"),
    ([APP, "--redis", "redis://127.0.0.1:1/0"], "cannot reach Redis"),
    ([APP, "--bogus"], "No such option '--bogus'"),
    ([APP, "extra-word"], "Got unexpected extra argument (extra-word)"),
])
def test_status_bad_input_is_one_line_exit_2(app: luasched.Scheduler, args: list[str], says: str) -> None:
    refused(raw_cli("status", *args), says)


# --- passwords and unreachable servers, for every command ------------------------------------------

COMMANDS = {
    "submit": ["submit", APP, "add", "1", "2"],
    "status": ["status", APP],
    "audit": ["audit", APP],
    "failed": ["failed", APP],
    "retry-failed": ["retry-failed", APP],
    "purge": ["purge", APP, "--yes"],
    "purge-finished": ["purge-finished", APP, "--yes"],
    "health": ["health", APP],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("url, says", [
    (SECRET_URL, "cannot reach Redis"),
    ("redis://user:s3cret@127.0.0.1:port/0", "user:***@127.0.0.1:port"),
])
def test_unreachable_or_bad_url_is_exit_2_and_never_shows_the_password(
        app: luasched.Scheduler, command: str, url: str, says: str) -> None:
    result = cli(*COMMANDS[command], "--redis", url)
    refused(result, says)
    assert "s3cret" not in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_redis_is_said_in_a_users_words(app: luasched.Scheduler, command: str) -> None:
    """What could not be done, then why: no script's or command's internal name leads the line."""
    result = cli(*COMMANDS[command], "--redis", "redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert re.match(rf"luasched {command}: error: could not [a-z' ]+: cannot reach Redis: ", line), line
    action = line.split("could not ", 1)[1].split(":", 1)[0]
    assert action in ACTIONS.values(), action


def test_purge_refusal_names_the_server_without_its_password(app: luasched.Scheduler) -> None:
    result = cli("purge", "--redis", SECRET_URL, "--namespace", "x")
    refused(result, "add --yes to go ahead")
    assert "user:***@127.0.0.1:1" in result.stderr and "s3cret" not in result.output


# --- audit ---------------------------------------------------------------------------------------


def test_audit_ok_and_each_problem(app: luasched.Scheduler) -> None:
    app.submit("add", 1, 2)
    run_one(app)
    app.submit("add", 3, 4)
    assert ok(cli("audit", APP)).stdout == "ok\n"
    app.client.hincrby(app.keys.stats, "submitted", 2)  # two tasks that are nowhere
    app.client.rpush(app.keys.queue("default"), "ghost")  # a task with no record
    result = ok(cli("audit", APP), code=1)
    problems = app.audit().problems
    assert len(problems) >= 2
    assert result.stdout.splitlines() == problems
    assert ok(cli("audit", APP, "--slice-size", "1"), code=1).stdout.splitlines() == problems
    refused = cli("audit", APP, "--slice-size", "0")
    assert refused.exit_code == 2 and "--slice-size" in refused.output, refused.output


def test_audit_on_real_redis(real: luasched.Scheduler, redis_server: RedisServer) -> None:
    real.submit("add", 1, 2)
    args = ["audit", "--redis", redis_server.url, "--namespace", real.namespace]
    assert ok(cli(*args)).stdout == "ok\n"
    real.client.hincrby(real.keys.stats, "submitted", 1)
    assert ok(cli(*args), code=1).stdout.splitlines() == real.audit().problems != []


# --- failed and retry-failed ----------------------------------------------------------------------


def test_failed_lists_dead_letters_oldest_first(app: luasched.Scheduler) -> None:
    assert ok(cli("failed", APP)).stdout == "no failed tasks\n"
    first = app.submit("boom", "first fault")
    run_one(app)
    second = app.submit("boom", "second fault")
    run_one(app)
    table = ok(cli("failed", APP)).stdout
    date = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    for handle, message in ((first, "first fault"), (second, "second fault")):
        assert re.search(rf"^[│|] {handle.id} +[│|] boom +[│|] default +[│|] +1 [│|] {date} [│|] "
                         rf"RuntimeError: {message} +[│|]$", table, re.MULTILINE), table
    assert table.index(first.id) < table.index(second.id)
    assert "Traceback" not in table
    one = ok(cli("failed", APP, "--limit", "1")).stdout
    assert first.id in one and second.id not in one
    shown = cli("failed", APP, "--traceback")  # not ok(): the remote tracebacks are the point
    assert shown.exit_code == 0 and shown.stderr == ""
    with_tb = shown.stdout
    assert with_tb.count("raise RuntimeError(message)") == 2
    assert f"--- {first.id} (boom)" in with_tb


@pytest.mark.parametrize("args, says", [
    (["--limit", "0"], "limit"),
    (["--limit", "many"], "'many' is not a valid integer"),
])
def test_failed_bad_limit_is_exit_2(app: luasched.Scheduler, args: list[str], says: str) -> None:
    refused(cli("failed", APP, *args), says)


def test_failed_on_real_redis(real: luasched.Scheduler, redis_server: RedisServer) -> None:
    dead = real.submit("boom", "far away")
    run_one(real)
    table = ok(cli("failed", "--redis", redis_server.url, "--namespace", real.namespace)).stdout
    assert dead.id in table and "RuntimeError: far away" in table


def test_retry_failed_puts_tasks_back_and_they_run_again(app: luasched.Scheduler, namespace: str) -> None:
    handle = app.submit("flaky", f"retry-{namespace}")
    run_one(app)
    assert handle.state == "failed"
    result = ok(cli("retry-failed", APP))
    assert result.stdout == f"put back 1 task\n{handle.id}\n"
    assert handle.state == "queued" and app.counts()["failed"] == 0
    run_one(app)
    assert handle.result(timeout=5) == f"retry-{namespace} ok"
    assert ok(cli("retry-failed", APP)).stdout == "put back 0 tasks\n"


def test_retry_failed_by_id_and_an_id_that_is_not_dead(app: luasched.Scheduler, namespace: str) -> None:
    a = app.submit("flaky", f"a-{namespace}")
    b = app.submit("flaky", f"b-{namespace}")
    run_one(app, capacity=2)
    assert ok(cli("retry-failed", APP, b.id)).stdout == f"put back 1 task\n{b.id}\n"
    assert (a.state, b.state) == ("failed", "queued")
    result = ok(cli("retry-failed", APP, a.id, "nosuchtask"), code=1)
    assert result.stdout == f"put back 1 task\n{a.id}\n"
    assert result.stderr == "luasched retry-failed: not dead letters, left alone: nosuchtask\n"
    run_one(app, capacity=2)
    assert (a.result(timeout=5), b.result(timeout=5)) == (f"a-{namespace} ok", f"b-{namespace} ok")


@pytest.mark.parametrize("args, says", [
    ([APP, "bad id!"], "must be 1-128 characters"),
    ([APP, "--limit", "0"], "limit"),
    ([APP, "a", "b", "--limit", "1"], "2 ids, more than limit 1"),
    ([], "give APP (module:attribute), or --redis URL and --namespace NS"),
])
def test_retry_failed_bad_input_is_exit_2(app: luasched.Scheduler, args: list[str], says: str) -> None:
    refused(cli("retry-failed", *args), says)


def test_retry_failed_on_real_redis_by_id(real: luasched.Scheduler, redis_server: RedisServer,
                                          namespace: str) -> None:
    handle = real.submit("flaky", f"real-{namespace}")
    run_one(real)
    assert handle.state == "failed"
    # With --namespace there is no APP: every word is an id.
    result = ok(cli("retry-failed", "--redis", redis_server.url, "--namespace", real.namespace, handle.id))
    assert result.stdout == f"put back 1 task\n{handle.id}\n"
    run_one(real)
    assert handle.result(timeout=5) == f"real-{namespace} ok"


# --- purge ---------------------------------------------------------------------------------------


def test_purge_needs_yes_then_deletes_the_namespace(app: luasched.Scheduler) -> None:
    app.submit("add", 1, 2)
    run_one(app)
    app.submit("boom", "x")
    before = app.counts()["submitted"]
    refused(cli("purge", APP), "add --yes to go ahead")
    assert app.counts()["submitted"] == before == 2
    result = ok(cli("purge", APP, "--yes"))
    assert re.fullmatch(rf"deleted \d+ keys of namespace {app.namespace} on memory://\n", result.stdout)
    assert list(app.client.scan_iter(match=app.keys.prefix + "*")) == []
    assert app.counts()["submitted"] == 0


def test_purge_on_real_redis_leaves_other_namespaces(real: luasched.Scheduler, redis_server: RedisServer,
                                                     namespace: str) -> None:
    other = luasched.Scheduler(redis_server.url, namespace=f"{namespace}-other")
    try:
        other.submit("add", 1, 1)
        real.submit("add", 2, 2)
        result = ok(cli("purge", "--redis", redis_server.url, "--namespace", real.namespace, "--yes"))
        assert f"of namespace {real.namespace} on {redis_server.url}" in result.stdout
        assert list(real.client.scan_iter(match=real.keys.prefix + "*")) == []
        assert other.counts()["submitted"] == 1
    finally:
        other.purge()
        other.close()


# --- health --------------------------------------------------------------------------------------


def test_health_stale_until_a_dispatch_and_a_heartbeat(app: luasched.Scheduler) -> None:
    result = ok(cli("health", APP), code=1)
    assert result.stdout == "stale: no dispatch ever; no processor registered\n"
    p = app.processor()
    p.register()
    assert ok(cli("health", APP), code=1).stdout == "stale: no dispatch ever\n"
    assert ok(cli("health", APP, "--no-dispatch-check")).stdout.startswith(
        "ok: 1 of 1 processor heartbeated within 60 s")
    app.dispatch()
    assert p.heartbeat()
    assert re.fullmatch(r"ok: last dispatch \d+\.\d s ago; 1 of 1 processor heartbeated within 60 s "
                        r"\(latest \d+\.\d s ago\)\n", ok(cli("health", APP)).stdout)


def test_health_without_processors_and_the_checks_switched_off(app: luasched.Scheduler) -> None:
    app.dispatch()
    assert ok(cli("health", APP), code=1).stdout == "stale: no processor registered\n"
    assert ok(cli("health", APP, "--no-heartbeat-check")).stdout.startswith("ok: last dispatch")
    assert ok(cli("health", APP, "--no-heartbeat-check", "--no-dispatch-check")).stdout == "ok: Redis answers\n"
    app.pause("default")
    assert re.fullmatch(r"ok: paused: queue default \(\d+(\.\d+)? (ms|s)\)\n",
                        ok(cli("health", APP, "--no-heartbeat-check", "--no-dispatch-check")).stdout)


def test_health_goes_stale_when_time_passes(namespace: str, monkeypatch: pytest.MonkeyPatch,
                                            clock: FakeClock) -> None:
    # An APP with an injected clock: its scripts take that clock as the server's time.
    sched = cli_app.make_app(namespace, clock=clock)
    monkeypatch.setattr(cli_app, "sched", sched)
    try:
        sched.processor(lease=300).register()
        sched.dispatch()
        clock.advance(30)
        assert ok(cli("health", APP)).stdout.startswith("ok: last dispatch 30.0 s ago")
        clock.advance(45)
        assert ok(cli("health", APP), code=1).stdout == (
            "stale: no dispatch within 60 s (last 75.0 s ago); no processor heartbeat within 60 s "
            "(1 registered, latest 75.0 s ago)\n")
        assert ok(cli("health", APP, "--window", "80")).stdout.startswith("ok: last dispatch 75.0 s ago")
    finally:
        sched.purge()


@pytest.mark.parametrize("args, says", [
    (["--window", "0"], "--window"),
    (["--window", "soon"], "'soon' is not a valid float range"),
])
def test_health_bad_window_is_exit_2(app: luasched.Scheduler, args: list[str], says: str) -> None:
    refused(cli("health", APP, *args), says)


def test_health_on_real_redis_as_a_container_would_run_it(redis_server: RedisServer, namespace: str) -> None:
    command = [sys.executable, "-m", "luasched", "health", "--redis", redis_server.url,
               "--namespace", namespace, "--window", "30"]

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)

    stale = health()
    assert (stale.returncode, stale.stdout, stale.stderr) == (
        1, "stale: no dispatch ever; no processor registered\n", "")
    sched = luasched.Scheduler(redis_server.url, namespace=namespace)
    try:
        sched.processor().register()
        sched.dispatch()
        fine = health()
        assert fine.returncode == 0, fine.stdout + fine.stderr
        assert fine.stdout.startswith("ok: last dispatch ")
    finally:
        sched.purge()
        sched.close()


# --- show, cancel, failed --json, failed at 80 columns -------------------------------------------


def test_show_prints_a_tasks_record_as_text_and_json(app: luasched.Scheduler) -> None:
    done = app.submit("add", 20, 22)
    failed = app.submit("boom", "out of cheese")
    run_one(app, capacity=2)
    text, timeline = ok(cli("show", APP, done.id)).stdout.split("\n\ntimeline (UTC)\n")
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines())
    events = [re.split(r"\s{2,}", line.strip()) for line in timeline.splitlines()]
    assert [e[1] for e in events] == ["created", "placed", "started", "finished"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", events[0][0])
    assert events[2][2:] == [lines["last ran on"], "attempt 1"] and events[3][3] == "done"
    assert lines["id"] == done.id and lines["state"] == "done" and lines["result"] == "42"
    assert lines["arguments"] == "[20, 22]" and lines["attempts"] == "1 of 3" and lines["queue"] == "default"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines["finished"])
    shown_json = cli("show", APP, failed.id, "--json")  # not ok(): the JSON carries the traceback
    assert shown_json.exit_code == 0
    as_json = json.loads(shown_json.stdout)
    assert as_json["state"] == "failed" and as_json["attempts"] == 1
    assert as_json["error"]["type"] == "RuntimeError" and as_json["error"]["message"] == "out of cheese"
    assert [e["event"] for e in as_json["timeline"]][-1] == "finished" and as_json["history"] == []
    assert as_json["timeline"][-1]["detail"] == "failed (RuntimeError: out of cheese)"
    shown = cli("show", APP, failed.id)  # not ok(): the task's own traceback is shown
    assert shown.exit_code == 0 and "error          RuntimeError: out of cheese" in shown.stdout
    assert "raise RuntimeError(message)" in shown.stdout
    refused(cli("show", APP, "no-such-task"), "no-such-task")


def test_cancel_cancels_a_task_that_has_not_started_only(app: luasched.Scheduler) -> None:
    waiting = app.submit("add", 1, 2)
    assert ok(cli("cancel", APP, waiting.id)).stdout == f"cancelled task {waiting.id}\n"
    assert waiting.state == "cancelled"
    finished = app.submit("add", 3, 4)
    run_one(app)
    late = ok(cli("cancel", APP, finished.id), code=1)
    assert late.stdout == "" and f"task {finished.id} is done" in late.stderr
    assert finished.result(timeout=1) == 7


def test_failed_json_is_one_object_per_dead_letter(app: luasched.Scheduler) -> None:
    handles = [app.submit("boom", f"fault {i}") for i in range(2)]
    run_one(app, capacity=2)
    listed = cli("failed", APP, "--json")  # not ok(): the JSON carries the tracebacks
    assert listed.exit_code == 0
    objects = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [o["id"] for o in objects] == [h.id for h in handles]
    assert [o["error"]["message"] for o in objects] == ["fault 0", "fault 1"]
    assert all(o["error"]["type"] == "RuntimeError" and "raise RuntimeError" in o["error"]["traceback"]
               and o["attempts"] == 1 and o["queue"] == "default" for o in objects)


def test_failed_at_80_columns_shows_the_whole_error(app: luasched.Scheduler) -> None:
    """A narrow terminal, or a pipe (80 columns), keeps the error column: it wraps, never vanishes."""
    message = "the input file chunk-0007.csv has a corrupt header on line 1: expected 12 fields, got 9"
    app.submit("boom", message)
    run_one(app)
    result = CliRunner().invoke(main, ["failed", APP, "--redis", "memory://"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    error = " ".join(line.strip() for line in lines if line.startswith("  "))
    assert error == f"RuntimeError: {message}"
    assert re.search(r"^\S+  boom  queue default  1 attempt  failed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$",
                     result.stdout, re.MULTILINE), result.stdout


def test_failed_in_a_pipe_shows_the_whole_error(real: luasched.Scheduler, redis_server: RedisServer) -> None:
    message = "the input file chunk-0007.csv has a corrupt header on line 1: expected 12 fields, got 9"
    real.submit("boom", message)
    run_one(real)
    piped = subprocess.run([sys.executable, "-m", "luasched", "failed", "--redis", redis_server.url,
                            "--namespace", real.namespace], capture_output=True, text=True, cwd=ROOT,
                           env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")})
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert " ".join(line.strip() for line in lines if line.startswith("  ")) == f"RuntimeError: {message}"


# --- pause and resume ----------------------------------------------------------------------------


def test_pause_and_resume_a_queue_under_a_running_processor(real: luasched.Scheduler,
                                                            redis_server: RedisServer) -> None:
    """A live processor (the scheduler's duties included) and eager submits: a task of a paused
    queue stays queued where it would start at once, status says so, and resume runs it."""
    base = ["--redis", redis_server.url, "--namespace", real.namespace]
    with running(real):
        assert real.submit("add", 1, 1).result(timeout=10) == 2  # the processor is up and placing
        assert ok(cli("pause", *base, "default")).stdout == "paused queue default\n"
        assert ok(cli("pause", *base, "default")).stdout == "queue default was paused already\n"
        held = real.submit("add", 2, 2)
        assert held.state == "queued", "an eager submit placed a task of a paused queue"
        report = json.loads(ok(cli("status", *base, "--json")).stdout)
        assert [x["queue"] for x in report["paused"]] == ["default"]
        assert "paused            queue default (" in ok(cli("status", *base)).stdout
        assert ok(cli("resume", *base, "default")).stdout == "resumed queue default\n"
        assert held.result(timeout=10) == 4
    assert ok(cli("resume", *base)).stdout == "the whole namespace was not paused\n"
    assert "paused            nothing" in ok(cli("status", *base)).stdout


def test_pause_bad_input_is_one_line_exit_2(app: luasched.Scheduler) -> None:
    refused(cli("pause", APP, "default", "--key", ""), "key")
    refused(cli("pause", APP, "no spaces"), "queue")
    refused(cli("resume", APP, "a", "b"), "one QUEUE at most")
    assert app.paused() == []
