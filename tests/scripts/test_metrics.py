"""The metrics the scripts keep (lua/lib/metrics.lua, the stats) and read (lua/metrics.lua), as
Prometheus's own parser reads luasched.metrics.exposition: known durations and waits from the
FakeClock, a retry, a failure, a reaped task, queue ages in plain and lanes mode."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from luasched import metrics
from luasched.core import ops
from luasched.core.metrics import BOUNDS_MS, KEEP_S
from luasched.scripts import lua_dir
from tests.scripts.util import ack, audit_ok, error_json, start

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(sched) -> Samples:
    """Every sample of the exposition, by name and labels (the namespace label checked, then left out)."""
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.exposition(sched).decode()):
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("namespace") == sched.namespace, s
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def one(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def buckets(found: Samples, name: str, label: str, value: str) -> dict[str, float]:
    """A histogram's cumulative buckets for one label, by ``le``."""
    return {dict(k[1])["le"]: v for k, v in found.items()
            if k[0] == name + "_bucket" and dict(k[1]).get(label) == value}


def test_durations_waits_retries_and_failures(sched, clock):
    p = sched.processor(capacity=2, queues=("default",), lease=600)
    assert p.register()
    sched.submit("add", 1, 2)
    clock.advance(2)  # it waits 2 s before its start
    assert len(sched.dispatch()) == 1
    first = start(sched, p.id).task
    clock.advance(0.3)
    ack(sched, p.id, first, "done", "3")  # ran 0.3 s
    sched.submit("boom", _max_attempts=2)
    assert len(sched.dispatch()) == 1
    attempt = start(sched, p.id).task  # waited 0 s
    clock.advance(0.04)
    assert ack(sched, p.id, attempt, "error", error_json()).statuses == ["retry"]
    clock.advance(1.1)  # its backoff (1 s) passed: its retry waits again, not counted as a queue wait
    assert len(sched.dispatch()) == 1
    attempt = start(sched, p.id).task
    clock.advance(0.04)
    assert ack(sched, p.id, attempt, "error", error_json()).statuses == ["failed"]
    audit_ok(sched)

    found = samples(sched)

    assert one(found, "luasched_tasks_submitted_total") == 2
    assert {o: one(found, "luasched_tasks_finished_total", outcome=o)
            for o in ("done", "failed", "cancelled", "expired")} == {"done": 1, "failed": 1, "cancelled": 0,
                                                                     "expired": 0}
    assert one(found, "luasched_tasks_retried_total") == 1
    assert one(found, "luasched_tasks_recovered_total") == 0
    assert one(found, "luasched_dispatch_placed_total") == 3
    add = buckets(found, "luasched_task_duration_seconds", "task", "add")
    assert (add["0.25"], add["0.5"], add["+Inf"]) == (0, 1, 1)
    assert one(found, "luasched_task_duration_seconds_sum", task="add") == pytest.approx(0.3)
    boom = buckets(found, "luasched_task_duration_seconds", "task", "boom")
    assert (boom["0.025"], boom["0.05"], boom["+Inf"]) == (0, 2, 2)
    assert one(found, "luasched_task_duration_seconds_count", task="boom") == 2
    assert one(found, "luasched_task_duration_seconds_sum", task="boom") == pytest.approx(0.08)
    wait = buckets(found, "luasched_queue_wait_seconds", "queue", "default")
    assert (wait["0.005"], wait["1"], wait["2.5"], wait["+Inf"]) == (1, 1, 2, 2)
    assert one(found, "luasched_queue_wait_seconds_sum", queue="default") == pytest.approx(2.0)
    assert one(found, "luasched_tasks_finished_last_minute", outcome="done") == 1
    assert {s: one(found, "luasched_tasks", state=s) for s in ("waiting", "queued", "delayed", "assigned",
                                                                "running")} == dict.fromkeys(
        ("waiting", "queued", "delayed", "assigned", "running"), 0)
    assert one(found, "luasched_processors", state="idle") == 1
    assert (one(found, "luasched_slots", state="free"), one(found, "luasched_slots", state="used")) == (2, 0)


