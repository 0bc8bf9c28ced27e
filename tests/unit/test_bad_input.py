"""Bad input gets a clear exception at the call that caused it, and nothing is written."""

from __future__ import annotations

import json

import pytest

import luasched
from luasched.core.fields import TASK
from tests.scripts.util import audit_ok, record

NOT_JSON = [
    pytest.param({1, 2}, id="set"),
    pytest.param(object(), id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(b"bytes", id="bytes"),
]


@pytest.mark.parametrize("value", NOT_JSON)
def test_submit_of_non_json_arguments(sched, unchanged, value):
    with pytest.raises(luasched.SerializationError, match="not JSON") as bad:
        sched.submit("add", value)
    assert "add" in str(bad.value)
    with pytest.raises(luasched.SerializationError):
        sched.submit("add", 1, key=value)


@pytest.mark.parametrize("value", NOT_JSON)
def test_one_bad_item_writes_none_of_the_batch(sched, unchanged, value):
    with pytest.raises(luasched.SerializationError):
        sched.submit_many("add", [(1,), (2,), (value,), (4,)])
    with pytest.raises(luasched.SerializationError):
        sched.map("add", [(i,) for i in range(1500)] + [(value,)])


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_arguments_nested_too_deep_are_a_serialization_error(sched, unchanged):
    deep = _nested(100_000)
    with pytest.raises(luasched.SerializationError, match="nested too deep"):
        sched.submit("add", deep)
    with pytest.raises(luasched.SerializationError, match="nested too deep"):
        sched.submit_many("add", [(1,), (deep,)])


def test_serialization_error_is_also_a_type_error(sched, unchanged):
    with pytest.raises(TypeError):
        sched.submit("add", {1})


def test_unregistered_function(sched, unchanged):
    def not_a_task(x):
        return x

    with pytest.raises(luasched.UnknownTask, match="not_a_task"):
        sched.submit(not_a_task, 1)
    with pytest.raises(luasched.UnknownTask):
        sched.submit_many(not_a_task, [(1,)])


def test_function_registered_on_another_scheduler(sched, make_sched, unchanged):
    other = make_sched()

    @other.task
    def elsewhere():
        return 1

    with pytest.raises(luasched.UnknownTask, match="elsewhere"):
        sched.submit(elsewhere)


def _processor(**kwargs):
    return lambda s: s.processor(**kwargs)


# (what is called, exception, a word the message must hold: the argument's name)
BAD_CALLS = [
    ("submit task=123", lambda s: s.submit(123), TypeError, "task"),
    ("submit task=''", lambda s: s.submit(""), ValueError, "task name"),
    ("submit unknown option", lambda s: s.submit("add", _prio=1), TypeError, "_prio"),
    ("submit _queue bad", lambda s: s.submit("add", _queue="a b"), ValueError, "queue"),
    ("submit _queue comma", lambda s: s.submit("add", _queue="a,b"), ValueError, "queue"),
    ("submit _queue empty", lambda s: s.submit("add", _queue=""), ValueError, "queue"),
    ("submit _queue int", lambda s: s.submit("add", _queue=5), TypeError, "queue"),
    ("submit _id int", lambda s: s.submit("add", _id=5), TypeError, "id"),
    ("submit _id space", lambda s: s.submit("add", _id="a b"), ValueError, "id"),
    ("submit _id empty", lambda s: s.submit("add", _id=""), ValueError, "id"),
    ("submit _id braces", lambda s: s.submit("add", _id="x}{"), ValueError, "id"),
    ("submit _id long", lambda s: s.submit("add", _id="x" * 129), ValueError, "id"),
    ("submit _delay str", lambda s: s.submit("add", _delay="5"), TypeError, "delay"),
    ("submit _delay negative", lambda s: s.submit("add", _delay=-1), ValueError, "delay"),
    ("submit _timeout 0", lambda s: s.submit("add", _timeout=0), ValueError, "timeout"),
    ("submit _timeout nan", lambda s: s.submit("add", _timeout=float("nan")), ValueError, "timeout"),
    ("submit _max_attempts 0", lambda s: s.submit("add", _max_attempts=0), ValueError, "max_attempts"),
    ("submit _max_attempts 1.5", lambda s: s.submit("add", _max_attempts=1.5), TypeError, "max_attempts"),
    ("submit _max_attempts True", lambda s: s.submit("add", _max_attempts=True), TypeError, "max_attempts"),
    ("submit _retry_backoff -1", lambda s: s.submit("add", _retry_backoff=-1), ValueError, "retry_backoff"),
    ("submit _expires 0", lambda s: s.submit("add", _expires=0), ValueError, "expires"),
    ("submit _expires -1", lambda s: s.submit("add", _expires=-1), ValueError, "expires"),
    ("submit _expires inf", lambda s: s.submit("add", _expires=float("inf")), ValueError, "expires"),
    ("submit _expires str", lambda s: s.submit("add", _expires="5"), TypeError, "expires"),
    ("submit _expires True", lambda s: s.submit("add", _expires=True), TypeError, "expires"),
    ("submit_many expires 0", lambda s: s.submit_many("add", [(1,)], expires=0), ValueError, "expires"),
    ("map expires -2", lambda s: s.map("add", [(1,)], expires=-2), ValueError, "expires"),
    ("submit _requires list", lambda s: s.submit("add", _requires=["gpu"]), TypeError, "requires"),
    ("submit _requires str", lambda s: s.submit("add", _requires="gpu=a100"), TypeError, "requires"),
    ("submit _requires False", lambda s: s.submit("add", _requires={"gpu": False}), TypeError, "'gpu'"),
    ("submit _requires None value", lambda s: s.submit("add", _requires={"gpu": None}), TypeError, "'gpu'"),
    ("submit _requires bad op", lambda s: s.submit("add", _requires={"vram_gb": ("=>", 40)}), ValueError,
     "'vram_gb'"),
    ("submit _requires >= str", lambda s: s.submit("add", _requires={"gpu": (">=", "a100")}), ValueError,
     "compares numbers"),
    ("submit _requires bad label", lambda s: s.submit("add", _requires={"9gpu": True}), ValueError,
     "label name"),
    ("submit _requires nan", lambda s: s.submit("add", _requires={"x": ("<", float("nan"))}), ValueError,
     "finite"),
    ("submit_many requires", lambda s: s.submit_many("add", [(1,)], requires={"gpu": ("~", 1)}), ValueError,
     "'gpu'"),
    ("map requires", lambda s: s.map("add", [(1,)], requires={"": "a"}), ValueError, "label name"),
    ("task requires", lambda s: s.task(requires={"gpu": [1]}), TypeError, "'gpu'"),
    ("task requires too many", lambda s: s.task(requires={f"l{i}": True for i in range(65)}), ValueError,
     "at most 64"),
    ("submit_many items str", lambda s: s.submit_many("add", "abc"), TypeError, "items"),
    ("submit_many items int", lambda s: s.submit_many("add", 5), TypeError, "items"),
    ("submit_many item int", lambda s: s.submit_many("add", [(1,), 2]), TypeError, "item 1"),
    ("submit_many item dict", lambda s: s.submit_many("add", [{"a": 1}]), TypeError, "item 0"),
    ("submit_many ids short", lambda s: s.submit_many("add", [(1,), (2,)], ids=["a"]), ValueError, "ids"),
    ("submit_many ids repeat", lambda s: s.submit_many("add", [(1,), (2,)], ids=["a", "a"]), ValueError,
     "ids"),
    ("submit_many bad id", lambda s: s.submit_many("add", [(1,)], ids=["a b"]), ValueError, "id"),
    ("submit_many queue", lambda s: s.submit_many("add", [(1,)], queue="a b"), ValueError, "queue"),
    ("submit _queue newline", lambda s: s.submit("add", _queue="q\n"), ValueError, "queue"),
    ("submit_many id newline", lambda s: s.submit_many("add", [(1,)], ids=["a\n"]), ValueError, "id"),
    ("submit name surrogate", lambda s: s.submit("add\ud800"), ValueError, "UTF-8"),
    ("task name surrogate", lambda s: s.task(name="x\udfff")(lambda: None), ValueError, "UTF-8"),
    ("map max_attempts", lambda s: s.map("add", [(1,)], max_attempts=0), ValueError, "max_attempts"),
    ("dispatch limit=0", lambda s: s.dispatch(limit=0), ValueError, "limit"),
    ("dispatch limit=-1", lambda s: s.dispatch(limit=-1), ValueError, "limit"),
    ("dispatch limit huge", lambda s: s.dispatch(limit=10**6), ValueError, "limit"),
    ("dispatch limit='5'", lambda s: s.dispatch(limit="5"), TypeError, "limit"),
    ("dispatch limit=2.0", lambda s: s.dispatch(limit=2.0), TypeError, "limit"),
    ("dispatch limit=True", lambda s: s.dispatch(limit=True), TypeError, "limit"),
    ("reap limit=0", lambda s: s.reap(limit=0), ValueError, "limit"),
    ("reap limit='5'", lambda s: s.reap(limit="5"), TypeError, "limit"),
    ("processor capacity=0", _processor(capacity=0), ValueError, "capacity"),
    ("processor capacity=5000", _processor(capacity=5000), ValueError, "capacity"),
    ("processor capacity='2'", _processor(capacity="2"), TypeError, "capacity"),
    ("processor queues='default'", _processor(queues="default"), TypeError, "queues"),
    ("processor queues=()", _processor(queues=()), ValueError, "queues"),
    ("processor queues=None", _processor(queues=None), TypeError, "queues"),
    ("processor queue name", _processor(queues=("ok", "a,b")), ValueError, "queue name"),
    ("processor queue int", _processor(queues=(1,)), TypeError, "queue name"),
    ("processor lease=-1", _processor(lease=-1), ValueError, "lease"),
    ("processor lease=0", _processor(lease=0), ValueError, "lease"),
    ("processor lease='5'", _processor(lease="5"), TypeError, "lease"),
    ("processor name=5", _processor(name=5), TypeError, "name"),
    ("processor take_next='yes'", _processor(take_next="yes"), TypeError, "take_next"),
    ("handle bad id", lambda s: s.handle("a b"), ValueError, "id"),
    ("handle id newline", lambda s: s.handle("abc\n"), ValueError, "id"),
    ("handle int", lambda s: s.handle(5), TypeError, "id"),
    ("result timeout=-1", lambda s: s.handle("x").result(timeout=-1), ValueError, "timeout"),
    ("result timeout='1'", lambda s: s.handle("x").result(timeout="1"), TypeError, "timeout"),
    ("task max_attempts", lambda s: s.task(max_attempts=0), ValueError, "max_attempts"),
    ("task queue", lambda s: s.task(queue="a b"), ValueError, "queue"),
    ("task timeout", lambda s: s.task(timeout=-1), ValueError, "timeout"),
    ("task not callable", lambda s: s.task(5), TypeError, "function"),
]


@pytest.mark.parametrize(("call", "exc", "word"), [pytest.param(c, e, w, id=i) for i, c, e, w in BAD_CALLS])
def test_bad_arguments(sched, unchanged, call, exc, word):
    with pytest.raises(exc) as bad:
        call(sched)
    assert word in str(bad.value), f"the message does not name {word!r}: {bad.value}"


def test_bad_processor_writes_no_processor(sched, unchanged):
    with pytest.raises(ValueError):
        sched.processor(capacity=0)
    assert sched.counts()["processors"] == 0


def test_a_name_registered_twice_for_different_functions(sched):
    @sched.task(name="same")
    def one():
        return 1

    def two():
        return 2

    with pytest.raises(ValueError, match="same"):
        sched.task(name="same")(two)


# (keyword arguments to Scheduler, exception, a word the message must hold)
BAD_SCHEDULERS = [
    ("namespace braces", {"namespace": "a{b}"}, ValueError, "namespace"),
    ("namespace empty", {"namespace": ""}, ValueError, "namespace"),
    ("namespace space", {"namespace": "a b"}, ValueError, "namespace"),
    ("namespace int", {"namespace": 5}, TypeError, "namespace"),
    ("namespace newline", {"namespace": "ns\n"}, ValueError, "namespace"),
    ("clock str", {"clock": "x"}, TypeError, "clock"),
    ("keep 0", {"keep": 0}, ValueError, "keep"),
    ("keep negative", {"keep": -5}, ValueError, "keep"),
    ("keep str", {"keep": "1d"}, TypeError, "keep"),
    ("dispatch_on_submit str", {"dispatch_on_submit": "yes"}, TypeError, "dispatch_on_submit"),
]


@pytest.mark.parametrize(("kwargs", "exc", "word"),
                         [pytest.param(k, e, w, id=i) for i, k, e, w in BAD_SCHEDULERS])
def test_bad_scheduler_arguments(make_client, kwargs, exc, word):
    with pytest.raises(exc) as bad:
        luasched.Scheduler(make_client(), **kwargs)
    assert word in str(bad.value)


@pytest.mark.parametrize(("target", "exc"), [
    (42, TypeError),
    (object(), TypeError),
    ("http://localhost:1/0", ValueError),
    ("localhost:1", ValueError),
    ("memcached://x", ValueError),
])
def test_bad_redis_argument(target, exc):
    with pytest.raises(exc) as bad:
        luasched.Scheduler(redis=target)
    assert "redis" in str(bad.value)


def test_bad_url_message_hides_the_password():
    with pytest.raises(ValueError) as bad:
        luasched.Scheduler(redis="http://user:secret@localhost:1/0")
    assert "secret" not in str(bad.value)


def test_a_task_no_processor_has_the_function_for_is_never_placed_and_the_others_pass_it(sched):
    @sched.task
    def known(x):
        return x * 2

    p = sched.processor(capacity=2)
    assert p.register()
    stray = sched.submit("nobody.registered.this", 1, _max_attempts=1)
    good = sched.submit(known, 21)

    assert sched.dispatch() == [(good.id, p.id)]  # the stray stays queued, using no attempt
    assert p.process_available() == 1
    assert good.result(timeout=1) == 42
    assert stray.state == "queued" and sched.task_record(stray.id).attempts == 0
    audit_ok(sched)


def test_processor_fails_a_task_it_has_no_function_for_and_keeps_running(sched):
    """The guard behind routing: a processor that said it runs a task (its kind's names) but has
    no function for it fails the attempt with UnknownTask and carries on."""
    @sched.task
    def known(x):
        return x * 2

    p = sched.processor(capacity=2)
    assert p.register()
    sched.client.sadd(sched.keys.kind_names(p.kind), "nobody.registered.this")  # it claims it
    stray = sched.submit("nobody.registered.this", 1, _max_attempts=1)
    good = sched.submit(known, 21)
    assert len(sched.dispatch()) == 2

    assert p.process_available() == 2

    with pytest.raises(luasched.TaskFailed) as failed:
        stray.result(timeout=1)
    assert failed.value.error_type == "UnknownTask"
    assert "nobody.registered.this" in failed.value.message
    assert "known" in failed.value.message  # it says what is registered
    assert good.result(timeout=1) == 42
    p.deregister()  # its kind goes, with the claim planted in it
    audit_ok(sched)


def test_threaded_processor_survives_an_unknown_task(sched):
    @sched.task
    def known(x):
        return x

    p = sched.processor()
    sched.client.sadd(sched.keys.kind_names(p.kind), "missing")  # a kind that claims it
    stray = sched.submit("missing", _max_attempts=1)
    good = sched.submit(known, 7)
    p.start()
    try:
        sched.dispatch()
        with pytest.raises(luasched.TaskFailed):
            stray.result(timeout=10)
        sched.dispatch()
        assert good.result(timeout=10) == 7
    finally:
        assert p.stop(timeout=10)
    audit_ok(sched)


def test_a_result_that_is_not_json_fails_the_task(sched):
    @sched.task(max_attempts=1)
    def makes_a_set():
        return {1, 2}

    p = sched.processor()
    assert p.register()
    h = sched.submit(makes_a_set)
    sched.dispatch()
    p.process_available()

    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)
    assert failed.value.error_type == "SerializationError"
    assert "not JSON" in failed.value.message and "makes_a_set" in failed.value.message
    assert json.loads(record(sched, h.id)[TASK.error])["type"] == "SerializationError"
    audit_ok(sched)


