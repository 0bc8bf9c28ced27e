"""core/explain.py without Redis: reasons decoded from the script's facts, and the per-queue
counts of waiting tasks no live processor can take (``luasched status``)."""

from __future__ import annotations

import json

import pytest

from luasched.core.explain import REASONS, decode_explain, no_processor_counts, unrunnable_names
from luasched.core.replies import ProcessorInfo
from luasched.errors import TaskNotFound

NOW = 1_000_000


def facts(**pairs: str) -> list:
    flat = [x for name, value in pairs.items() for x in (name, value)]
    return [str(NOW), flat]


def test_a_failed_task_whose_error_is_task_expired_is_expired():
    error = json.dumps({"type": "TaskExpired", "message": "not started by its deadline", "traceback": ""})
    got = decode_explain(facts(state="failed", finished_ms="999", error=error), "t1")
    assert (got.state, got.reason) == ("failed", "expired")
    assert got.detail["error_type"] == "TaskExpired" and got.detail["finished_ms"] == 999
    assert got.text == "Task t1 expired before it started: TaskExpired: not started by its deadline."
    assert "expired" in REASONS and "waiting_dependencies" in REASONS


def test_more_live_processors_than_read_leaves_the_queue_unknown_not_unserved():
    got = decode_explain(facts(state="queued", live="20000", read="10000", serving="0", free="0",
                               queue_depth="1", lane_length="1", head="t1"), "t1")
    assert got.reason == "waiting_slot" and got.detail["processors"] is None
    served = decode_explain(facts(state="queued", live="20000", read="10000", serving="3", free="1"), "t1")
    assert served.detail["processors"] == 3 and served.detail["free_processors"] == 1


def test_no_facts_is_task_not_found():
    with pytest.raises(TaskNotFound, match="t9"):
        decode_explain([str(NOW), []], "t9")


def proc(pid: str, queues: tuple[str, ...], deadline: int, tasks: tuple[str, ...] = ()) -> ProcessorInfo:
    return ProcessorInfo(pid, deadline, pid, 1, queues, 0, 0, 0, 0, tasks=tasks)


@pytest.mark.parametrize(("procs", "complete", "expected"), [
    ([], True, {"a": 3, "b": 0, "c": 2}),
    ([proc("p1", ("a",), NOW + 1)], True, {"a": 0, "b": 0, "c": 2}),
    ([proc("p1", ("a", "c"), NOW - 1)], True, {"a": 3, "b": 0, "c": 2}),  # lapsed: serves nothing
    ([proc("p1", ("c",), NOW)], False, {"a": None, "b": 0, "c": 0}),  # not every processor read
])
def test_no_processor_counts(procs, complete, expected):
    assert no_processor_counts({"a": 3, "b": 0, "c": 2}, procs, NOW, complete) == expected


NAMES = {"a": ["x", "y"], "b": ["x"], "c": ["z"]}


@pytest.mark.parametrize(("procs", "complete", "expected"), [
    ([], True, {}),  # no queue served: status counts those tasks as no processor already
    ([proc("p1", ("a", "b"), NOW, ("x",))], True, {"a": ["y"], "b": []}),
    ([proc("p1", ("a",), NOW, ("x",)), proc("p2", ("a",), NOW, ("y",))], True, {"a": []}),  # together
    ([proc("p1", ("a",), NOW, ("x",)), proc("p2", ("a",), NOW)], True, {}),  # p2 takes any task
    ([proc("p1", ("a",), NOW, ("x",)), proc("p2", ("a",), NOW - 1, ("y",))], True, {"a": ["y"]}),  # lapsed
    ([proc("p1", ("a",), NOW, ("x",))], False, {"a": None}),  # not every processor read
])
def test_unrunnable_names(procs, complete, expected):
    assert unrunnable_names(NAMES, procs, NOW, complete) == expected
