"""What Redis answers becomes one luasched exception at the one boundary (routing.translate):
a refusal that passes is ServerRefused with its reason, a lost connection ConnectionLost, a
bug ScriptError; and the start-up wait (Patience) gives up only when told to or when waiting
cannot help."""

from __future__ import annotations

import logging

import pytest
import redis.exceptions as rx

import luasched
from luasched.core.faults import Episode, Patience, permanent
from luasched.errors import TRANSIENT
from luasched.routing import translate, translated

# (what redis-py raised, the reason luasched gives), each as the server words it
REFUSED = [
    (rx.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."), "oom"),
    (rx.ResponseError("OOM command not allowed when used memory > 'maxmemory'. script: 3e1f, on "
                      "@user_script:12."), "oom"),  # from a redis.call inside a script
    (rx.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
                      "SHUTDOWN NOSAVE."), "busy"),
    (rx.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently "
                      "unable to persist to disk."), "misconf"),
    (rx.BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
    (rx.ReadOnlyError("You can't write against a read only replica."), "readonly"),
    (rx.ResponseError("NOREPLICAS Not enough good replicas to write."), "noreplicas"),
    (rx.ResponseError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set "
                      "to 'no'."), "noreplicas"),
]


@pytest.mark.parametrize(("raised", "reason"), REFUSED, ids=[r for _, r in REFUSED])
def test_a_refusal_that_passes_is_server_refused_with_its_reason(raised, reason):
    with pytest.raises(luasched.ServerRefused) as refused, translated("ack"):
        raise raised
    assert refused.value.reason == reason and refused.value.reason in luasched.ServerRefused.REASONS
    assert str(refused.value).startswith("could not report a finished task: ")
    assert str(raised) in str(refused.value) and refused.value.answer == str(raised)
    assert refused.value.__cause__ is raised
    assert isinstance(refused.value, TRANSIENT) and not isinstance(refused.value, luasched.ConnectionLost)


@pytest.mark.parametrize(("raised", "kind"), [
    (rx.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."), luasched.ConnectionLost),
    (rx.TimeoutError("Timeout reading from socket"), luasched.ConnectionLost),
    (rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), luasched.ScriptError),
    (rx.ResponseError("ERR Error running script: bad argument"), luasched.ScriptError),
    (rx.NoPermissionError("NOPERM this user has no permissions"), luasched.ScriptError),
])
def test_other_errors_keep_their_meaning(raised, kind):
    ours = translate("submit", raised)
    assert type(ours) is kind and str(ours).startswith("could not submit the task: ")
    assert isinstance(ours, TRANSIENT) == (kind is luasched.ConnectionLost)


def test_an_unknown_redis_error_is_left_as_it_is():
    odd = rx.DataError("invalid input")
    with pytest.raises(rx.DataError) as kept, translated("counts"):
        raise odd
    assert kept.value is odd


def _lost(cause: BaseException) -> luasched.ConnectionLost:
    exc = luasched.ConnectionLost(f"could not register the processor: cannot reach Redis: {cause}")
    exc.__cause__ = cause
    return exc


def test_waiting_for_redis_stops_at_once_when_waiting_cannot_help(caplog):
    wrong = _lost(rx.AuthenticationError("WRONGPASS invalid username-password pair"))
    refused = _lost(rx.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    assert permanent(wrong) and not permanent(refused)
    patience = Patience(logging.getLogger("test"), "processor p", None)
    assert patience.pause(wrong) is None
    pauses = [patience.pause(refused) for _ in range(8)]
    assert pauses[0] == pytest.approx(0.05) and pauses[-1] == pytest.approx(2.0), "capped backoff"
    over = Patience(logging.getLogger("test"), "processor p", 0.0)
    assert over.pause(refused) is None, "past --connect-timeout: give up"


def test_an_episode_is_logged_once_and_its_end_once(caplog):
    caplog.set_level(logging.INFO, "test.episode")
    episode = Episode(logging.getLogger("test.episode"))
    oom = translate("ack", rx.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."))
    for _ in range(5):
        episode.failed("processor p", oom)
    episode.recovered("processor p")
    episode.recovered("processor p")  # nothing to end: no line
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING"
    assert "processor p: could not report a finished task: Redis is out of memory" in lines[0][1]
    assert "retrying with backoff until it goes through" in lines[0][1]
    assert lines[1][0] == "INFO" and "Redis answers again after" in lines[1][1] and "5 failed calls" in lines[1][1]
