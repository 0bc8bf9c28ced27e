"""submit.lua through Scheduler.submit / submit_many: records, places, replay safety, delay, options."""

from __future__ import annotations

import json

import pytest

import luasched
from luasched.core import ops
from luasched.core.fields import TASK

from .util import audit_ok, delayed_due_ms, queue_ids, raw_record, record


def test_submit_one_creates_a_queued_record(sched, clock):
    h = sched.submit("add", 1, 2)

    assert h.state == "queued"
    assert queue_ids(sched) == [h.id]
    rec = record(sched, h.id)
    assert rec[TASK.name] == "add"
    assert rec[TASK.queue] == "default"
    assert json.loads(rec[TASK.args]) == [1, 2]
    assert rec[TASK.attempts] == "0"
    assert rec[TASK.created_ms] == str(int(clock() * 1000))
    assert sched.counts()["submitted"] == 1
    audit_ok(sched)


def test_submit_keyword_arguments_are_kept(sched):
    h = sched.submit("greet", "ann", punctuation="!")

    assert json.loads(record(sched, h.id)[TASK.args]) == {"args": ["ann"], "kwargs": {"punctuation": "!"}}
    audit_ok(sched)


def test_submit_many_with_keyword_arguments(sched):
    a, b = sched.submit_many("greet", [luasched.Args("ann", end="!"), ["bob"]])

    assert json.loads(record(sched, a.id)[TASK.args]) == {"args": ["ann"], "kwargs": {"end": "!"}}
    assert json.loads(record(sched, b.id)[TASK.args]) == ["bob"]
    audit_ok(sched)


def test_submit_many_of_nothing_writes_nothing(sched):
    assert sched.submit_many("add", []) == []
    assert sched.counts()["submitted"] == 0


def test_submit_many_keeps_order_in_the_queue(sched):
    handles = sched.submit_many("add", [(i, i) for i in range(5)])

    assert queue_ids(sched) == [h.id for h in handles]
    assert sched.counts()["submitted"] == 5
    audit_ok(sched)


@pytest.fixture
def spy(sched, monkeypatch):
    """Counts script calls sent one by one and pipelines opened on the scheduler's client."""
    sent = {"call": 0, "pipeline": 0, "pipelined_calls": 0}
    real_call, real_pipeline = sched.call, sched.client.pipeline

    def call(c):
        sent["call"] += 1
        return real_call(c)

    def pipeline(*args, **kwargs):
        sent["pipeline"] += 1
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute_command

        def execute_command(*a, **kw):
            if a[0] in ("EVALSHA", "FCALL"):  # a script, or its function (luasched.scripts)
                sent["pipelined_calls"] += 1
            return real_execute(*a, **kw)

        pipe.execute_command = execute_command
        return pipe

    sched.submit("warm-up")  # loads submit.lua on this server, so no NOSCRIPT fallback below
    monkeypatch.setattr(sched, "call", call)
    monkeypatch.setattr(sched.client, "pipeline", pipeline)
    return sent


def test_submit_many_small_batch_is_one_script_call(sched, spy):
    sched.submit_many("add", [(i,) for i in range(50)])

    assert spy == {"call": 1, "pipeline": 0, "pipelined_calls": 0}
    assert sched.counts()["submitted"] == 51
    audit_ok(sched)


def test_submit_many_2500_is_three_chunks_in_one_pipeline(sched, spy):
    handles = sched.submit_many("add", [(i,) for i in range(2500)])

    assert spy == {"call": 0, "pipeline": 1, "pipelined_calls": 3}
    assert len({h.id for h in handles}) == 2500
    assert sched.counts()["submitted"] == 2501
    assert queue_ids(sched)[1:] == [h.id for h in handles]
    audit_ok(sched)


def test_existing_id_creates_nothing_and_the_handle_points_to_it(sched):
    first = sched.submit("add", 1, 2, _id="order-17")
    again = sched.submit("other", 9, _id="order-17", _queue="elsewhere")

    assert again.id == first.id == "order-17"
    assert sched.counts()["submitted"] == 1
    assert queue_ids(sched) == ["order-17"]
    assert queue_ids(sched, "elsewhere") == []
    rec = record(sched, "order-17")
    assert (rec[TASK.name], json.loads(rec[TASK.args])) == ("add", [1, 2])
    audit_ok(sched)


