"""``luasched explain APP ID [--json]`` and the no-processor counts of ``luasched status``, on the
embedded server (in CliRunner's process) and on the session's real redis-server."""

from __future__ import annotations

import json
import re

import luasched
from tests.integration.test_cli_admin import APP, cli, ok, refused
from tests.servers import RedisServer


def lines_of(text: str) -> dict[str, str]:
    """The label/value rows after the sentence."""
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines()[1:])


def test_explain_says_why_a_task_waits_as_text_and_json(app: luasched.Scheduler) -> None:
    app.limit("db", max_running=1)
    p = app.processor(capacity=3, queues=("default",))
    assert p.register()
    first = app.submit("add", 1, 2, _limits=("db",))
    second = app.submit("add", 3, 4, _limits=("db",))
    app.dispatch()  # the APP places at submit already: first is assigned either way
    assert first.state == "assigned"
    out = ok(cli("explain", APP, second.id)).stdout
    assert out.splitlines()[0] == second.explain().text
    rows = lines_of(out)
    assert (rows["state"], rows["reason"], rows["limiter"], rows["running"], rows["max running"]) == (
        "queued", "max_running", "db", "1", "1")
    as_json = json.loads(ok(cli("explain", APP, second.id, "--json")).stdout)
    assert as_json["id"] == second.id and as_json["state"] == "queued" and as_json["reason"] == "max_running"
    assert as_json["detail"]["limiter"] == "db" and as_json["detail"]["max_running"] == 1
    assert as_json["text"] == second.explain().text
    assigned = json.loads(ok(cli("explain", APP, first.id, "--json")).stdout)
    assert (assigned["reason"], assigned["detail"]["processor"]) == ("assigned", p.id)
    rows = lines_of(ok(cli("explain", APP, first.id)).stdout)
    assert rows["processor"] == p.id and rows["processor alive"] == "True"


def test_explain_shows_times_as_utc(app: luasched.Scheduler) -> None:
    h = app.submit("add", 1, 2, _delay=600)
    rows = lines_of(ok(cli("explain", APP, h.id)).stdout)
    assert rows["reason"] == "delayed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows["until"])


def test_explain_of_an_unknown_id_is_one_line_and_exit_2(app: luasched.Scheduler) -> None:
    refused(cli("explain", APP, "no-such-task"), "no-such-task")
    refused(cli("explain", APP, "no-such-task", "--json"), "no-such-task")
    refused(cli("explain", APP, "bad id"), "task id")
    refused(cli("explain", APP), "ID")


def test_explain_on_real_redis(real: luasched.Scheduler, redis_server: RedisServer) -> None:
    h = real.submit("add", 1, 2, _queue="nobody")
    as_json = json.loads(ok(cli("explain", APP, h.id, "--redis", redis_server.url, "--json")).stdout)
    assert (as_json["state"], as_json["reason"]) == ("queued", "no_processor")
    assert as_json["detail"]["queue"] == "nobody" and as_json["detail"]["condition"] == "queue"
    out = ok(cli("explain", APP, h.id, "--redis", redis_server.url)).stdout
    assert "no live processor serves" in out.splitlines()[0]
    refused(cli("explain", APP, "no-such-task", "--redis", redis_server.url), "no-such-task")


def test_status_counts_waiting_tasks_no_live_processor_serves(app: luasched.Scheduler) -> None:
    p = app.processor(capacity=1, queues=("default",))
    assert p.register()
    app.submit_many("add", [(1, 1), (2, 2), (3, 3)])  # one placed at submit; two wait for the slot
    app.submit_many("add", [(4, 4), (5, 5), (6, 6)], queue="reports")  # nobody serves reports
    as_json = json.loads(ok(cli("status", APP, "--json")).stdout)
    assert as_json["queues"] == {"default": 2, "reports": 3}
    assert as_json["no_processor"] == {"default": 0, "reports": 3}
    tables = ok(cli("status", APP)).stdout
    # queue, depth, oldest (the age of its head), no processor
    assert re.search(r"^[│|] reports +[│|] +3 [│|] +\S+ s [│|] +3 [│|]$", tables, re.MULTILINE), tables
    assert re.search(r"^[│|] default +[│|] +2 [│|] +\S+ s [│|] +0 [│|]$", tables, re.MULTILINE), tables
    p.deregister()  # its assigned task goes back: 3 wait in default, and nothing serves it now
    assert json.loads(ok(cli("status", APP, "--json")).stdout)["no_processor"] == {"default": 3, "reports": 3}


def test_status_names_the_task_names_no_live_processor_serving_a_queue_has(app: luasched.Scheduler) -> None:
    p = app.processor(capacity=1, queues=("default",))
    assert p.register()
    ghost = app.submit("ghost")  # a name the APP's processors do not have: it waits
    app.submit("add", 1, 2, _queue="reports")  # nobody serves reports: counted, not named
    as_json = json.loads(ok(cli("status", APP, "--json")).stdout)
    assert as_json["unrunnable_names"] == {"default": ["ghost"]}
    assert as_json["no_processor"] == {"default": 0, "reports": 1}
    out = ok(cli("status", APP)).stdout
    assert "queue default: no live processor serving it has task ghost" in out
    assert ghost.explain().detail["condition"] == "task name"
    ghost.cancel()  # the name stays submitted to the queue; once gone from the fleet too, it is quiet
    p.deregister()
    assert json.loads(ok(cli("status", APP, "--json")).stdout)["unrunnable_names"] == {}
