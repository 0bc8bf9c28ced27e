"""result.lua and the waiting around it: BLPOP wake-ups, timeouts, groups, decoded clients."""

from __future__ import annotations

import threading
import time

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

import luasched
from luasched.core import ops
from luasched.core.fields import TASK

from .util import ack, audit_ok, error_json, start

LATE_S = 0.3  # how late the simulated processor finishes


def finish_later(make_sched, clock, delay=LATE_S):
    """A processor on its own client that runs the inbox after ``delay`` seconds, in a thread."""
    s = make_sched(clock=clock)

    @s.task
    def add(a, b):
        return a + b

    p = s.processor(capacity=4, lease=600)
    assert p.register()

    def run():
        time.sleep(delay)
        s.dispatch()
        p.process_available()

    return threading.Thread(target=run, daemon=True)


def test_result_wakes_up_promptly_after_the_ack(sched, make_sched, clock):
    h = sched.submit("add", 2, 3)
    late = finish_later(make_sched, clock)
    late.start()

    began = time.monotonic()
    value = h.result(timeout=20)
    waited = time.monotonic() - began
    late.join(5)

    assert value == 5
    assert LATE_S * 0.5 <= waited < 10  # woken by the ack, not by the timeout
    assert sched.client.hget(sched.keys.task(h.id), TASK.waiter) == b"1"  # it did block as a marked waiter
    audit_ok(sched)


def test_result_of_a_finished_task_does_not_block(sched):
    p = sched.processor()
    assert p.register()
    h = sched.submit("add")
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task, "done", '"ok"')

    assert h.result(timeout=0) == "ok"


def test_result_timeout(sched):
    h = sched.submit("add")

    began = time.monotonic()
    with pytest.raises(luasched.ResultTimeout) as timed_out:
        h.result(timeout=0.2)
    waited = time.monotonic() - began

    assert isinstance(timed_out.value, TimeoutError)
    assert h.id in str(timed_out.value) and "queued" in str(timed_out.value)
    assert 0.15 <= waited < 5
    assert h.state == "queued"
    audit_ok(sched)


def test_result_of_an_unknown_task(sched):
    with pytest.raises(luasched.TaskNotFound):
        sched.handle("never-made").result(timeout=1)


def test_several_waiters_all_get_the_result(sched, make_sched, clock):
    h = sched.submit("add", 20, 22)
    got = []

    def wait(s):
        got.append(s.handle(h.id).result(timeout=20))

    waiters = [threading.Thread(target=wait, args=(make_sched(clock=clock),), daemon=True)
               for _ in range(3)]
    for w in waiters:
        w.start()
    late = finish_later(make_sched, clock)
    late.start()
    late.join(10)
    for w in waiters:
        w.join(10)

    assert got == [42, 42, 42]
    audit_ok(sched)


def test_result_reports_failure_with_the_remote_error(sched):
    p = sched.processor()
    assert p.register()
    h = sched.submit("add", _max_attempts=1)
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task, "error", error_json("no luck", "KeyError"))

    with pytest.raises(luasched.TaskFailed) as failed:
        h.result(timeout=1)

    assert (failed.value.error_type, failed.value.message) == ("KeyError", "no luck")
    assert failed.value.traceback == "Traceback: here"
    assert "KeyError: no luck" in str(failed.value)


@pytest.fixture
def adder(sched):
    @sched.task
    def add(a, b):
        if a < 0:
            raise ArithmeticError(f"negative {a}")
        return a + b

    return add


def test_group_results_in_submission_order(sched, adder):
    p = sched.processor(capacity=5)
    assert p.register()
    g = sched.map(adder, [(i, 10) for i in range(5)])
    sched.dispatch()
    p.process_available()

    assert g.results(timeout=5) == [10, 11, 12, 13, 14]
    assert g.progress() == {"total": 5, "done": 5, "failed": 0, "cancelled": 0, "pending": 0}
    audit_ok(sched)


def test_group_results_raises_the_first_failure_or_returns_exceptions(sched, adder):
    p = sched.processor(capacity=3)
    assert p.register()
    g = sched.map(adder, [(1, 1), (-1, 0), (2, 2)], max_attempts=1)
    sched.dispatch()
    p.process_available()

    with pytest.raises(luasched.TaskFailed) as failed:
        g.results(timeout=5)
    assert failed.value.task_id == g.ids[1]

    values = g.results(timeout=5, return_exceptions=True)
    assert values[0] == 2 and values[2] == 4
    assert isinstance(values[1], luasched.TaskFailed)
    assert (values[1].error_type, values[1].message) == ("ArithmeticError", "negative -1")
    audit_ok(sched)


def test_group_as_completed_yields_in_finishing_order(sched):
    p = sched.processor(capacity=3)
    assert p.register()
    g = sched.map("add", [(1,), (2,), (3,)])
    sched.dispatch()
    started = [start(sched, p.id, f"s{i}").task for i in range(3)]
    assert [t.id for t in started] == g.ids

    for i in (2, 0, 1):
        assert ack(sched, p.id, started[i], "done", str(i), slot=f"s{i}").status == "done"

    seen = [(o.task_id, o.state, o.payload) for o in g.as_completed(timeout=5)]
    assert seen == [(g.ids[i], "done", str(i)) for i in (2, 0, 1)]
    assert g.results(timeout=5) == [0, 1, 2]
    audit_ok(sched)


