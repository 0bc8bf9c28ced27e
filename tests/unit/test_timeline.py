"""core/timeline: the attempt log's decoding and the wait before an attempt, by phase (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from luasched.core.timeline import Attempt, Facts, decode_attempts, timeline, wait_of


def facts(**given: object) -> Facts:
    values: dict[str, object] = {"state": "running", "attempts": 1, "created_ms": 1000, "ready_ms": 0,
                                 "placed_ms": 0, "started_ms": 0, "finished_ms": 0, "processor": "p",
                                 "last_processor": "", "parents": "", "history": ()}
    return Facts(**(values | given))  # type: ignore[arg-type]


RETRY = Attempt(1, 1100, 1200, 1300, "p", "error", 1800, "ValueError", "no")
REVIVED = Attempt(1, 1100, 1200, 1300, "p", "failed", 5000, "ValueError", "no")


def test_the_log_decodes_entries_and_leaves_out_what_it_cannot_read():
    raw = "\x1e".join(["\x1f".join(["1", "10", "20", "30", "p1", "error", "40", "ValueError", "no"]),
                       "\x1f".join(["2", "", "50", "60", "p2", "lease", "", "", ""]), "broken"])
    assert decode_attempts(raw) == (Attempt(1, 10, 20, 30, "p1", "error", 40, "ValueError", "no"),
                                    Attempt(2, 0, 50, 60, "p2", "lease", 0, "", ""))
    assert decode_attempts(None) == decode_attempts("") == ()


@pytest.mark.parametrize(("given", "phases", "reason"), [
    ({"placed_ms": 1000, "started_ms": 1000}, {"queue": 0, "inbox": 0}, "none"),  # placed at submit, started at once
    ({"placed_ms": 1500, "started_ms": 1600}, {"queue": 500, "inbox": 100}, "queue"),
    ({"placed_ms": 1100, "started_ms": 1900}, {"queue": 100, "inbox": 800}, "inbox"),
    ({"ready_ms": 3000, "placed_ms": 3100, "started_ms": 3100}, {"delay": 2000, "queue": 100, "inbox": 0}, "delay"),
    ({"parents": "t:a", "ready_ms": 3000, "placed_ms": 3000, "started_ms": 3500},
     {"dependencies": 2000, "queue": 0, "inbox": 500}, "dependencies"),
    ({"started_ms": 1700}, {"queue": 700}, "queue"),  # a record written before placed times
    ({"attempts": 2, "history": (RETRY,), "placed_ms": 1900, "started_ms": 1900},
     {"delay": 500, "queue": 100, "inbox": 0}, "delay"),  # a retry's backoff
    ({"attempts": 2, "history": (replace(RETRY, ended="lease", due_ms=0),), "placed_ms": 1500, "started_ms": 1500},
     {"queue": 200, "inbox": 0}, "queue"),  # queued again at once: no delay
    ({"attempts": 1, "history": (REVIVED,), "ready_ms": 5000, "placed_ms": 5000, "started_ms": 5200},
     {"queue": 0, "inbox": 200}, "inbox"),  # revived: its wait starts then
])
def test_the_wait_before_an_attempt_by_phase(given, phases, reason):
    found = wait_of(facts(**given))
    assert found is not None and (found.phases, found.reason) == (phases, reason)


def test_no_start_no_wait():
    assert wait_of(facts()) is None


def test_a_retried_task_placed_again_lists_each_attempt_once():
    found = timeline(facts(state="assigned", attempts=1, history=(RETRY,), started_ms=1200, placed_ms=1900))
    assert [(e.at_ms, e.event, e.detail) for e in found] == [
        (1000, "created", ""), (1100, "placed", "attempt 1"), (1200, "started", "attempt 1"),
        (1300, "ended", "attempt 1 error, retried (ValueError: no)"), (1800, "retry due", "attempt 2 may start"),
        (1900, "placed", "attempt 2")]


def test_an_expired_task_says_so():
    found = timeline(facts(state="failed", attempts=0, finished_ms=4000,
                           error={"type": "TaskExpired", "message": "not started by its deadline (4000 ms)"}))
    assert [(e.event, e.processor, e.detail) for e in found] == [
        ("created", "", ""), ("finished", "", "expired (TaskExpired: not started by its deadline (4000 ms))")]
