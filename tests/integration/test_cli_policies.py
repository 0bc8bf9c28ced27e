"""The placement commands: ``submit --priority --key --limit``, ``limits``, ``pause|resume
--key``, and the limiters in ``status``; bad input is one line and exit 2, nothing written."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import luasched
from luasched.cli.tasks import parse_requires
from luasched.core import ops
from luasched.core.fields import TASK
from luasched.core.kinds import decode_requires
from luasched.core.options import policy_field
from luasched.core.replies import Paused
from tests.integration.test_cli_admin import APP, cli, ok, refused


def shown_rows(task_id: str) -> dict[str, str]:
    """The rows of ``luasched show`` (label -> value), before its timeline."""
    text = ok(cli("show", APP, task_id)).stdout.split("\n\n")[0]
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines())


def test_submit_takes_priority_key_and_limits(app: luasched.Scheduler) -> None:
    app.limit("api", rate=10)
    app.limit("user:*", max_running=1)
    task_id = ok(cli("submit", APP, "add", "1", "2", "--priority", "0", "--key", "tenant a",
                     "--limit", "api", "--limit", "user:7", "--limit", "api")).stdout.strip()
    assert app.handle(task_id).state == "queued"
    assert app.counts()["submitted"] == 1
    record = app.task_record(task_id)
    assert (record.priority, record.key, record.limits) == (0, "tenant a", ("api", "user:7"))
    lines = shown_rows(task_id)
    assert (lines["priority"], lines["key"], lines["limits"]) == ("0", "tenant a", "api, user:7")
    shown = json.loads(ok(cli("show", APP, task_id, "--json")).stdout)
    assert (shown["priority"], shown["key"], shown["limits"]) == (0, "tenant a", ["api", "user:7"])
    plain = app.task_record(app.submit("add", 1, 1).id)
    assert (plain.priority, plain.key, plain.limits) == (5, None, ())


def test_submit_takes_a_deadline_and_show_prints_it(app: luasched.Scheduler) -> None:
    task_id = ok(cli("submit", APP, "add", "1", "2", "--expires", "90")).stdout.strip()
    record = app.task_record(task_id)
    assert record.expires_ms == record.created_ms + 90_000
    lines = shown_rows(task_id)
    assert lines["expires"].endswith(" UTC")
    assert json.loads(ok(cli("show", APP, task_id, "--json")).stdout)["expires_ms"] == record.expires_ms


def test_submit_takes_requires(app: luasched.Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    """--requires (repeatable) reaches the submit call as the task's encoded requires."""
    sent: list[ops.NewTask] = []
    real = ops.submit

    def spy(ns: ops.Namespace, now_ms: int | None, tasks: list[ops.NewTask], **kwargs: Any) -> list[ops.Call]:
        sent.extend(tasks)
        return real(ns, now_ms, tasks, **kwargs)

    monkeypatch.setattr(ops, "submit", spy)
    task_id = ok(cli("submit", APP, "add", "1", "2", "--requires", "gpu=a100", "--requires", "vram_gb>=40",
                     "--requires", "ssd", "--requires", "zone != eu", "--requires", "tier=3")).stdout.strip()
    assert [n.id for n in sent] == [task_id]
    assert decode_requires(sent[0].options.requires) == (
        ("gpu", "==", "a100"), ("ssd", "exists", None), ("tier", "==", 3), ("vram_gb", ">=", 40),
        ("zone", "!=", "eu"))
    assert policy_field(sent[0].options).split("\n")[2] == sent[0].options.requires
    ok(cli("submit", APP, "add", "1", "2"))
    assert sent[1].options.requires == ""


def test_parse_requires() -> None:
    assert parse_requires([]) is None
    assert parse_requires(["gpu", "n=3", "x<=1.5", "y!=t4"]) == {"gpu": True, "n": 3, "x": ("<=", 1.5),
                                                                "y": ("!=", "t4")}
    with pytest.raises(ValueError, match="'gpu' twice"):
        parse_requires(["gpu=a100", "gpu!=t4"])


