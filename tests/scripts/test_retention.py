"""How long finished records live (``keep=``), and that counts and audit survive their expiry."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import fields

from .util import ack, audit_ok, error_json, start


@pytest.fixture
def kept(make_sched, clock):
    s = make_sched(clock=clock, keep=60)
    p = s.processor(capacity=4, lease=600)
    assert p.register()
    return s, p


def finished(s, p, outcome):
    h = s.submit("add", _max_attempts=1)
    if outcome == "cancelled":
        assert h.cancel()
        return h
    s.dispatch()
    task = start(s, p.id).task
    ack(s, p.id, task, "done" if outcome == "done" else "error",
        "1" if outcome == "done" else error_json())
    assert h.state == outcome
    return h


@pytest.mark.parametrize("outcome", ["done", "cancelled"])
def test_finished_records_expire_after_keep(kept, outcome):
    s, p = kept
    h = finished(s, p, outcome)

    ttl = s.client.ttl(s.keys.task(h.id))

    assert 0 < ttl <= 60
    audit_ok(s)


def test_failed_records_are_dead_letters_without_ttl(kept):
    s, p = kept
    h = finished(s, p, "failed")

    assert s.client.ttl(s.keys.task(h.id)) == -1
    assert s.client.zscore(s.keys.failed, h.id) is not None
    audit_ok(s)


@pytest.mark.parametrize("state", ["queued", "delayed", "running"])
def test_unfinished_records_have_no_ttl(kept, state):
    s, p = kept
    h = s.submit("add", _delay=30 if state == "delayed" else 0)
    if state == "running":
        s.dispatch()
        start(s, p.id)
    assert h.state == state

    assert s.client.ttl(s.keys.task(h.id)) == -1


def test_a_retried_task_loses_no_record(kept):
    s, p = kept
    h = s.submit("add", _max_attempts=2)
    s.dispatch()
    ack(s, p.id, start(s, p.id).task, "error", error_json())

    assert h.state == "delayed"
    assert s.client.ttl(s.keys.task(h.id)) == -1


def test_default_keep_is_a_day(sched, clock):
    p = sched.processor()
    assert p.register()
    h = sched.submit("add")
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task, "done", "1")

    assert 86400 - 5 <= sched.client.ttl(sched.keys.task(h.id)) <= 86400


def test_a_finished_group_expires_after_keep(kept):
    s, p = kept
    g = s.map("add", [(1,), (2,)])
    s.dispatch()
    first = start(s, p.id, "a").task
    ack(s, p.id, first, "done", "1", slot="a")
    assert s.client.ttl(s.keys.group(g.id)) == -1  # one member still running

    ack(s, p.id, start(s, p.id, "b").task, "done", "2", slot="b")

    assert 0 < s.client.ttl(s.keys.group(g.id)) <= 60
    assert 0 < s.client.ttl(s.keys.group_stream(g.id)) <= 60
    audit_ok(s)


def test_a_group_recorded_before_its_total_was_named_expires_too(kept):
    """A group written by a version that stored its member count as ``n`` (now GROUP.total)
    counts its member list instead when it finishes."""
    s, p = kept
    g = s.map("add", [(1,), (2,)])
    key = s.keys.group(g.id)
    s.client.hdel(key, fields.GROUP.total)
    s.client.hset(key, "n", "2")
    s.dispatch()
    ack(s, p.id, start(s, p.id, "a").task, "done", "1", slot="a")
    assert s.client.ttl(key) == -1  # one member still running

    ack(s, p.id, start(s, p.id, "b").task, "done", "2", slot="b")

    assert 0 < s.client.ttl(key) <= 60
    assert 0 < s.client.ttl(s.keys.group_stream(g.id)) <= 60
    audit_ok(s)


@pytest.mark.parametrize("outcome", ["done", "cancelled"])
def test_counts_and_audit_survive_an_expired_record(kept, outcome):
    s, p = kept
    h = finished(s, p, outcome)
    other = s.submit("add")
    before = s.counts()

    s.client.delete(s.keys.task(h.id))  # what expiry does

    assert s.counts() == before
    assert before[outcome] == 1 and before["submitted"] == 2
    audit_ok(s)
    with pytest.raises(luasched.TaskNotFound):
        h.result(timeout=1)
    with pytest.raises(luasched.TaskNotFound):
        _ = h.state
    assert other.state == "queued"


def test_keep_accepts_a_timedelta(make_sched):
    from datetime import timedelta

    s = make_sched(keep=timedelta(minutes=2))

    assert s.ns.keep_s == 120


def test_group_results_after_the_group_keys_expired(kept):
    s, p = kept
    g = s.map("add", [(1,), (2,)], max_attempts=1)
    s.dispatch()
    ack(s, p.id, start(s, p.id, "a").task, "error", error_json("x"), slot="a")
    ack(s, p.id, start(s, p.id, "b").task, "error", error_json("y"), slot="b")
    s.client.delete(s.keys.group(g.id), s.keys.group_stream(g.id))  # what keep's expiry does

    values = g.results(timeout=1, return_exceptions=True)  # the failed records are still there

    assert [v.message for v in values] == ["x", "y"]