def test_as_completed_sees_members_finish_while_it_waits(sched, make_sched, clock):
    g = sched.map("add", [(1, 2), (3, 4)])
    late = finish_later(make_sched, clock)
    late.start()

    outcomes = list(g.as_completed(timeout=20))
    late.join(5)

    assert sorted((o.task_id, o.value()) for o in outcomes) == sorted(zip(g.ids, [3, 7], strict=True))


def test_group_with_a_cancelled_member(sched, adder):
    p = sched.processor(capacity=3)
    assert p.register()
    g = sched.map(adder, [(1, 1), (2, 2)])
    assert g.handles[1].cancel() is True
    sched.dispatch()
    p.process_available()

    states = sorted(o.state for o in g.as_completed(timeout=5))
    values = g.results(timeout=5, return_exceptions=True)

    assert states == ["cancelled", "done"]
    assert values[0] == 2 and isinstance(values[1], luasched.TaskCancelled)
    audit_ok(sched)


def test_group_results_timeout(sched):
    g = sched.map("add", [(1,)])

    with pytest.raises(luasched.ResultTimeout) as timed_out:
        g.results(timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)
    assert g.id in str(timed_out.value)


def test_a_client_with_decode_responses_works_for_the_whole_flow(make_sched, clock):
    s = make_sched(clock=clock, decode_responses=True)

    @s.task
    def mul(a, b):
        return a * b

    p = s.processor(capacity=4)
    assert p.register()
    h = s.submit(mul, 6, 7)
    g = s.map(mul, [(i, i) for i in range(3)])
    late = s.submit(mul, 1, 1, _delay=5)
    gone = s.submit(mul, 0, 0)
    assert gone.cancel() is True
    assert len(s.dispatch()) == 4
    assert p.heartbeat()
    assert p.process_available() == 4

    assert h.state == "done"
    assert h.result(timeout=1) == 42
    assert g.results(timeout=5) == [0, 1, 4]
    assert [o.task_id for o in g.as_completed(timeout=5)] == g.ids
    assert s.outcome(h.id).processor == p.id
    assert late.state == "delayed"
    c = s.counts()
    assert (c["submitted"], c["done"], c["delayed"], c["cancelled"]) == (6, 4, 1, 1)
    assert s.queue_lengths() == {"default": 0}
    assert s.reap() == []
    assert p.deregister() == []
    audit_ok(s)


@pytest.fixture
def short_socket(make_client, namespace, clock):
    """A Scheduler whose client gives up on a read after 0.5 s and does not retry."""
    client = make_client(socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    return luasched.Scheduler(client, namespace=namespace, clock=clock)


def test_result_waits_longer_than_the_clients_socket_timeout(short_socket):
    """Regression: result() blocked 5 s at a time whatever the client's socket timeout (redis-py 8
    defaults to 5 s too, and retries 10 times): with a default client, result(timeout=5.5) raised
    ConnectionLost after 59 s instead of ResultTimeout after 5.5 s."""
    h = short_socket.submit("add")

    began = time.monotonic()
    with pytest.raises(luasched.ResultTimeout):
        h.result(timeout=0.8)
    assert time.monotonic() - began < 5


def test_as_completed_waits_longer_than_the_clients_socket_timeout(short_socket):
    g = short_socket.map("add", [(1,)])

    with pytest.raises(luasched.ResultTimeout):
        list(g.as_completed(timeout=0.8))


def test_result_after_the_socket_timeout_still_gets_the_value(short_socket, make_sched, clock):
    h = short_socket.submit("add", 1, 1)
    late = finish_later(make_sched, clock, delay=0.7)
    late.start()

    assert h.result(timeout=20) == 2
    late.join(5)


def test_a_group_larger_than_one_read_keeps_submission_order(sched):
    """as_completed reads the stream 1000 entries at a time and results() reads outcomes in
    chunks of 1000: 1200 members cross both boundaries. Members finish in reverse order."""
    p = sched.processor(capacity=1200, lease=600)
    assert p.register()
    g = sched.map("add", [(i,) for i in range(1200)])
    assert len(sched.dispatch(limit=1200)) == 1200
    started = []
    reply = start(sched, p.id)
    while reply.status == "task":
        started.append(reply.task)
        reply = start(sched, p.id)
    calls = [ops.ack(sched.ns, sched.now_ms(), p.id, "s0", f"r{i}", t, "done", str(int(t.args_json[1:-1])),
                     ops.NEXT_NONE) for i, t in enumerate(reversed(started))]
    for chunk in range(0, len(calls), 300):
        sched.call_many(calls[chunk:chunk + 300])

    finished = [o.task_id for o in g.as_completed(timeout=10)]

    assert finished == list(reversed(g.ids))
    assert g.results(timeout=10) == list(range(1200))
    audit_ok(sched)


def test_a_group_is_found_again_by_its_id(sched, clock):
    g = sched.map("add", [(i, i) for i in range(3)])
    again = sched.group(g.id)
    assert again.ids == g.ids and again.id == g.id
    assert again.progress()["pending"] == 3
    with pytest.raises(luasched.GroupNotFound):
        sched.group("no-such-group")