def test_queue_ages_places_and_a_reaped_task(sched, clock):
    p = sched.processor(capacity=1, queues=("default",), lease=5)
    assert p.register()
    sched.submit("add", _queue="plain")  # nobody serves it: it stays queued
    clock.advance(3)
    sched.submit("add", _queue="laned", _priority=2)  # lanes mode: the age is of its lanes' oldest head
    clock.advance(1)
    sched.submit("add", _queue="laned", _priority=7)
    gone = sched.submit("add", _queue="plain")
    clock.advance(1)
    sched.submit("add")
    assert len(sched.dispatch()) == 1  # p is full
    sched.submit("add")
    running = start(sched, p.id).task
    assert gone.cancel()
    audit_ok(sched)

    found = samples(sched)

    ages = {q: one(found, "luasched_queue_oldest_age_seconds", queue=q) for q in ("plain", "laned", "default")}
    assert ages == {"plain": 5.0, "laned": 2.0, "default": 0.0}
    assert one(found, "luasched_queue_depth", queue="laned") == 2
    assert {s: one(found, "luasched_tasks", state=s) for s in ("queued", "running", "assigned")} == {
        "queued": 4, "running": 1, "assigned": 0}
    assert one(found, "luasched_tasks_finished_total", outcome="cancelled") == 1
    assert [one(found, "luasched_processors", state=s) for s in ("idle", "busy", "lapsed")] == [0, 1, 0]
    assert (one(found, "luasched_slots", state="free"), one(found, "luasched_slots", state="used")) == (0, 1)

    clock.advance(6)  # p's lease lapses
    assert one(samples(sched), "luasched_processors", state="lapsed") == 1
    assert sched.reap() == [running.id]
    found = samples(sched)
    assert one(found, "luasched_tasks_recovered_total") == 1
    assert one(found, "luasched_tasks_retried_total") == 1  # its attempt ended: it retries at its queue's head
    assert [one(found, "luasched_processors", state=s) for s in ("idle", "busy", "lapsed")] == [0, 0, 0]
    assert one(found, "luasched_queue_oldest_age_seconds", queue="default") == 6.0  # the reaped one, back at the head
    audit_ok(sched)


def hash_of(sched, key) -> dict[str, str]:
    return {ops.text(k): ops.text(v) for k, v in sched.client.hgetall(key).items()}


def test_the_first_reap_of_a_minute_keeps_a_copy_that_expires(sched, clock):
    p = sched.processor(capacity=1, queues=("default",), lease=600)
    assert p.register()
    sched.submit("add")
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task)
    minute = int(clock.now * 1000) // 60000
    key = sched.keys.metrics_minute(minute)
    assert not sched.client.exists(key)  # the acks write the totals only

    sched.reap()

    totals = hash_of(sched, sched.keys.metrics_total)
    assert totals == {"d:0:add": "1", "wq:0:default": "1"}  # the sums of 0 ms are not written
    found = samples(sched)  # and read as 0
    assert one(found, "luasched_task_duration_seconds_sum", task="add") == 0
    assert one(found, "luasched_task_duration_seconds_count", task="add") == 1
    assert one(found, "luasched_queue_wait_seconds_sum", queue="default") == 0
    assert hash_of(sched, key) == totals
    assert 0 < sched.client.ttl(key) <= KEEP_S
    assert sched.client.ttl(sched.keys.metrics_total) == -1  # the totals stay
    sched.submit("add")
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task)
    sched.reap()  # the same minute: its copy stays as it was
    assert hash_of(sched, key)["d:0:add"] == "1"
    clock.advance(60)
    sched.reap()
    assert hash_of(sched, sched.keys.metrics_minute(minute + 1))["d:0:add"] == "2"

    [one_minute] = metrics.history(sched, int(clock.now * 1000), 5)  # the other minutes have no copy

    assert (one_minute.minute, one_minute.since) == (minute + 1, minute)
    assert {k: h.count for k, h in one_minute.durations.items()} == {"add": 1}  # the second task's attempt
    assert {k: h.count for k, h in one_minute.waits.items()} == {"default": 1}
    with pytest.raises(ValueError, match="minutes must be 1..60"):
        metrics.history(sched, int(clock.now * 1000), 61)


