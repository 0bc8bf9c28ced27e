"""What Redis answers becomes one luasched exception at the one boundary (routing.translate):
a refusal that passes is ServerRefused with its reason, a lost connection ConnectionLost, a
bug ScriptError; and the start-up wait (Patience) gives up only when told to or when waiting
cannot help."""

from __future__ import annotations

import logging

import pytest
import redis.exceptions as rx
from redis._parsers.base import BaseParser

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


def test_a_call_immune_to_the_refusal_ends_no_episode_of_it(caplog):
    """The heartbeat runs out of memory (it may, to keep a lease): its success while the slots'
    calls are refused for OOM is no recovery, so the episode stays one WARNING and one INFO."""
    caplog.set_level(logging.INFO, "test.episode")
    episode = Episode(logging.getLogger("test.episode"))
    oom = translate("ack", rx.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."))
    lost = translate("ack", rx.ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused."))
    for _ in range(3):
        episode.failed("processor p", oom)
        episode.recovered("processor p", immune="oom")  # a heartbeat between two refused acks
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    episode.failed("processor p", lost)  # the latest failure is another: the heartbeat's success shows it passed
    episode.recovered("processor p", immune="oom")
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "4 failed calls" in caplog.records[-1].getMessage()


# --- Redis before 7.0: a refusal met inside a script comes wrapped in a generic ERR ------------

#: What Redis 6.2 writes on the wire when a redis.call inside script f_<sha> meets a refusal
#: (src/scripting.c of 6.2.16: luaPushError adds "@user_script: N: " to the shared refusal text,
#: which keeps its "-" and its "\r\n", the error handler adds "@user_script:N: ", and
#: addReplyErrorFormat prefixes ERR and turns the newlines into spaces). The trailing "\r\n" is
#: trimmed there.
SHA = "f_5d1b6f0c3a0e1c2b9f4e7a8d6c5b4a3f2e1d0c9b"
WIRE_62 = [
    (f"ERR Error running script (call to {SHA}): @user_script:41: @user_script: 41: -READONLY You can't "
     f"write against a read only replica.", "readonly"),
    (f"ERR Error running script (call to {SHA}): @user_script:7: @user_script: 7: -OOM command not allowed "
     f"when used memory > 'maxmemory'.", "oom"),
    (f"ERR Error running script (call to {SHA}): @user_script:7: @user_script: 7: -MISCONF Redis is "
     f"configured to save RDB snapshots, but it is currently not able to persist on disk. Commands that may "
     f"modify the data set are disabled.", "misconf"),
    (f"ERR Error running script (call to {SHA}): @user_script:9: @user_script: 9: -NOREPLICAS Not enough "
     f"good replicas to write.", "noreplicas"),
    (f"ERR Error running script (call to {SHA}): @user_script:41: -READONLY You can't write against a read "
     f"only replica.", "readonly"),  # as issue 21 quotes it, one position
]


def parsed(wire: str) -> rx.RedisError:
    """The exception redis-py makes of the error reply ``wire`` (it strips a known code, ERR)."""
    return BaseParser.parse_error(wire)


@pytest.mark.parametrize(("wire", "reason"), WIRE_62, ids=[f"{r}-{i}" for i, (_, r) in enumerate(WIRE_62)])
def test_a_refusal_wrapped_by_redis_6_2_is_server_refused_with_its_reason(wire, reason):
    raised = parsed(wire)
    assert type(raised) is rx.ResponseError and str(raised).startswith("Error running script")
    ours = translate("submit", raised)
    assert isinstance(ours, luasched.ServerRefused) and ours.reason == reason
    assert ours.answer == str(raised)
    if reason == "readonly":
        assert "the server is a read-only replica" in str(ours)


@pytest.mark.parametrize("wire", [
    # a command's own error inside a script loses its "-": WRONGTYPE is a bug, not a refusal
    f"ERR Error running script (call to {SHA}): @user_script:3: WRONGTYPE Operation against a key holding "
    f"the wrong kind of value",
    # a caller bug raised by a script
    f"ERR Error running script (call to {SHA}): @user_script:12: user_script:12: bad queue name",
    # an ACL refusal inside a script (6.2's words)
    f"ERR Error running script (call to {SHA}): @user_script:5: @user_script: 5: The user executing the "
    f"script can't run this command or subcommand",
])
def test_other_errors_wrapped_by_redis_6_2_stay_script_errors(wire):
    ours = translate("submit", parsed(wire))
    assert type(ours) is luasched.ScriptError