def _signatures(sched):
    @sched.task
    def one_arg(x):
        return x

    @sched.task
    def flexible(a, b=2, *rest, key, **more):
        return a

    return one_arg, flexible


@pytest.mark.parametrize("args, kwargs, says", [
    ((), {}, "missing a required argument: 'x'"),
    ((1, 2), {}, "too many positional arguments"),
    ((), {"y": 1}, "missing a required argument: 'x'"),
    ((1,), {"x": 1}, "multiple values for argument 'x'"),
])
def test_arguments_the_function_cannot_take_are_refused_at_submit(sched, unchanged, args, kwargs, says):
    """A registered function's signature is checked when the task is submitted, by submit,
    submit_many and map alike: no task is written that would fail every attempt with TypeError."""
    one_arg, _ = _signatures(sched)
    with pytest.raises(TypeError, match=f"^task 'one_arg' takes one_arg\\(x\\): {says}$"):
        sched.submit(one_arg, *args, **kwargs)
    with pytest.raises(TypeError, match=says):
        sched.submit("one_arg", *args, **kwargs)  # by name, registered here: checked too
    with pytest.raises(TypeError, match=says):
        sched.submit_many(one_arg, [(1,), luasched.Args(*args, **kwargs)])  # none of the batch
    with pytest.raises(TypeError, match=says):
        sched.map(one_arg, [(1,), luasched.Args(*args, **kwargs)])


def test_what_the_function_can_take_is_accepted(sched):
    one_arg, flexible = _signatures(sched)
    assert sched.submit(one_arg, 1).state == "queued"
    assert sched.submit(one_arg, x=1).state == "queued"
    assert sched.submit(flexible, 1, key=3).state == "queued"
    assert sched.submit(flexible, 1, 2, 3, 4, key=3, extra=5).state == "queued"
    with pytest.raises(TypeError, match="missing a required argument: 'key'"):
        sched.submit(flexible, 1, 2, 3)  # counting alone would accept it: key is keyword-only
    assert sched.counts()["submitted"] == 4


def test_arguments_the_task_does_not_accept_fail_the_task(sched, make_sched, clock):
    """A producer that has only the task's name (not its function) cannot check: the processor's
    run fails the attempt with the TypeError, a clear error rather than a lost task."""

    @sched.task(max_attempts=1)
    def one_arg(x):
        return x

    producer = make_sched(clock=clock)  # the same namespace, no task registered
    p = sched.processor(scheduler=False)
    assert p.register()
    h = producer.submit("one_arg", 1, 2, _max_attempts=1)
    sched.dispatch()
    p.process_available()

    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)
    assert failed.value.error_type == "TypeError"
    audit_ok(sched)
