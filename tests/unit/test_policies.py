"""The policies' pure part: a task's placement options as TaskOptions keeps them, the calls of
limit/remove_limit/set_weight/set_queue/limits, their decoders, what the pauses HASH fields read
as, and the unknown-limiter refusal turned into UnknownLimiter at the one boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis.exceptions

import luasched
from luasched.core import ops, pauses, policies
from luasched.core.keys import Keys
from luasched.core.options import TaskOptions
from luasched.core.replies import LimitInfo, Paused
from luasched.routing import translate

NS = ops.Namespace(Keys("unit"), keep_s=77)
P = NS.prefix


def test_task_options_keep_placement_checked_and_normalised():
    o = TaskOptions(priority=0, key="tenant ä", limits=["b", "a", "b"])  # type: ignore[arg-type]
    assert (o.priority, o.key, o.limits) == (0, "tenant ä", ("b", "a"))
    assert TaskOptions().priority == 5 and TaskOptions().key is None and TaskOptions().limits == ()
    kept = o.replace(priority=None, key=None, limits=None)
    assert kept == o, "None means: keep the task's own"
    assert o.replace(limits=()).limits == ()
    with pytest.raises(TypeError, match="one limiter: limits=\\('name',\\)"):
        TaskOptions(limits="user:1")  # type: ignore[arg-type]


def test_task_defaults_and_submit_options_reach_the_wire():
    sched = luasched.Scheduler(namespace="unit-policies")
    try:
        @sched.task(priority=2, key="k", limits=("a",))
        def f() -> None: ...

        new = sched.submission(f, (), {})
        assert (new.options.priority, new.options.key, new.options.limits) == (2, "k", ("a",))
        new = sched.submission(f, (), {"_priority": 9, "_key": "other", "_limits": ("b", "c")})
        assert (new.options.priority, new.options.key, new.options.limits) == (9, "other", ("b", "c"))
        (call,) = ops.submit(NS, 1, [new])
        assert call.args[-4:-2] == ("9\nb,c\n\nother", "0")
        batch = sched.batch(f, [(), ()], None, priority=1, key="k2", limits=[])
        assert {(n.options.priority, n.options.key, n.options.limits) for n in batch} == {(1, "k2", ())}
    finally:
        sched.close()


GPU = '[["gpu","==","a100"],["vram_gb",">=",40]]'


def test_requires_is_a_task_default_a_submit_overrides():
    """The decorator's requires is the default; _requires / requires= replace it; {} clears it,
    None keeps it. It is checked and encoded once, where the user's mapping comes in."""
    sched = luasched.Scheduler(namespace="unit-policies")
    try:
        @sched.task(requires={"vram_gb": (">=", 40), "gpu": "a100"})
        def f() -> None: ...

        @sched.task
        def g() -> None: ...

        assert sched.submission(f, (), {}).options.requires == GPU
        assert sched.submission(f, (), {"_requires": None}).options.requires == GPU
        assert sched.submission(f, (), {"_requires": {}}).options.requires == ""
        assert sched.submission(f, (), {"_requires": {"ssd": True}}).options.requires == '[["ssd","exists",null]]'
        assert sched.submission(g, (), {}).options.requires == ""
        assert sched.submission(g, (), {"_requires": {"gpu": ("!=", "t4")}}).options.requires == '[["gpu","!=","t4"]]'
        new = sched.submission("not.here", (), {"_requires": {"gpu": "a100", "vram_gb": (">=", 40)}})
        assert new.options.requires == GPU  # a name this process has no function for
        (call,) = ops.submit(NS, 1, [new])
        assert call.args[-4:-2] == (f"5\n\n{GPU}\n", "0")
        for batch in (sched.batch(g, [(), ()], None, requires={"gpu": "a100", "vram_gb": (">=", 40)}),
                      sched.batch(f, [()], None), sched.batch(f, [()], None, requires=None)):
            assert {n.options.requires for n in batch} == {GPU}
        assert {n.options.requires for n in sched.batch(f, [()], None, requires={})} == {""}
        assert sched.registry.resolve(f)[1].requires == GPU  # the default is left as it was
    finally:
        sched.close()


