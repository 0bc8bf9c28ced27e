"""One-task submits from many threads of one process share script calls (scheduler._Coalescer):
each caller still returns only once its task is in Redis."""

from __future__ import annotations

import threading
import time

import pytest

import luasched
from luasched import ConnectionLost
from luasched._backends.threads import Coalescer as _Coalescer
from luasched.core import ops


def counted(sched: luasched.Scheduler) -> list[int]:
    """The number of tasks of each submit script call the coalescer makes from now on."""
    sizes: list[int] = []
    lock = threading.Lock()
    send = sched._coalescer.send

    def wrapped(news: list[ops.NewTask]) -> object:
        with lock:
            sizes.append(len(news))
        return send(news)

    sched._coalescer.send = wrapped
    return sizes


def test_concurrent_submits_share_calls_and_each_lands_once_before_its_call_returns(make_sched, backend):
    sched = make_sched()
    sizes = counted(sched)
    threads, per = 16, 40
    barrier = threading.Barrier(threads)
    handles: list[list[luasched.TaskHandle]] = [[] for _ in range(threads)]
    seen_queued: list[bool] = []

    def producer(i: int) -> None:
        barrier.wait()
        for k in range(per):
            h = sched.submit("add", i, k)
            handles[i].append(h)
            if k % 10 == 0:  # the task is in Redis by the time submit returns
                seen_queued.append(h.state == "queued")

    workers = [threading.Thread(target=producer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    ids = [h.id for hs in handles for h in hs]
    assert len(ids) == len(set(ids)) == threads * per
    assert all(seen_queued) and len(seen_queued) == threads * 4
    assert sum(sizes) == threads * per
    counts = sched.counts()
    assert counts["submitted"] == counts["queued"] == threads * per
    if backend == "real":  # threads block in recv while a call is in flight: the others queue up
        assert len(sizes) < threads * per / 2, f"{len(sizes)} calls for {threads * per} submits"
    assert sched.audit().ok


def test_one_thread_submitting_makes_one_call_per_task(make_sched):
    sched = make_sched()
    sizes = counted(sched)
    handles = [sched.submit("add", i, i) for i in range(20)]
    assert sizes == [1] * 20
    assert [h.state for h in handles] == ["queued"] * 20


def _controlled(sched: luasched.Scheduler, fail_second: bool = False):
    """A coalescer whose first call blocks until released, recording each call's ids and thread."""
    calls: list[tuple[list[str], str]] = []
    release = threading.Event()

    def send(news: list[ops.NewTask]) -> None:
        calls.append(([n.id for n in news], threading.current_thread().name))
        if len(calls) == 1:
            assert release.wait(10)
        elif fail_second and len(calls) == 2:
            raise ConnectionLost("cut off")
        sched._submit(news, "")

    return _Coalescer(send), calls, release


def _start(c: _Coalescer, new: ops.NewTask, name: str, errors: dict[str, BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            c.submit(new)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to check
            errors[name] = exc

    t = threading.Thread(target=run, name=name)
    t.start()
    return t


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _queue_behind_first(c: _Coalescer, calls: list, release: threading.Event,
                        news: list[tuple[str, ops.NewTask]]) -> dict[str, BaseException]:
    """Submit news[0] in its thread (its call blocks), then the others one by one, each waiting
    behind it, then let the first call end; the errors each thread raised, by thread name."""
    errors: dict[str, BaseException] = {}
    (name, first), *rest = news
    threads = [_start(c, first, name, errors)]
    _wait_for(lambda: len(calls) == 1)
    for i, (name, new) in enumerate(rest):
        threads.append(_start(c, new, name, errors))
        _wait_for(lambda i=i: len(c.waiting) == i + 1)
    release.set()
    for t in threads:
        t.join(10)
    return errors


def test_what_waited_goes_in_the_next_call_carried_by_the_first_waiter():
    sched = luasched.Scheduler(namespace="coalesce")
    c, calls, release = _controlled(sched)
    errors = _queue_behind_first(c, calls, release,
                                 [(f"t{x}", sched.submission("add", (1, 2), {"_id": x})) for x in "abcd"])
    assert errors == {}
    assert calls == [(["a"], "ta"), (["b", "c", "d"], "tb")]
    assert not c.busy and c.waiting == []
    assert sorted(sched.handle(x).state for x in "abcd") == ["queued"] * 4


def test_the_error_of_a_call_reaches_every_caller_it_carried_and_the_next_submit_goes():
    sched = luasched.Scheduler(namespace="coalesce-error")
    c, calls, release = _controlled(sched, fail_second=True)
    errors = _queue_behind_first(c, calls, release,
                                 [(f"t{x}", sched.submission("add", (1, 2), {"_id": x})) for x in "abc"])
    assert set(errors) == {"tb", "tc"} and all(isinstance(e, ConnectionLost) for e in errors.values())
    assert sched.handle("a").state == "queued"
    c.submit(sched.submission("add", (1, 2), {"_id": "d"}))  # not stuck: the coalescer went idle
    assert calls[-1] == (["d"], threading.current_thread().name)


def test_one_id_submitted_by_threads_waiting_together_goes_in_successive_calls():
    sched = luasched.Scheduler(namespace="coalesce-same")
    c, calls, release = _controlled(sched)
    errors = _queue_behind_first(c, calls, release,
                                 [("t0", sched.submission("add", (0, 0), {"_id": "first"}))]
                                 + [(f"t{i + 1}", sched.submission("add", (i, i), {"_id": "same"})) for i in range(3)])
    assert errors == {}
    assert [ids for ids, _ in calls] == [["first"], ["same"], ["same"], ["same"]]
    assert sched.counts()["submitted"] == 2


@pytest.mark.real_redis
def test_threaded_producers_on_a_real_server_use_fewer_round_trips(redis_server, namespace):
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)
    r = redis_server.client()
    r.config_resetstat()
    threads, per = 8, 100
    barrier = threading.Barrier(threads)

    def producer() -> None:
        barrier.wait()
        for i in range(per):
            sched.submit("add", i, i)

    workers = [threading.Thread(target=producer) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    stats = r.info("commandstats")  # a submit goes as EVALSHA, or FCALL of its function (Redis 7+)
    evalsha = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "fcall"))
    assert sched.counts()["queued"] == threads * per
    assert 0 < evalsha < threads * per / 2, f"{evalsha} script calls for {threads * per} submits"
    sched.close()
