"""explain (lua/explain.lua, core/explain.py): every reason a task gives, with the detail it rests
on, read in one read-only call. Each test on the embedded server and on a real one."""

from __future__ import annotations

import re

import pytest

import luasched
from luasched.core.explain import REASONS
from luasched.scripts import lua_dir

from .util import ack, error_json, start

NOW_MS = 1_700_000_000_000  # the FakeClock's start


def explained(sched: luasched.Scheduler, handle: luasched.TaskHandle) -> luasched.Explanation:
    """The explanation by both ways in, which must agree; its sentence names the task."""
    got = handle.explain()
    assert got == sched.explain(handle.id)
    assert got.reason in REASONS and got.task_id == handle.id and handle.id in got.text
    assert got.now_ms >= NOW_MS
    return got


def serving(sched: luasched.Scheduler, capacity: int = 1, queues: tuple[str, ...] = ("default",),
            lease: float = 60) -> luasched.Processor:
    p = sched.processor(capacity=capacity, queues=queues, lease=lease)
    assert p.register()
    return p


def test_a_delayed_task_says_when_it_is_due(sched):
    h = sched.submit("add", 1, 2, _delay=90)
    got = explained(sched, h)
    assert (got.state, got.reason) == ("delayed", "delayed")
    assert got.detail == {"until_ms": NOW_MS + 90_000, "queue": "default", "retry": False, "attempts": 0}
    assert "in 1 min 30 s" in got.text


def test_a_retry_waiting_out_its_backoff_is_delayed_as_a_retry(sched):
    p = serving(sched)
    h = sched.submit("add", 1, 2, _retry_backoff=30)
    assert sched.dispatch() == [(h.id, p.id)]
    assert ack(sched, p.id, start(sched, p.id).task, "error", error_json()).statuses == ["retry"]
    got = explained(sched, h)
    assert got.reason == "delayed" and got.detail["retry"] is True and got.detail["attempts"] == 1
    assert got.detail["until_ms"] == NOW_MS + 30_000 and "retry backoff" in got.text


def test_no_live_processor_serving_the_queue_is_no_processor(sched, clock):
    h = sched.submit("add", 1, 2, _queue="reports")
    got = explained(sched, h)
    assert (got.state, got.reason) == ("queued", "no_processor")
    assert got.detail["condition"] == "queue" and got.detail["queue"] == "reports"
    assert got.detail["processors"] == 0 and got.detail["queue_depth"] == 1 and got.detail["at_head"] is True
    assert "no live processor serves" in got.text

    serving(sched, queues=("default", "other"))  # serves other queues: still none for reports
    assert explained(sched, h).reason == "no_processor"
    lapsing = serving(sched, queues=("reports",), lease=5)
    assert explained(sched, h).reason == "waiting_slot"
    clock.advance(6)  # its lease lapsed: it serves nothing any more
    assert explained(sched, h).reason == "no_processor"
    assert lapsing.id not in explained(sched, h).text


def test_busy_processors_are_waiting_slot_with_the_lane_and_the_queue(sched):
    p = serving(sched, capacity=1)
    first, second, third = sched.submit_many("add", [(1, 1), (2, 2), (3, 3)])
    assert sched.dispatch() == [(first.id, p.id)]
    got = explained(sched, second)
    assert (got.state, got.reason) == ("queued", "waiting_slot")
    assert {k: got.detail[k] for k in ("queue", "processors", "free_processors", "queue_depth", "lane_length",
                                       "at_head", "head", "priority", "key")} == {
        "queue": "default", "processors": 1, "free_processors": 0, "queue_depth": 2, "lane_length": 2,
        "at_head": True, "head": second.id, "priority": 5, "key": None}
    assert "busy" in got.text
    behind = explained(sched, third)
    assert behind.reason == "waiting_slot" and behind.detail["at_head"] is False
    assert behind.detail["head"] == second.id and second.id in behind.text


