"""Processor labels and kinds: a processor registers its labels and the names of the tasks it can
run; processors with the same of both are one kind. The kind registry (kinds, kindn, qk:<queue>)
is kept by register, relabel, deregister and reap, and audit recounts it. On the embedded server
and on a real one."""

from __future__ import annotations

import asyncio
import math

import pytest

import luasched
import luasched.aio
from luasched.core import kinds, ops

from .util import audit_ok


def registry(sched):
    """(kinds: kind -> (labels, task names), kindn, {queue: qk}) as stored, decoded."""
    r = sched.client
    defs = {ops.text(k): kinds.labels_and_tasks(ops.text(v)) for k, v in r.hgetall(sched.keys.kinds).items()}
    counts = {ops.text(k): int(v) for k, v in r.hgetall(sched.keys.kind_counts).items()}
    per_queue = {}
    for q in ("default", "gpu", "cpu"):
        got = {ops.text(k): int(v) for k, v in r.hgetall(sched.keys.queue_kinds(q)).items()}
        if got:
            per_queue[q] = got
    return defs, counts, per_queue


@pytest.fixture
def app(sched):
    @sched.task()
    def add(a, b=0):
        return a + b

    @sched.task()
    def render(x):
        return x

    return sched


def test_a_processor_registers_its_labels_and_task_names(app):
    p = app.processor(labels={"gpu": "a100", "vram_gb": 80, "ratio": 0.5}, queues=("default", "gpu"))
    assert p.register()

    info, = app.processors()
    assert info.labels == {"gpu": "a100", "ratio": 0.5, "vram_gb": 80}
    assert isinstance(info.labels["vram_gb"], int)
    assert info.tasks == ("add", "render")
    defs, counts, per_queue = registry(app)
    kind = p._kind()[0]
    assert defs == {kind: ({"gpu": "a100", "ratio": 0.5, "vram_gb": 80}, ("add", "render"))}
    assert counts == {kind: 1}
    assert per_queue == {"default": {kind: 1}, "gpu": {kind: 1}}
    audit_ok(app)


def test_processors_with_the_same_labels_and_names_are_one_kind(app):
    a = app.processor(labels={"gpu": "a100"}, queues=("gpu",))
    b = app.processor(labels={"gpu": "a100"}, queues=("gpu", "default"))
    c = app.processor(queues=("default",))
    for p in (a, b, c):
        assert p.register()

    defs, counts, per_queue = registry(app)
    ka, kc = a._kind()[0], c._kind()[0]
    assert b._kind()[0] == ka != kc
    assert counts == {ka: 2, kc: 1}
    assert per_queue == {"gpu": {ka: 2}, "default": {ka: 1, kc: 1}}
    assert defs[kc] == ({}, ("add", "render"))
    audit_ok(app)


def test_leaving_uncounts_the_processor_and_the_last_one_takes_the_definition(app):
    a = app.processor(labels={"gpu": "a100"})
    b = app.processor(labels={"gpu": "a100"})
    assert a.register() and b.register()
    kind = a._kind()[0]

    a.deregister()
    defs, counts, per_queue = registry(app)
    assert (list(defs), counts, per_queue) == ([kind], {kind: 1}, {"default": {kind: 1}})

    b.deregister()
    assert registry(app) == ({}, {}, {})
    assert app.processor(labels={"gpu": "a100"}).register()  # the kind comes back with a processor
    assert registry(app)[1] == {kind: 1}
    audit_ok(app)


def test_a_reaped_processor_leaves_its_kind(app, clock):
    p = app.processor(labels={"zone": "eu"}, lease=5)
    stays = app.processor(lease=60)
    assert p.register() and stays.register()
    clock.advance(10)

    assert app.reap().processors == [p.id]

    _, counts, per_queue = registry(app)
    assert counts == {stays._kind()[0]: 1} and per_queue == {"default": {stays._kind()[0]: 1}}
    audit_ok(app)


