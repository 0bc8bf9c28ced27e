"""The log lines of `luasched processor` and `luasched scheduler`, read as a person meets them: real
processes on a real redis-server, their stderr in a file, the text of each line checked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import luasched
from tests import chaos_app
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.chaos_app:sched"
pytestmark = [pytest.mark.real_redis]

#: A text line: "2026-05-01 12:00:00,123 LEVEL logger: message".
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ([\w.]+): (.*)$")
SECONDS = r"\d+\.\d{3} s"


class Served:
    """One `luasched COMMAND APP --redis URL ARGS...` process, its stderr in a file."""

    def __init__(self, command: str, args: tuple[str, ...], server: RedisServer, env: dict[str, str],
                 log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "luasched", command, APP, "--redis", server.url,
                                          *args], cwd=ROOT, env=env, stderr=out)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first line that matches ``pattern`` (re.search), waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                found = re.search(pattern, line)
                if found:
                    return found
            assert time.monotonic() < deadline, f"no line matches {pattern!r} in:\n{self.text()}"
            time.sleep(0.02)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) in (0, -signal.SIGKILL), self.text()
        return self.text()


@pytest.fixture
def serve(redis_server: RedisServer, namespace: str, tmp_path: Path) -> Iterator[object]:
    env = {**{k: v for k, v in os.environ.items() if k != "LUASCHED_REDIS_URL"}, "PYTHONPATH": str(ROOT),
           "CHAOS_DIR": str(tmp_path), "CHAOS_NAMESPACE": namespace}
    started: list[Served] = []

    def start(command: str, *args: str) -> Served:
        served = Served(command, args, redis_server, env, tmp_path / f"{command}-{len(started)}.log")
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


@pytest.fixture
def sched(redis_server: RedisServer, namespace: str) -> Iterator[luasched.Scheduler]:
    """The APP's tasks, submitted with their options (fails_first: retry_backoff 0.2 s)."""
    s = luasched.Scheduler(redis_server.client(), namespace=namespace)
    s.registry = chaos_app.sched.registry
    yield s
    s.close()


def registered(sched: luasched.Scheduler, n: int = 1) -> list[luasched.ProcessorInfo]:
    deadline = time.monotonic() + 20
    while len(found := sched.processors()) < n:
        assert time.monotonic() < deadline, "the processor did not register"
        time.sleep(0.05)
    return found


def logged_at(line: str) -> float:
    """When a text line says it was written, in seconds since the epoch."""
    found = LINE.match(line)
    assert found, line
    return time.mktime(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found.group(2)) / 1000


def test_a_retry_says_when_it_comes_and_why(serve, sched):
    p = serve("processor", "--lease", "5", "--log-tasks")
    registered(sched)
    h = sched.submit("fails_first", 7)
    assert h.result(timeout=20) == 7
    retry = p.wait_for(rf"INFO luasched\.processor: task {h.id} fails_first attempt 1: .*")
    assert re.fullmatch(rf"INFO luasched\.processor: task {h.id} fails_first attempt 1: failed after {SECONDS}; "
                        r"retry 2/3 in 0\.20 s: ValueError: chunk 7: corrupt input", retry.group(0)), retry.group(0)
    p.wait_for(rf"INFO luasched\.processor: task {h.id} fails_first attempt 2: done in {SECONDS}$")
    assert p.stop().count(f"task {h.id} ") == 2


@pytest.mark.parametrize("level", ["debug", "info"])
def test_a_dead_letter_is_a_warning_and_its_traceback_is_at_debug(serve, sched, level):
    """Whatever --log-tasks says: failures are what a person needs."""
    p = serve("processor", "--lease", "5", "--no-log-tasks", "--log-level", level)
    registered(sched)
    h = sched.submit("fails_first", 7, _max_attempts=1)
    with pytest.raises(luasched.TaskFailed):
        h.result(timeout=20)
    line = p.wait_for(rf"\w+ luasched\.processor: task {h.id} .*").group(0)
    assert re.fullmatch(rf"WARNING luasched\.processor: task {h.id} fails_first attempt 1: failed after {SECONDS}; "
                        r"dead letter after 1/1 attempts: ValueError: chunk 7: corrupt input", line), line
    if level == "debug":
        p.wait_for(rf"DEBUG luasched\.processor: task {h.id} fails_first attempt 1: traceback of its ValueError:$")
    text = p.stop()
    traced = ("Traceback (most recent call last):" in text, 'raise ValueError(f"chunk {i}: corrupt input")' in text)
    assert traced == ((True, True) if level == "debug" else (False, False)), text