CALLS = [
    (policies.limit(NS, 123, policies.Limiter("api", 5, 2.5, 3, None)),
     (P, "123", "limit", "api", "5.0", "2500", "3", "")),
    (policies.limit(NS, None, policies.Limiter("user:*", max_running=1)),
     (P, "", "limit", "user:*", "", "1000", "1", "1")),
    (policies.limit(NS, 1, policies.Limiter("x", 0.1, timedelta(minutes=1), 1, 4)),  # type: ignore[arg-type]
     (P, "1", "limit", "x", "0.1", "60000", "1", "4")),
    (policies.unlimit(NS, 123, "user:*"), (P, "123", "unlimit", "user:*")),
    (policies.weight(NS, 123, "tenant a", 2), (P, "123", "weight", "tenant a", "2.0")),
    (policies.queue_policy(NS, 123, "q1", None), (P, "123", "queue", "q1", "", "=")),
    (policies.queue_policy(NS, 123, "q1", timedelta(seconds=1.5)), (P, "123", "queue", "q1", "1500", "=")),
    (policies.queue_policy(NS, 123, "q1", max_pending=0), (P, "123", "queue", "q1", "=", "0")),
    (policies.queue_policy(NS, 123, "q1", None, None), (P, "123", "queue", "q1", "", "")),
    (policies.limits(NS, 123), (P, "123")),
    (pauses.pause(NS, 123, "pause", None), (P, "123", "pause", "*", "")),
    (pauses.pause(NS, 123, "resume", None, "k"), (P, "123", "resume", "*", "k")),
]


@pytest.mark.parametrize(("call", "args"), CALLS)
def test_call_shapes(call, args):
    assert call.script in ("policy", "limits", "pause")
    assert call.keys == NS.keys.fixed
    assert call.args == args


def test_decode_limit_and_limits():
    assert policies.decode_limit(b"created") is True
    assert policies.decode_limit("updated") is False
    with pytest.raises(ValueError):
        policies.decode_limit("ok")
    reply = [b"1000", [[b"user:7", b"user:*", b"", b"1000", b"1", b"1", b"1", b"2"],
                       [b"api", b"", b"5.5", b"2000", b"3", b"", b"0", b"0"],
                       [b"user:*", b"", b"", b"1000", b"1", b"1", b"0", b"0"]]]
    assert policies.decode_limits(reply) == [
        LimitInfo("api", 5.5, 2.0, 3, None, 0, 0, None),
        LimitInfo("user:*", None, 1.0, 1, 1, 0, 0, None),
        LimitInfo("user:7", None, 1.0, 1, 1, 1, 2, "user:*"),
    ]
    assert policies.decode_limits(["5", []]) == []


@pytest.mark.parametrize(("field", "scope"), [
    ("*", (None, None)),
    ("q:a", ("a", None)),
    ("k:tenant:1", (None, "tenant:1")),
    ("qk:3:abc:k:e:y", ("abc", "k:e:y")),
    ("qk:1:a:ä", ("a", "ä")),
    ("qk:3:ab:k", None),  # the length says more than the queue holds
    ("qk:x:a:k", None),
    ("qk:1:a:", None),
    ("q:", None),
    ("k:", None),
    ("other", None),
])
def test_pause_fields(field, scope):
    assert pauses.scope_of(field) == scope


def test_paused_sorts_namespace_queues_keys_then_keys_of_one_queue():
    got = pauses.decode_paused([b"qk:1:b:t", b"9", b"k:t", b"8", b"q:b", b"7", b"*", b"5", b"q:a", b"6",
                                b"junk", b"1"])
    assert got == [Paused(None, 5), Paused("a", 6), Paused("b", 7), Paused(None, 8, "t"), Paused("b", 9, "t")]


@pytest.mark.parametrize("message", [
    "luasched submit: no limiter named 'user:7'",
    "ERR luasched submit: no limiter named 'user:7' (task t1)",
])
def test_an_unknown_limiter_is_a_value_error_naming_it(message):
    got = translate("submit", redis.exceptions.ResponseError(message))
    assert isinstance(got, luasched.UnknownLimiter)
    assert isinstance(got, ValueError) and isinstance(got, luasched.ScriptError)
    assert got.name == "user:7"
    assert "could not submit the task: no limiter named 'user:7'" in str(got)
    other = translate("submit", redis.exceptions.ResponseError("luasched submit: ARGV does not hold 1 tasks"))
    assert type(other) is luasched.ScriptError
