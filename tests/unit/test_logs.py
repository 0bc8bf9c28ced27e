"""The text and level of each log line (luasched.core.logs), pure: no Redis, no processes."""

from __future__ import annotations

import logging

import pytest

from luasched.core import logs
from luasched.core.replies import DispatchReply, Ended, Lapsed, Overdue, Reaped
from luasched.core.tasks import Started, error_json

TASK = Started("t1", "analyse_chunk", "[7]", 2, 0)
ERROR = error_json("ValueError", "chunk 7: corrupt input", "Traceback (most recent call last):\n  ...\n")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


@pytest.mark.parametrize(("status", "ended", "level", "says"), [
    ("retry", Ended(500, 3), "INFO", "failed after 0.001 s; retry 3/3 in 0.50 s: ValueError: chunk 7: corrupt input"),
    ("failed", Ended(None, 2), "WARNING",
     "failed after 0.001 s; dead letter after 2/2 attempts: ValueError: chunk 7: corrupt input"),
    ("retry", None, "INFO",
     "failed after 0.001 s; retry 3 (when: the ack was a replay, it does not say): ValueError: chunk 7: corrupt input"),
    ("failed", None, "WARNING",
     "failed after 0.001 s; dead letter after 2 attempts: ValueError: chunk 7: corrupt input"),
])
def test_a_failed_attempt(caplog, status, ended, level, says):
    caplog.set_level(logging.INFO, "luasched")
    logs.attempt_failed(TASK, ERROR, 0.0012, status, ended, "p1")
    assert lines(caplog) == [(level, f"task t1 analyse_chunk attempt 2: {says}")]
    record = caplog.records[0]
    assert (record.task_id, record.attempt, record.error_type, record.outcome) == (  # type: ignore[attr-defined]
        "t1", 2, "ValueError", "retry" if status == "retry" else "dead_letter")


def test_the_traceback_is_one_level_down(caplog):
    caplog.set_level(logging.DEBUG, "luasched")
    logs.attempt_failed(TASK, ERROR, 0.001, "failed", Ended(None, 2), "p1")
    (_, first), (level, second) = lines(caplog)
    assert first.endswith("ValueError: chunk 7: corrupt input")
    assert (level, second) == ("DEBUG", "task t1 analyse_chunk attempt 2: traceback of its ValueError:\n"
                                        "Traceback (most recent call last):\n  ...")


def test_nothing_is_formatted_below_the_level(caplog):
    caplog.set_level(logging.ERROR, "luasched")
    logs.attempt_failed(TASK, "not json at all", 0.001, "failed", None, "p1")
    logs.attempt_done(TASK, 0.001, "p1")
    logs.reaped(Reaped(["t1"], ["p1"], False, [Lapsed("p1", ["t1"], 0)]))
    assert caplog.records == []


def test_a_message_stays_on_one_line_and_short():
    assert logs.error_text("ValueError", "two\nlines  here") == "ValueError: two lines here"
    assert logs.error_text("KeyError", "") == "KeyError"
    long = logs.error_text("E", "x" * 2000)
    assert len(long) == len("E: ") + logs.MESSAGE_CHARS and long.endswith("...")


def test_done_and_stale(caplog):
    caplog.set_level(logging.INFO, "luasched")
    logs.attempt_done(TASK, 0.25, "p1")
    logs.acked([TASK, TASK], [("done", "1", 0.3), ("error", ERROR, 0.4)], ["stale", "stale"], {}, "p1")
    taken_back = ("but the attempt had already ended (its lease lapsed, it ran past its timeout, or it was "
                  "cancelled): its ack changed nothing")
    assert lines(caplog) == [
        ("INFO", "task t1 analyse_chunk attempt 2: done in 0.250 s"),
        ("WARNING", f"task t1 analyse_chunk attempt 2: done in 0.300 s, {taken_back}"),
        ("WARNING", f"task t1 analyse_chunk attempt 2: failed after 0.400 s (ValueError: chunk 7: corrupt input), "
                    f"{taken_back}"),
    ]


def test_reap_lines(caplog):
    caplog.set_level(logging.INFO, "luasched")
    many = [f"t{i}" for i in range(12)]
    logs.reaped(Reaped(["a", "b", *many, "late", "last"], ["p1", "p2"], False,
                       [Lapsed("p1", ["a", "b"], 1), Lapsed("p2", many, 0)],
                       [Overdue("late", "p3", 5000, 2000), Overdue("last", "p3", 1500, None)]))
    assert lines(caplog) == [
        ("INFO", "reaped processor p1: its lease lapsed; 2 tasks given back: a, b (1 on their last attempt: failed)"),
        ("INFO", "reaped processor p2: its lease lapsed; 12 tasks given back: " + ", ".join(many[:10]) + ", ..."),
        ("INFO", "reaped task late from processor p3: it ran past its timeout of 5.000 s; retry in 2.00 s; "
                 "its slot stays taken until the call ends"),
        ("INFO", "reaped task last from processor p3: it ran past its timeout of 1.500 s; "
                 "failed for good (its last attempt); its slot stays taken until the call ends"),
    ]


def test_a_reap_that_ended_expired_tasks_says_how_many(caplog):
    caplog.set_level(logging.INFO, "luasched")
    logs.reaped(Reaped([], [], False, expired=3))
    logs.reaped(Reaped([], [], False))  # nothing expired: no line
    assert lines(caplog) == [
        ("INFO", "ended 3 waiting tasks whose deadline came before they started: failed with TaskExpired"),
    ]


def test_the_summary_counts_and_says_so_once_per_interval(caplog):
    caplog.set_level(logging.INFO, "luasched")
    summary = logs.LoopSummary(60.0)
    summary.since = start = 1000.0
    summary.dispatched(DispatchReply([("t1", "p1"), ("t2", "p1")], 0, None, None, None, promoted=3))
    summary.took_back(Reaped(["t3"], ["p9"], False))
    assert summary.left_s(start + 59.5) == pytest.approx(0.5)
    assert not summary.tick(start + 59.9)
    assert summary.tick(start + 60.0)
    assert not summary.tick(start + 61.0)
    assert summary.tick(start + 120.0)  # idle: a line all the same
    assert lines(caplog) == [
        ("INFO", "scheduler loop, last 60.0 s: placed 2, promoted 3, reaped 1, processors lapsed 1"),
        ("INFO", "scheduler loop, last 60.0 s: placed 0, promoted 0, reaped 0, processors lapsed 0"),
    ]


def test_no_summary(caplog):
    caplog.set_level(logging.INFO, "luasched")
    quiet = logs.LoopSummary(None)
    assert quiet.left_s() == float("inf") and not quiet.tick(quiet.since + 10**6)
    assert caplog.records == []