def test_replayed_submit_call_creates_nothing_twice(sched):
    new = sched.new_task("add", (1, 2), {}, task_id="replayed")
    calls = ops.submit(sched.ns, sched.now_ms(), [new])

    first = ops.decode_submit(sched.call_many(calls))
    second = ops.decode_submit(sched.call_many(calls))

    assert (first.created, first.existing) == (1, [])
    assert (second.created, second.existing) == (0, ["replayed"])
    assert queue_ids(sched) == ["replayed"]
    audit_ok(sched)


def test_submit_many_with_some_existing_ids_creates_only_the_new(sched):
    sched.submit("add", 0, _id="b")
    sched.submit_many("add", [(1,), (2,), (3,)], ids=["a", "b", "c"])

    assert queue_ids(sched) == ["b", "a", "c"]
    assert sched.counts()["submitted"] == 3
    audit_ok(sched)


def test_delayed_task_waits_until_due_then_dispatch_promotes_it(sched, clock):
    h = sched.submit("add", 1, _delay=30)

    assert h.state == "delayed"
    assert delayed_due_ms(sched, h.id) == int(clock() * 1000) + 30_000
    assert queue_ids(sched) == []
    audit_ok(sched)

    clock.advance(29.9)
    sched.dispatch()
    assert h.state == "delayed"
    audit_ok(sched)

    clock.advance(0.2)
    sched.dispatch()  # no processor: promoted to the queue, not assigned
    assert h.state == "queued"
    assert queue_ids(sched) == [h.id]
    assert delayed_due_ms(sched, h.id) is None
    audit_ok(sched)


def test_due_delayed_task_goes_to_an_idle_processor_in_the_same_dispatch(sched, clock):
    h = sched.submit("add", 1, _delay=5)
    p = sched.processor()
    assert p.register()

    assert sched.dispatch() == []
    clock.advance(5)
    assert sched.dispatch() == [(h.id, p.id)]
    assert h.state == "assigned"
    audit_ok(sched)


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({"_queue": "emails"}, {TASK.queue: "emails"}),
        ({"_max_attempts": 7}, {TASK.max_attempts: "7"}),
        ({"_timeout": 2.5}, {TASK.timeout_ms: "2500"}),
        ({"_retry_backoff": 0.25}, {TASK.backoff_ms: "250"}),
        ({"_queue": "x", "_max_attempts": 1, "_timeout": 60, "_retry_backoff": 0},
         {TASK.queue: "x", TASK.max_attempts: "1", TASK.timeout_ms: "60000", TASK.backoff_ms: "0"}),
    ],
)
def test_options_land_in_the_record(sched, options, fields):
    h = sched.submit("add", 1, **options)

    rec = record(sched, h.id)
    assert {k: rec.get(k) for k in fields} == fields
    assert queue_ids(sched, fields.get(TASK.queue, "default")) == [h.id]
    audit_ok(sched)


def test_defaults_in_the_record(sched):
    h = sched.submit("add")

    rec = record(sched, h.id)
    assert (rec[TASK.queue], rec[TASK.max_attempts], rec[TASK.backoff_ms]) == ("default", "3", "1000")
    assert TASK.timeout_ms not in rec  # no timeout


def test_registered_task_defaults_apply_and_options_override_them(sched):
    @sched.task(queue="slow", max_attempts=5, timeout=9, retry_backoff=2)
    def crunch(x):
        return x

    a = sched.submit(crunch, 1)
    b = sched.submit(crunch, 2, _max_attempts=1)

    ra, rb = record(sched, a.id), record(sched, b.id)
    assert (ra[TASK.name], ra[TASK.queue], ra[TASK.max_attempts], ra[TASK.timeout_ms], ra[TASK.backoff_ms]) == (
        "crunch", "slow", "5", "9000", "2000")
    assert (rb[TASK.queue], rb[TASK.max_attempts]) == ("slow", "1")
    audit_ok(sched)


def test_submit_by_name_of_an_unregistered_task_is_allowed(sched):
    h = sched.submit("defined.elsewhere", {"k": [1, None]})

    assert record(sched, h.id)[TASK.name] == "defined.elsewhere"
    assert h.state == "queued"
    audit_ok(sched)


def test_dispatch_on_submit_assigns_at_once(make_sched, clock):
    s = make_sched(clock=clock, dispatch_on_submit=True)
    p = s.processor(capacity=2)
    assert p.register()

    h = s.submit("add", 1)

    assert h.state == "assigned"
    assert s.client.lrange(s.keys.inbox(p.id), 0, -1) == [h.id.encode()]
    audit_ok(s)


