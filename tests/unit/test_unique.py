"""Unique keys and debounce, the pure part (core/unique): how a key is made from a task's name
and arguments, and the checks that refuse bad input at the call, before anything is written."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

import luasched
from luasched.core.checks import MAX_UNIQUE_KEY
from luasched.core.options import TaskOptions
from luasched.core.unique import NO_ASK, UniqueAsk, ask, canonical, key_for


def test_unique_true_is_the_name_and_a_sha1_of_the_canonical_arguments():
    key = key_for("job", True, NO_ASK, [1, "a"], {"b": {"y": 1, "x": [2]}})
    text = '[[1,"a"],{"b":{"x":[2],"y":1}}]'
    assert canonical([1, "a"], {"b": {"y": 1, "x": [2]}}) == text
    assert key == "job:" + hashlib.sha1(text.encode()).hexdigest()
    assert key_for("job", True, NO_ASK, [1], {}) != key_for("job", True, NO_ASK, [], {"a": 1})
    assert len(key_for("x" * 200, True, NO_ASK, ["y" * 10_000], {})) == 200 + 1 + 40  # bounded


def test_a_given_key_is_taken_as_is_and_wins_over_the_task_option():
    assert key_for("job", True, UniqueAsk("mine"), [1], {}) == "mine"
    assert key_for("job", None, NO_ASK, [1], {}) is None
    assert key_for("job", lambda a: f"a{a}", NO_ASK, [1], {}) == "job:a1"


def test_ask_checks_the_debounce():
    assert ask(None, None, None, 0.0) is NO_ASK
    assert ask("k", timedelta(seconds=2), None, 0.0) == UniqueAsk("k", 2.0)
    assert ask(None, 2, True, 0.0) == UniqueAsk(None, 2.0)


BAD_KEYS = [
    pytest.param(5, TypeError, "must be a str", id="int"),
    pytest.param(b"k", TypeError, "must be a str", id="bytes"),
    pytest.param("", ValueError, "non-empty", id="empty"),
    pytest.param("k" * (MAX_UNIQUE_KEY + 1), ValueError, "at most 256", id="too long"),
    pytest.param("\ud800", ValueError, "UTF-8", id="lone surrogate"),
]


@pytest.mark.parametrize(("key", "error", "words"), BAD_KEYS)
def test_a_bad_unique_key_is_refused(sched, unchanged, key, error, words):
    with pytest.raises(error, match=words):
        sched.submit("add", 1, _unique_key=key)
    with pytest.raises(error, match=words):
        sched.submit_many("add", [(1,), (2,)], unique_key=key)


@pytest.mark.parametrize("made", [pytest.param(5, id="int"), pytest.param("", id="empty"),
                                  pytest.param("k" * 300, id="too long")])
def test_a_unique_callable_returning_no_key_is_refused(sched, unchanged, made):
    @sched.task(unique=lambda n: made)
    def job(n):
        return n

    with pytest.raises(luasched.UniqueKeyError, match="unique key made for task 'job'"):
        sched.submit(job, 1)


def test_a_unique_callable_that_raises_is_refused_and_nothing_of_the_batch_is_written(sched, unchanged):
    def key_of(n):
        if n == 3:
            raise KeyError("no such user")
        return str(n)

    @sched.task(unique=key_of)
    def job(n):
        return n

    with pytest.raises(luasched.UniqueKeyError, match="raised KeyError") as got:
        sched.submit(job, 3)
    assert isinstance(got.value, ValueError) and isinstance(got.value.__cause__, KeyError)
    with pytest.raises(luasched.UniqueKeyError):
        sched.submit_many(job, [(1,), (2,), (3,)])


@pytest.mark.parametrize(("options", "error", "words"), [
    pytest.param({"_debounce": 5}, ValueError, "_debounce needs a unique key", id="debounce without a key"),
    pytest.param({"_unique_key": "k", "_debounce": -1}, ValueError, "_debounce must be", id="negative"),
    pytest.param({"_unique_key": "k", "_debounce": 0}, ValueError, "_debounce must be", id="zero"),
    pytest.param({"_unique_key": "k", "_debounce": "5"}, TypeError, "_debounce must be", id="str"),
    pytest.param({"_unique_key": "k", "_debounce": 5, "_delay": 3}, ValueError, "exclude each other", id="delay"),
    pytest.param({"_unique_key": "k", "_unique_until": "done"}, ValueError, "unique_until", id="until"),
])
def test_bad_debounce_and_until_are_refused(sched, unchanged, options, error, words):
    with pytest.raises(error, match=words):
        sched.submit("add", 1, **options)


def test_bad_task_options_are_refused_at_registration(sched):
    with pytest.raises(TypeError, match="unique must be True, False or a callable"):
        sched.task(unique="yes")
    with pytest.raises(ValueError, match="unique_until"):
        sched.task(unique=True, unique_until="never")
    with pytest.raises(TypeError):
        TaskOptions(unique=3)  # type: ignore[arg-type]
