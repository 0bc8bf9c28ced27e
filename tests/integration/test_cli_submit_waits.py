"""``luasched submit`` with a unique key, a debounce, and tasks to wait for (--after), on the
APP's embedded server (in CliRunner's process)."""

from __future__ import annotations

import json

import luasched
from tests.integration.test_cli_admin import APP, cli, ok, refused


def test_a_held_unique_key_creates_nothing_and_prints_the_holder(app: luasched.Scheduler) -> None:
    first = ok(cli("submit", APP, "add", "1", "2", "--unique-key", "report-7")).stdout.strip()
    again = ok(cli("submit", APP, "add", "3", "4", "--unique-key", "report-7"))
    assert again.stdout.strip() == first
    assert f"unique key report-7 is held by task {first}: nothing created" in again.stderr
    as_json = json.loads(ok(cli("submit", APP, "add", "5", "6", "--unique-key", "report-7", "--json")).stdout)
    assert as_json == {"id": first, "created": False}
    assert app.counts()["deduplicated"] == 2


def test_a_debounced_submit_takes_the_latest_arguments(app: luasched.Scheduler) -> None:
    first = ok(cli("submit", APP, "add", "1", "2", "--unique-key", "k", "--debounce", "60")).stdout.strip()
    ok(cli("submit", APP, "add", "10", "20", "--unique-key", "k", "--debounce", "60"))
    assert app.handle(first).state == "delayed"
    assert app.task_record(first).args == [10, 20]


def test_after_makes_it_wait_and_on_failure_says_what_a_failure_means(app: luasched.Scheduler) -> None:
    parent = ok(cli("submit", APP, "add", "1", "2")).stdout.strip()
    child = ok(cli("submit", APP, "add", "3", "4", "--after", parent, "--on-failure", "skip")).stdout.strip()
    why = app.handle(child).explain()
    assert why.reason == "waiting_dependencies" and why.detail["waiting_for"] == [{"task": parent}]
    assert why.detail["on_failure"] == "skip"
    assert app.handle(parent).cancel()
    assert app.handle(child).state == "cancelled"  # skip: what it waited for was cancelled


def test_bad_waits_are_refused_with_one_line(app: luasched.Scheduler) -> None:
    refused(cli("submit", APP, "add", "1", "2", "--on-failure", "run"), "_on_failure goes with _after")
    refused(cli("submit", APP, "add", "1", "2", "--after", "no-such-task"), "no-such-task")
    refused(cli("submit", APP, "add", "1", "2", "--debounce", "5"), "debounce")
    assert app.counts()["submitted"] == 0