def test_dispatch_on_submit_keeps_fifo_older_queued_tasks_go_first(make_sched, clock):
    plain = make_sched(clock=clock)
    eager = make_sched(clock=clock, dispatch_on_submit=True)
    old = plain.submit_many("add", [(1,), (2,)])  # queued while no processor is there
    p = eager.processor(capacity=2)
    assert p.register()

    new = eager.submit("add", 3)

    # one task was submitted, so one is assigned: the oldest, not the new one
    assert [h.state for h in old] == ["assigned", "queued"]
    assert new.state == "queued"
    assert queue_ids(eager) == [old[1].id, new.id]
    audit_ok(eager)


def test_dispatch_on_submit_places_a_batch_until_the_processors_are_full_then_queues_in_order(make_sched, clock):
    s = make_sched(clock=clock, dispatch_on_submit=True)
    p = s.processor(capacity=2)
    assert p.register()

    hs = s.submit_many("add", [(1,), (2,), (3,), (4,)])

    # the first two go straight to the processor (its record says so), the rest wait in order
    assert [h.state for h in hs] == ["assigned", "assigned", "queued", "queued"]
    assert [s.client.hget(s.keys.task(h.id), "p") for h in hs[:2]] == [p.id.encode()] * 2
    assert s.client.lrange(s.keys.inbox(p.id), 0, -1) == [h.id.encode() for h in hs[:2]]
    assert queue_ids(s) == [hs[2].id, hs[3].id]
    assert s.counts()["assigned"] == 2
    audit_ok(s)


def test_dispatch_on_submit_puts_a_plain_task_behind_a_prioritised_one_of_the_same_batch(make_sched, clock):
    s = make_sched(clock=clock, dispatch_on_submit=True)
    p = s.processor(capacity=1)
    assert p.register()
    s.pause(queue="default")
    first = s.submit("add", 1, _priority=2)
    s.resume(queue="default")

    later = s.submit("add", 2)

    # the queue held a task: the new one is not placed ahead of it
    assert (first.state, later.state) == ("assigned", "queued")
    audit_ok(s)


def test_dispatch_on_submit_leaves_delayed_tasks_delayed(make_sched, clock):
    s = make_sched(clock=clock, dispatch_on_submit=True)
    assert s.processor().register()

    h = s.submit("add", _delay=10)

    assert h.state == "delayed"
    audit_ok(s)


def test_without_a_clock_the_servers_time_is_used(make_sched):
    import time

    s = make_sched()
    before = int(time.time() * 1000)
    h = s.submit("add", _delay=60)

    created = int(record(s, h.id)[TASK.created_ms])
    assert abs(created - before) < 5000
    assert delayed_due_ms(s, h.id) == created + 60_000
    audit_ok(s)


def test_a_queued_record_leaves_out_the_fields_that_hold_their_defaults(sched):
    """Every queued task has a record: one without default-valued fields is a smaller allocation."""
    from .util import raw_record

    plain = raw_record(sched, sched.submit("add", 1).id)
    assert set(plain) == {TASK.name, TASK.args, TASK.created_ms, TASK.state}
    custom = raw_record(sched, sched.submit("add", _queue="slow", _max_attempts=4, _retry_backoff=2).id)
    assert (custom[TASK.queue], custom[TASK.max_attempts], custom[TASK.backoff_ms]) == ("slow", "4", "2000")


def test_submit_many_gives_every_task_the_options_and_its_own_id(sched, clock):
    # the options are checked once per batch; each task still gets all of them and a fresh id
    handles = sched.submit_many("add", [(), (1,), [1, 2]], queue="other", max_attempts=5, timeout=2,
                                retry_backoff=0.5, delay=3)

    assert len({h.id for h in handles}) == 3
    due = int(clock() * 1000) + 3000
    for h, args in zip(handles, ["[]", "[1]", "[1,2]"], strict=True):
        r = raw_record(sched, h.id)
        fields = (TASK.args, TASK.queue, TASK.max_attempts, TASK.timeout_ms, TASK.backoff_ms, TASK.state)
        assert tuple(r[f] for f in fields) == (args, "other", "5", "2000", "500", "delayed")
        assert int(sched.client.zscore(sched.keys.delayed, h.id)) == due
    audit_ok(sched)