def test_a_free_slot_not_yet_dispatched_is_waiting_slot_with_a_free_processor(sched):
    serving(sched, capacity=2)
    h = sched.submit("add", 1, 2)  # no dispatch at submit here: it waits for the next dispatch
    got = explained(sched, h)
    assert got.reason == "waiting_slot" and got.detail["free_processors"] == 1 and got.detail["processors"] == 1
    assert "free slot" in got.text


def test_free_processors_count_only_those_that_may_run_it(sched):
    gpu = sched.processor(capacity=1, labels={"gpu": "a100"})
    cpu = sched.processor(capacity=2, labels={"gpu": "none"})
    assert gpu.register() and cpu.register()
    busy = sched.submit("add", 0, 0, _requires={"gpu": "a100"})
    assert sched.dispatch() == [(busy.id, gpu.id)]
    h = sched.submit("add", 1, 2, _requires={"gpu": "a100"})
    got = explained(sched, h)
    assert got.reason == "waiting_slot"
    # two processors serve the queue and one has free slots, but it may not run the task
    assert (got.detail["processors"], got.detail["capable_processors"], got.detail["free_processors"]) == (2, 1, 0)
    assert "all 1 processor serving it that may run it are busy" in got.text
    plain = explained(sched, sched.submit("add", 3, 4))  # any processor may run this one
    assert (plain.detail["capable_processors"], plain.detail["free_processors"]) == (2, 1)


@pytest.mark.parametrize(("queue", "key", "scope"), [
    (None, None, "namespace"), ("default", None, "queue"), (None, "acme", "key"), ("default", "acme", "queue_key"),
])
def test_a_pause_covering_it_is_paused_with_its_scope(sched, queue, key, scope):
    serving(sched)
    h = sched.submit("add", 1, 2, _key="acme")
    assert sched.pause(queue, key=key)
    got = explained(sched, h)
    assert (got.state, got.reason) == ("queued", "paused")
    assert got.detail["scope"] == scope and got.detail["since_ms"] == NOW_MS
    assert (got.detail["paused_queue"], got.detail["paused_key"]) == (
        "default" if scope in ("queue", "queue_key") else None, "acme" if scope in ("key", "queue_key") else None)
    assert "paused" in got.text
    assert sched.resume(queue, key=key)
    assert explained(sched, h).reason == "waiting_slot"


def test_a_pause_of_another_key_or_queue_does_not_hold_it(sched):
    serving(sched)
    h = sched.submit("add", 1, 2, _key="acme")
    sched.pause("other")
    sched.pause(key="globex")
    assert explained(sched, h).reason == "waiting_slot"


def test_a_full_running_count_is_max_running_with_the_counts(sched):
    p = serving(sched, capacity=5)
    sched.limit("db", max_running=1)
    a, b = (sched.submit("add", i, i, _limits=("db",)) for i in range(2))
    assert sched.dispatch() == [(a.id, p.id)]
    got = explained(sched, b)
    assert (got.state, got.reason) == ("queued", "max_running")
    assert (got.detail["limiter"], got.detail["running"], got.detail["max_running"]) == ("db", 1, 1)
    assert got.detail["processors"] == 1 and got.detail["free_processors"] == 1
    assert "limiter db: 1 of its 1" in got.text
    ack(sched, p.id, start(sched, p.id).task)  # the count comes back
    assert explained(sched, b).reason == "waiting_slot"


def test_a_task_behind_a_held_head_waits_for_the_heads_limiter(sched):
    p = serving(sched, capacity=5)
    sched.limit("db", max_running=1)
    a = sched.submit("add", 0, 0, _limits=("db",))
    head = sched.submit("add", 1, 1, _limits=("db",))
    free = sched.submit("add", 2, 2)  # no limiter, but in the same lane, behind the held head
    assert sched.dispatch() == [(a.id, p.id)]
    got = explained(sched, free)
    assert got.reason == "max_running" and got.detail["limiter"] == "db"
    assert got.detail["head"] == head.id and got.detail["at_head"] is False and got.detail["lane_length"] == 2