def test_the_lua_bounds_are_the_documented_ones():
    source = (lua_dir() / "lib" / "metrics.lua").read_text(encoding="utf-8")
    bounds = re.search(r"local METRIC_BOUNDS_MS = \{([^}]*)\}", source)
    keep = re.search(r"local METRIC_KEEP_S = (\d+)", source)
    assert bounds and keep
    assert tuple(int(x) for x in bounds.group(1).replace("\n", " ").split(",")) == BOUNDS_MS
    assert int(keep.group(1)) == KEEP_S


def test_a_call_that_starts_and_acks_many_writes_each_field_once(sched, clock):
    """A batch start and a batch ack gather their observations before writing them (one HINCRBY
    per field of mt a call changes): every task is still counted, each in its own bucket, and the
    sums are the sums of every value."""
    p = sched.processor(capacity=20, queues=("default",), lease=600)
    assert p.register()
    sched.submit_many("add", [(i, i) for i in range(12)])
    clock.advance(0.2)
    assert len(sched.dispatch(limit=20)) == 12
    started = ops.decode_start(sched.call(ops.start(sched.ns, sched.now_ms(), p.id, "s0", "r1", want=12)))
    assert len(started.tasks) == 12
    clock.advance(0.01)
    finished = [(t, "done", "1") for t in started.tasks[:6]]
    ops.decode_ack(sched.call(ops.ack_many(sched.ns, sched.now_ms(), p.id, "s0", "r2", finished, ops.NEXT_NONE, 0)))
    clock.advance(0.5)
    finished = [(t, "done", "1") for t in started.tasks[6:]]
    ops.decode_ack(sched.call(ops.ack_many(sched.ns, sched.now_ms(), p.id, "s0", "r3", finished, ops.NEXT_NONE, 0)))
    audit_ok(sched)

    found = samples(sched)
    add = buckets(found, "luasched_task_duration_seconds", "task", "add")
    assert (add["0.005"], add["0.01"], add["0.5"], add["1"], add["+Inf"]) == (0, 6, 6, 12, 12)
    assert one(found, "luasched_task_duration_seconds_sum", task="add") == pytest.approx(6 * 0.01 + 6 * 0.51)
    wait = buckets(found, "luasched_queue_wait_seconds", "queue", "default")
    assert (wait["0.1"], wait["0.25"], wait["+Inf"]) == (0, 12, 12)
    assert one(found, "luasched_queue_wait_seconds_sum", queue="default") == pytest.approx(12 * 0.2)
    assert one(found, "luasched_tasks_finished_total", outcome="done") == 12


def test_an_ack_that_starts_the_next_task_counts_both(sched, clock):
    """An ack with next = take observes a duration and, starting the next task, a wait: four
    fields of mt written as one read and one write, on top of what they held."""
    p = sched.processor(capacity=1, queues=("default",), lease=600)
    assert p.register()
    sched.submit_many("add", [(i, i) for i in range(3)])
    assert len(sched.dispatch()) == 1
    task = start(sched, p.id).task
    for _ in range(2):
        clock.advance(0.03)
        reply = ack(sched, p.id, task, "done", "0", next_mode=ops.NEXT_TAKE)
        (task,) = reply.started
    clock.advance(0.03)
    assert ack(sched, p.id, task).statuses == ["done"]
    audit_ok(sched)

    found = samples(sched)
    add = buckets(found, "luasched_task_duration_seconds", "task", "add")
    assert (add["0.025"], add["0.05"], add["+Inf"]) == (0, 3, 3)
    assert one(found, "luasched_task_duration_seconds_sum", task="add") == pytest.approx(0.09)
    wait = buckets(found, "luasched_queue_wait_seconds", "queue", "default")
    assert (wait["0.025"], wait["0.05"], wait["0.1"], wait["+Inf"]) == (1, 2, 3, 3)  # 0, 0.03, 0.06 s
    assert one(found, "luasched_queue_wait_seconds_sum", queue="default") == pytest.approx(0.09)
