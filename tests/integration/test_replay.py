"""A script call whose reply is lost may have run: redis-py sends it again. Every mutating call
carries its request id (or, for submit, the task id), so the replay answers as the first call
did and acts once. The reply is lost for real here: a proxy cuts the connection after the
server ran the script, and redis-py's own retry sends it again."""

from __future__ import annotations

import pytest
import redis

import luasched
from luasched import scripts
from luasched.core import ops
from luasched.core.tasks import new_request_id
from tests.proxy import ReplyDropper

pytestmark = [pytest.mark.real_redis]


@pytest.fixture
def proxy(redis_server):
    p = ReplyDropper(redis_server.port)
    yield p
    p.close()


@pytest.fixture
def flaky(proxy, namespace, clock):
    """A Scheduler whose replies pass through the proxy; redis-py's default retries are on."""
    client = redis.Redis(port=proxy.port, protocol=2)
    sched = luasched.Scheduler(client, namespace=namespace, clock=clock)
    for source in scripts.flagged_sources().values():  # loaded: the lost reply is a script's, not NOSCRIPT
        client.script_load(source)
    yield sched
    client.close()


@pytest.fixture
def direct(redis_server, namespace, clock):
    client = redis_server.client()  # places only by explicit calls, so that dispatch has work to replay
    yield luasched.Scheduler(client, namespace=namespace, clock=clock, dispatch_on_submit=False)
    client.close()


def lose_next(proxy: ReplyDropper, sched: luasched.Scheduler, script: str) -> None:
    proxy.drop_reply_to(str(sched.scripts.command(script, (), ())[1]).encode())  # its function's name, or sha


def test_submit_replayed_creates_one_task(flaky, direct, proxy):
    lose_next(proxy, flaky, "submit")
    h = flaky.submit("job", 1)
    assert proxy.dropped == 1
    assert direct.counts()["submitted"] == 1
    assert direct.queue_lengths() == {"default": 1}
    assert h.state == "queued"
    assert direct.audit().ok


def test_submit_many_replayed_creates_each_task_once(flaky, direct, proxy):
    lose_next(proxy, flaky, "submit")
    hs = flaky.submit_many("job", [(i,) for i in range(50)])
    assert proxy.dropped == 1
    assert direct.counts()["submitted"] == 50 and len({h.id for h in hs}) == 50
    assert direct.audit().ok


def test_dispatch_replayed_answers_the_same_assignments(flaky, direct, proxy):
    p = direct.processor(capacity=5)
    p.register()
    hs = direct.submit_many("job", [(i,) for i in range(3)])
    lose_next(proxy, flaky, "dispatch")
    pairs = flaky.dispatch()
    assert proxy.dropped == 1
    assert sorted(pairs) == sorted((h.id, p.id) for h in hs), "the replay must answer the first outcome"
    assert direct.counts()["assigned"] == 3
    assert direct.audit().ok


def test_ack_replayed_completes_once_and_starts_the_same_next_task(flaky, direct, proxy):
    p = direct.processor(capacity=2)
    p.register()
    a, b = direct.submit_many("job", [(1,), (2,)])
    direct.dispatch()
    first = ops.decode_start(direct.call(ops.start(direct.ns, direct.now_ms(), p.id, "s", new_request_id())))
    lose_next(proxy, flaky, "ack")
    call = ops.ack(flaky.ns, flaky.now_ms(), p.id, "s", new_request_id(), first.task, "done", "10",
                   ops.NEXT_INBOX)
    reply = ops.decode_ack(flaky.call(call))
    assert proxy.dropped == 1
    assert reply.status == "done", "a replayed ack must not answer 'stale'"
    assert reply.next is not None and reply.next.id == b.id and reply.next.attempt == 1
    assert direct.counts()["done"] == 1 and direct.counts()["running"] == 1
    assert a.result(timeout=1) == 10
    assert direct.audit().ok


def test_start_replayed_hands_out_the_same_task(flaky, direct, proxy):
    p = direct.processor(capacity=2)
    p.register()
    a, b = direct.submit_many("job", [(1,), (2,)])
    direct.dispatch()
    lose_next(proxy, flaky, "start")
    reply = ops.decode_start(flaky.call(ops.start(flaky.ns, flaky.now_ms(), p.id, "s", new_request_id())))
    assert proxy.dropped == 1
    assert reply.task is not None and reply.task.id == a.id and reply.task.attempt == 1
    assert (a.state, b.state) == ("running", "assigned"), "the replay started a second task"
    assert direct.audit().ok


def test_cancel_replayed_still_says_cancelled(flaky, direct, proxy):
    h = direct.submit("job")
    lose_next(proxy, flaky, "cancel")
    assert flaky.handle(h.id).cancel() is True
    assert proxy.dropped == 1
    assert direct.counts()["cancelled"] == 1
    assert direct.audit().ok


def test_reap_and_deregister_replayed_answer_the_same(flaky, direct, proxy, clock):
    lapsing = direct.processor(lease=5)
    leaving = direct.processor(lease=600)
    lapsing.register()
    leaving.register()
    hs = direct.submit_many("job", [(i,) for i in range(2)])
    direct.dispatch()
    clock.advance(6)
    lose_next(proxy, flaky, "reap")
    taken = flaky.reap()
    assert proxy.dropped == 1
    assert taken.processors == [lapsing.id] and len(taken) == 1
    lose_next(proxy, flaky, "deregister")
    reply = ops.decode_deregister(flaky.call(ops.deregister(flaky.ns, flaky.now_ms(), leaving.id,
                                                            new_request_id())))
    assert proxy.dropped == 2
    assert reply is not None and len(reply) == 1
    assert sorted(h.state for h in hs) == ["queued", "queued"]
    assert direct.audit().ok


def test_retry_failed_replayed_answers_the_same(flaky, direct, proxy):
    @direct.task(max_attempts=1)
    def bad() -> None:
        raise ValueError("no")

    p = direct.processor()
    p.register()
    h = direct.submit(bad)
    direct.dispatch()
    p.process_available()
    assert h.state == "failed"
    lose_next(proxy, flaky, "retry_failed")
    assert flaky.retry_failed() == [h.id]
    assert proxy.dropped == 1
    assert h.state == "queued" and direct.counts()["failed"] == 0
    assert direct.audit().ok