def test_a_spent_rate_is_rate_limited_until_its_time(sched, clock):
    p = serving(sched, capacity=5, lease=600)
    sched.limit("api", rate=1, per=60)
    a, b = (sched.submit("add", i, i, _limits=("api",)) for i in range(2))
    assert sched.dispatch() == [(a.id, p.id)]
    got = explained(sched, b)
    assert (got.state, got.reason) == ("queued", "rate_limited")
    assert got.detail["limiter"] == "api" and got.detail["until_ms"] == NOW_MS + 60_000
    assert "limiter api" in got.text and "in 1 min 0 s" in got.text
    clock.advance(61)
    assert explained(sched, b).reason == "waiting_slot"


def test_assigned_and_running_name_the_processor(sched):
    p = serving(sched, capacity=2)
    h = sched.submit("add", 1, 2, _timeout=30)
    assert sched.dispatch() == [(h.id, p.id)]
    got = explained(sched, h)
    assert (got.state, got.reason) == ("assigned", "assigned")
    assert got.detail == {"processor": p.id, "processor_name": p.name, "processor_alive": True, "attempt": 0,
                          "pending": 1}
    start(sched, p.id)
    got = explained(sched, h)
    assert (got.state, got.reason) == ("running", "running")
    assert got.detail == {"processor": p.id, "processor_name": p.name, "processor_alive": True, "attempt": 1,
                          "started_ms": NOW_MS, "timeout_ms": NOW_MS + 30_000}
    assert p.id in got.text


def test_a_running_task_without_timeout_has_none(sched):
    p = serving(sched)
    h = sched.submit("add", 1, 2)
    sched.dispatch()
    start(sched, p.id)
    assert explained(sched, h).detail["timeout_ms"] is None


def test_finished_states_come_from_the_record(sched, clock):
    p = serving(sched, capacity=3)
    done = sched.submit("add", 1, 2)
    failed = sched.submit("add", 3, 4, _max_attempts=1)
    cancelled = sched.submit("add", 5, 6, _queue="later")
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task)
    clock.advance(1)
    ack(sched, p.id, start(sched, p.id).task, "error", error_json("out of cheese", "RuntimeError"))
    assert cancelled.cancel()

    got = explained(sched, done)
    assert (got.state, got.reason) == ("done", "done")
    assert got.detail == {"finished_ms": NOW_MS, "attempts": 1, "processor": p.id}
    got = explained(sched, failed)
    assert (got.state, got.reason) == ("failed", "failed")
    assert got.detail == {"finished_ms": NOW_MS + 1000, "attempts": 1, "processor": p.id,
                          "error_type": "RuntimeError", "error_message": "out of cheese"}
    assert "RuntimeError: out of cheese" in got.text
    got = explained(sched, cancelled)
    assert (got.state, got.reason) == ("cancelled", "cancelled")
    assert got.detail["finished_ms"] == NOW_MS + 1000 and got.detail["processor"] is None


def test_an_unknown_task_raises_task_not_found(sched):
    with pytest.raises(luasched.TaskNotFound, match="no-such"):
        sched.explain("no-such")
    with pytest.raises(ValueError, match="task id"):
        sched.explain("bad id")


def test_explaining_writes_nothing(sched):
    serving(sched)
    sched.limit("db", max_running=1)
    h = sched.submit("add", 1, 2, _limits=("db",), _key="k")
    before = sorted(sched.client.keys(sched.keys.prefix + "*"))
    dumped = {k: sched.client.dump(k) for k in before}
    sched.explain(h.id)
    assert sorted(sched.client.keys(sched.keys.prefix + "*")) == before
    assert {k: sched.client.dump(k) for k in before} == dumped


def test_the_script_never_reads_a_whole_list_or_scans():
    source = (lua_dir() / "explain.lua").read_text(encoding="utf-8")
    called = set(re.findall(r"redis\.call\('([A-Z]+)'", source))
    assert called.isdisjoint({"LRANGE", "LPOS", "SCAN", "KEYS", "HGETALL", "SMEMBERS", "ZRANGE"}), called
