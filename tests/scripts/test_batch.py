"""Starting and acking several tasks per call (batch mode): fewer round trips, same fencing."""

from __future__ import annotations

import pytest

from luasched.core import ops
from luasched.core.tasks import new_request_id

from .util import audit_ok, pending_ids, running_ids


@pytest.fixture
def proc(sched):
    p = sched.processor(capacity=4, lease=60)
    assert p.register()
    return p


def start(sched, pid, want, rid=None):
    call = ops.start(sched.ns, sched.now_ms(), pid, "b", rid or new_request_id(), want)
    return ops.decode_start(sched.call(call))


def test_start_takes_up_to_want_tasks_oldest_first(sched, proc):
    hs = sched.submit_many("add", [(i,) for i in range(3)])
    sched.dispatch()
    reply = start(sched, proc.id, want=2)
    assert [t.id for t in reply.tasks] == [hs[0].id, hs[1].id] and reply.task == reply.tasks[0]
    assert pending_ids(sched, proc.id) == [hs[2].id]
    assert running_ids(sched, proc.id) == sorted([hs[0].id, hs[1].id])
    audit_ok(sched)


def test_a_replayed_batch_start_answers_the_same_tasks(sched, proc):
    sched.submit_many("add", [(i,) for i in range(4)])
    sched.dispatch()
    call = ops.start(sched.ns, sched.now_ms(), proc.id, "b", new_request_id(), 3)
    first = ops.decode_start(sched.call(call))
    again = ops.decode_start(sched.call(call))
    assert [t.id for t in again.tasks] == [t.id for t in first.tasks] and len(first.tasks) == 3
    assert [t.attempt for t in again.tasks] == [1, 1, 1]
    assert len(pending_ids(sched, proc.id)) == 1
    audit_ok(sched)


def test_ack_many_acks_each_task_fenced_and_starts_the_next_ones(sched, proc, clock):
    hs = sched.submit_many("add", [(i,) for i in range(4)])
    sched.dispatch()
    a, b = start(sched, proc.id, want=2).tasks
    stale = ops.Started(b.id, b.name, b.args_json, b.attempt + 1, b.timeout_ms)  # not its attempt
    call = ops.ack_many(sched.ns, sched.now_ms(), proc.id, "b", new_request_id(),
                        [(a, "done", "1"), (stale, "done", "2"), (b, "error", '{"type":"E"}')],
                        ops.NEXT_INBOX, 2)
    reply = ops.decode_ack(sched.call(call))
    assert reply.statuses == ["done", "stale", "retry"]
    assert [t.id for t in reply.started] == [hs[2].id, hs[3].id]
    assert (hs[0].state, hs[1].state, hs[2].state, hs[3].state) == ("done", "delayed", "running", "running")
    assert ops.decode_ack(sched.call(call)) .statuses == ["done", "stale", "retry"]  # a replay
    assert hs[0].result(timeout=1) == 1
    audit_ok(sched)


def test_take_next_fills_up_to_capacity_from_the_queue(sched):
    p = sched.processor(capacity=3, lease=60, take_next=True)
    assert p.register()
    hs = sched.submit_many("add", [(i,) for i in range(5)])
    assert len(sched.dispatch(1)) == 1
    first = start(sched, p.id, want=3).tasks
    assert [t.id for t in first] == [hs[0].id]
    call = ops.ack_many(sched.ns, sched.now_ms(), p.id, "b", new_request_id(), [(first[0], "done", "0")],
                        ops.NEXT_TAKE, 3)
    reply = ops.decode_ack(sched.call(call))
    assert [t.id for t in reply.started] == [h.id for h in hs[1:4]]  # capacity 3: not the fifth
    assert hs[4].state == "queued"
    audit_ok(sched)


@pytest.mark.parametrize("take_next", [False, True])
def test_a_batch_processor_runs_everything_in_fewer_calls(make_sched, take_next):
    sched = make_sched()

    @sched.task
    def triple(x: int) -> int:
        return 3 * x

    p = sched.processor(capacity=8, batch=True, take_next=take_next)
    p.register()
    hs = sched.submit_many(triple, [(i,) for i in range(64)])
    calls = []
    real_call = sched.call
    sched.call = lambda c: calls.append(c.script) or real_call(c)
    sched.dispatch(1 if take_next else 8)
    ran = p.process_available() if not take_next else 0
    if take_next:
        import threading

        stop = threading.Event()
        stopper = threading.Thread(target=lambda: (hs[-1].result(timeout=30), stop.set(), p._wake_slots(p.id)))
        stopper.start()
        ran = p._run_slot("0", stop)
        stopper.join()
    else:
        while len(calls) < 200 and sum(h.state == "done" for h in hs) < 64:
            sched.dispatch(8)
            ran += p.process_available()
    assert ran == 64 and [h.result(timeout=5) for h in hs] == [3 * i for i in range(64)]
    acks = calls.count("ack")
    assert acks <= 64 // 8 + 2, f"{acks} ack calls for 64 tasks in batches of 8"
    audit_ok(sched)
