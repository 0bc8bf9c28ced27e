"""``luasched schedules [--json]`` and ``luasched schedule pause|resume|trigger|remove APP NAME``:
what they print, what they change, and bad input as one line and exit 2."""

from __future__ import annotations

import json

import luasched
from tests.integration.test_cli_admin import APP, cli, ok, raw_cli, refused


def sub(*args: str):  # type: ignore[no-untyped-def]
    """``luasched schedule ACTION ...`` on the APP's embedded server (--redis after the action)."""
    return raw_cli("schedule", *args, "--redis", "memory://")


def test_schedules_lists_each_schedule(app: luasched.Scheduler) -> None:
    assert ok(cli("schedules", APP)).stdout.strip() == "no schedules"
    app.schedule("nightly", "add", (1, 2), cron="0 3 * * *", tz="Europe/Paris")
    app.schedule("often", "add", (1, 2), every=30)
    table = ok(cli("schedules", APP)).stdout
    assert "nightly" in table and "cron 0 3 * * *" in table and "Europe/Paris" in table and "every 30s" in table
    rows = [json.loads(line) for line in ok(cli("schedules", APP, "--json")).stdout.splitlines()]
    assert [r["name"] for r in rows] == ["often", "nightly"]  # the soonest next tick first
    assert rows[1]["spec"] == "cron 0 3 * * *" and rows[1]["paused"] is False and rows[1]["runs"] == 0


def test_pause_resume_trigger_remove(app: luasched.Scheduler) -> None:
    app.schedule("often", "add", (1, 2), every=30)
    assert ok(sub("pause", APP, "often")).stdout.strip() == "paused schedule often"
    assert app.schedule_info("often").paused
    assert "was paused already" in ok(sub("pause", APP, "often")).stdout
    assert ok(sub("resume", APP, "often")).stdout.strip() == "resumed schedule often"
    assert not app.schedule_info("often").paused
    task_id = ok(sub("trigger", APP, "often")).stdout.strip()
    assert task_id.startswith("often@") and app.handle(task_id).state == "queued"
    assert app.schedule_info("often").last_task_id == task_id
    assert ok(sub("remove", APP, "often")).stdout.strip() == "removed schedule often"
    assert app.schedules() == []


def test_bad_input_is_one_line_and_exit_2(app: luasched.Scheduler) -> None:
    refused(sub("pause", APP, "nothing"), "no schedule 'nothing'")
    refused(sub("trigger", APP), "give one schedule NAME")
    refused(sub("remove", APP, "a", "b"), "give one schedule NAME")
    refused(cli("schedules", "no_such_module:app"), "no_such_module")
    refused(raw_cli("schedule", "stop", APP, "often"), "No such command")