def test_lines_are_written_when_the_event_happens(serve, sched):
    """Not when the ack's reply comes back: that may wait behind a 2 s BLPOP on an idle processor."""
    p = serve("processor", "--lease", "5", "--log-tasks")
    registered(sched)
    done = sched.submit("record", 1)
    assert done.result(timeout=20) == 1
    done_line = p.wait_for(rf"^.* luasched\.processor: task {done.id} record attempt 1: done in ").group(0)
    failed = sched.submit("fails_first", 7, _max_attempts=1)
    with pytest.raises(luasched.TaskFailed):
        failed.result(timeout=20)
    failed_line = p.wait_for(rf"^.* WARNING luasched\.processor: task {failed.id} .*dead letter").group(0)
    for handle, line in ((done, done_line), (failed, failed_line)):
        finished_s = sched.task_record(handle.id).finished_ms / 1000
        assert abs(logged_at(line) - finished_s) < 0.5, (line, finished_s)
    p.stop()


def test_a_reap_names_the_lapsed_processor_and_the_tasks_it_gave_back(serve, sched, tmp_path):
    """A processor killed mid-task: the survivor's scheduler loop reaps it and says so, and its
    summary lines count what the loop placed, promoted and reaped."""
    victim = serve("processor", "--lease", "1", "--name", "victim", "--no-scheduler")
    (info,) = registered(sched)
    stalled = sched.submit("stalls_first", 60.0)  # placed by the submit (dispatch_on_submit)
    assert sched.task_record(stalled.id).processor == info.id
    deadline = time.monotonic() + 20
    while not (tmp_path / "stalled.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    survivor = serve("processor", "--lease", "5", "--name", "survivor", "--summary-every", "0.3")
    registered(sched, 2)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    delayed = sched.submit("record", 1, _delay=0.3)
    assert stalled.result(timeout=20) == 2 and delayed.result(timeout=20) == 1

    survivor.wait_for(rf"INFO luasched\.scheduler: reaped processor {info.id}: its lease lapsed; "
                      rf"1 task given back: {stalled.id}$")
    time.sleep(0.7)  # one more summary line after the work
    summaries = [re.search(r"INFO luasched\.scheduler: scheduler loop, last (\d+\.\d) s: placed (\d+), "
                           r"promoted (\d+), reaped (\d+), processors lapsed (\d+)$", line)
                 for line in survivor.stop().splitlines() if "scheduler loop, last" in line]
    assert len(summaries) >= 3 and all(summaries), survivor.text()
    totals = [sum(int(s.group(i)) for s in summaries if s) for i in (2, 3, 4, 5)]
    assert totals == [2, 1, 1, 1], survivor.text()  # placed: the retry and the delayed task


@pytest.mark.parametrize("command", ["scheduler", "processor"])
@pytest.mark.parametrize("quiet", [False, True])
def test_the_summary_line_and_quiet(serve, sched, command, quiet):
    served = serve(command, "--summary-every", "0.2", *(["--quiet"] if quiet else []))
    served.wait_for(" started")
    time.sleep(1.2)
    text = served.stop()
    summaries = [line for line in text.splitlines() if "scheduler loop, last" in line]
    if quiet:
        assert summaries == [], text
    else:
        assert len(summaries) >= 3, text  # idle or not: a line proves the loop is alive
        assert all(re.search(r"INFO luasched\.scheduler: scheduler loop, last 0\.\d s: placed 0, promoted 0, "
                             r"reaped 0, processors lapsed 0$", line) for line in summaries), text


def test_json_lines_carry_the_fields(serve, sched):
    p = serve("processor", "--lease", "5", "--log-tasks", "--log-format", "json", "--log-level", "debug",
              "--summary-every", "0.3")
    registered(sched)
    h = sched.submit("fails_first", 7)
    assert h.result(timeout=20) == 7
    p.wait_for(rf'"message": "task {re.escape(h.id)} fails_first attempt 2: done in ')
    p.wait_for(r'"message": "scheduler loop, last ')
    records = [json.loads(line) for line in p.stop().splitlines()]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in records)
    mine = [r for r in records if r.get("task_id") == h.id]
    retry, traceback, done = mine
    assert (retry["level"], retry["logger"]) == ("INFO", "luasched.processor")
    assert retry["message"].endswith("; retry 2/3 in 0.20 s: ValueError: chunk 7: corrupt input")
    assert {k: retry[k] for k in ("task_name", "attempt", "outcome", "error_type", "error_message", "retry_in_s",
                                  "max_attempts")} == {
        "task_name": "fails_first", "attempt": 1, "outcome": "retry", "error_type": "ValueError",
        "error_message": "chunk 7: corrupt input", "retry_in_s": 0.2, "max_attempts": 3}
    assert traceback["level"] == "DEBUG" and "Traceback (most recent call last)" in traceback["message"]
    assert (done["level"], done["outcome"], done["attempt"], done["task_name"]) == ("INFO", "done", 2, "fails_first")
    summary = next(r for r in records if r["message"].startswith("scheduler loop, last "))
    assert summary["logger"] == "luasched.scheduler" and summary["event"] == "summary"
    assert {"placed", "promoted", "reaped", "lapsed"} <= set(summary)