def test_show_prints_requires(app: luasched.Scheduler) -> None:
    """From the record's field, as the submit script stores it (written by hand here)."""
    task_id = app.submit("add", 1, 2).id
    lines = shown_rows(task_id)
    assert lines["requires"] == "-"
    assert json.loads(ok(cli("show", APP, task_id, "--json")).stdout)["requires"] == []
    text = '[["gpu","==","a100"],["ssd","exists",null],["vram_gb",">=",40],["zone","==","80"]]'
    app.client.hset(app.keys.task(task_id), TASK.requires, text)
    lines = shown_rows(task_id)
    assert lines["requires"] == 'gpu == a100, ssd present, vram_gb >= 40, zone == "80"'
    assert json.loads(ok(cli("show", APP, task_id, "--json")).stdout)["requires"] == json.loads(text)
    assert app.task_record(task_id).requires[2] == ("vram_gb", ">=", 40)


@pytest.mark.parametrize(("args", "says"), [
    (["--requires", "vram_gb>=big"], "compares numbers"),
    (["--requires", "gpu=>a100"], "a requirement is NAME"),
    (["--requires", "9gpu=a100"], "label name"),
    (["--requires", ""], "label name"),
    (["--requires", "gpu=a100", "--requires", "gpu!=t4"], "twice"),
    (["--requires", "x<99999999999999999999"], "2**53"),
    (["--expires", "0"], "expires"),
    (["--expires", "-5"], "expires"),
    (["--priority", "12"], "priority"),
    (["--priority", "x"], "--priority"),
    (["--key", ""], "key"),
    (["--limit", "a,b"], "limiter name"),
    (["--limit", "user:*"], "'*'"),
    (["--limit", "nope"], "no limiter named 'nope'"),
])
def test_submit_bad_placement_is_one_line_exit_2_and_submits_nothing(app: luasched.Scheduler, args: list[str],
                                                                     says: str) -> None:
    refused(cli("submit", APP, "add", "1", "2", *args), says)
    assert app.counts()["submitted"] == 0


def test_limits_lists_each_limiter_as_a_table_and_as_json(app: luasched.Scheduler) -> None:
    assert ok(cli("limits", APP)).stdout == "no limiters\n"
    assert ok(cli("limits", APP, "--json")).stdout == ""
    assert app.limit("api", rate=5, per=2, burst=3) is True
    assert app.limit("user:*", max_running=1) is True
    table = ok(cli("limits", APP)).stdout
    assert "api" in table and "5 per 2 s, burst 3" in table
    assert "user:*" in table and "0/1" in table
    rows = [json.loads(line) for line in ok(cli("limits", APP, "--json")).stdout.splitlines()]
    assert rows == [
        {"name": "api", "pattern": None, "rate": 5.0, "per_s": 2.0, "burst": 3, "max_running": None,
         "running": 0, "waiting": 0},
        {"name": "user:*", "pattern": None, "rate": None, "per_s": 1.0, "burst": 1, "max_running": 1,
         "running": 0, "waiting": 0},
    ]


def test_status_shows_the_limiters(app: luasched.Scheduler) -> None:
    assert "limiters          none" in ok(cli("status", APP)).stdout
    app.limit("user:*", max_running=2)
    text = ok(cli("status", APP)).stdout
    assert "limiters          1" in text
    assert "user:*: running 0/2, holding back 0 lanes" in text
    report = json.loads(ok(cli("status", APP, "--json")).stdout)
    assert [x["name"] for x in report["limiters"]] == ["user:*"]
    assert report["limiters"][0]["max_running"] == 2


def test_pause_and_resume_a_key(app: luasched.Scheduler) -> None:
    assert ok(cli("pause", APP, "--key", "t1")).stdout == "paused key t1 in every queue\n"
    assert ok(cli("pause", APP, "default", "--key", "t1")).stdout == "paused key t1 in queue default\n"
    assert ok(cli("pause", APP, "default", "--key", "t1")).stdout == "key t1 in queue default was paused already\n"
    assert [(x.queue, x.key) for x in app.paused()] == [(None, "t1"), ("default", "t1")]
    assert "key t1 in every queue (" in ok(cli("status", APP)).stdout
    report = json.loads(ok(cli("status", APP, "--json")).stdout)
    assert [(x["queue"], x["key"]) for x in report["paused"]] == [(None, "t1"), ("default", "t1")]
    assert ok(cli("resume", APP, "--key", "t1")).stdout == "resumed key t1 in every queue\n"
    assert ok(cli("resume", APP, "--key", "t1")).stdout == "key t1 in every queue was not paused\n"
    assert [x.key for x in app.paused()] == ["t1"]
    assert isinstance(app.paused()[0], Paused)