def test_set_labels_moves_a_running_processor_to_its_new_kind(app):
    p = app.processor(labels={"gpu": "a100"}, queues=("gpu",))
    other = app.processor(labels={"gpu": "a100"}, queues=("gpu",))
    assert p.register() and other.register()
    old = p._kind()[0]

    assert p.set_labels({"gpu": "h100", "vram_gb": 80}) is True
    assert p.set_labels({"gpu": "h100", "vram_gb": 80}) is True  # again: nothing changes

    new = p._kind()[0]
    assert p.labels == {"gpu": "h100", "vram_gb": 80}
    defs, counts, per_queue = registry(app)
    assert counts == {old: 1, new: 1} and per_queue == {"gpu": {old: 1, new: 1}}
    assert defs[new][0] == {"gpu": "h100", "vram_gb": 80}
    assert {i.id: i.labels for i in app.processors()}[p.id] == {"gpu": "h100", "vram_gb": 80}
    assert app.client.llen(app.keys.wake) == 1  # a scheduler loop looks again
    audit_ok(app)


def test_set_labels_before_registering_is_kept_for_the_registration(app):
    p = app.processor(labels={"gpu": "a100"})

    assert p.set_labels({"gpu": "l4"}) is False  # not registered: nothing written
    assert registry(app) == ({}, {}, {})
    assert p.register()

    assert app.processors()[0].labels == {"gpu": "l4"}
    audit_ok(app)


@pytest.mark.parametrize(("labels", "error", "says"), [
    ({"gpu": True}, TypeError, "must be a str, an int or a float, not bool"),
    ({"gpu": None}, TypeError, "not NoneType"),
    ({"gpu": ["a100"]}, TypeError, "not list"),
    ({"vram": math.nan}, ValueError, "finite"),
    ({"vram": math.inf}, ValueError, "finite"),
    ({"": "x"}, ValueError, "label name ''"),
    ({"1gpu": "x"}, ValueError, "label name '1gpu'"),
    ({"gpu>": "x"}, ValueError, "label name 'gpu>'"),
    ({"gpu": "a\n100"}, ValueError, "printable"),
    ({"gpu": "x" * 257}, ValueError, "at most 256"),
    ({f"l{i}": i for i in range(65)}, ValueError, "at most 64 labels"),
    ([("gpu", "a100")], TypeError, "must be a mapping"),
])
def test_bad_labels_are_refused_at_the_call_and_write_nothing(app, labels, error, says):
    with pytest.raises(error, match=says):
        app.processor(labels=labels)
    p = app.processor(labels={"gpu": "a100"})
    assert p.register()
    before = registry(app)
    with pytest.raises(error, match=says):
        p.set_labels(labels)
    assert registry(app) == before
    assert p.labels == {"gpu": "a100"}


@pytest.mark.parametrize(("text", "parsed"), [
    ("gpu=a100", ("gpu", "a100")),
    ("vram_gb=80", ("vram_gb", 80)),
    ("ratio=0.5", ("ratio", 0.5)),
    ("big=1e3", ("big", 1000.0)),
    ("odd=nan", ("odd", "nan")),  # not a finite number: a string
    ("zone = eu-west ", ("zone", "eu-west")),
    ("empty=", ("empty", "")),
])
def test_a_command_line_label_reads_a_number_as_a_number(text, parsed):
    assert kinds.parse_label(text) == parsed
    assert type(kinds.parse_label(text)[1]) is type(parsed[1])


@pytest.mark.parametrize("text", ["gpu", "=a100", "1x=2"])
def test_a_command_line_label_without_a_name_is_refused(text):
    with pytest.raises(ValueError):
        kinds.parse_label(text)


def test_the_kind_id_is_the_same_in_every_process_whatever_the_order():
    a = kinds.kind_of(["render", "add"], {"b": 1, "a": "x"})
    b = kinds.kind_of(["add", "render", "add"], {"a": "x", "b": 1})
    assert a == b
    assert kinds.kind_of(["add"], {"b": 1, "a": "x"}) != a  # names count
    assert kinds.kind_of(["add", "render"], {"b": "1", "a": "x"}) != a  # 1 and "1" differ


def test_the_asyncio_processor_sets_labels_too(make_async_client, namespace):
    async def main():
        client = make_async_client()
        sched = luasched.aio.Scheduler(client, namespace=namespace)

        @sched.task()
        async def add(a):
            return a

        p = sched.processor(labels={"gpu": "a100"})
        assert await p.register()
        assert await p.set_labels({"gpu": "h100"})
        infos = await sched.processors()
        await p.deregister()
        await client.aclose()
        return infos

    infos = asyncio.run(main())
    assert [(i.labels, i.tasks) for i in infos] == [({"gpu": "h100"}, ("add",))]
