"""Several dispatchers, producers and processors at once on a real redis-server: no task is
handed out twice, none is lost, each runs exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

import luasched

pytestmark = [pytest.mark.real_redis]

TASKS = 1500


def test_concurrent_dispatchers_hand_out_each_task_once(redis_server, namespace):
    make = lambda **kw: luasched.Scheduler(redis_server.client(), namespace=namespace, **kw)  # noqa: E731
    runs: Counter[int] = Counter()
    lock = threading.Lock()
    worker = make()

    @worker.task
    def record(i: int) -> int:
        with lock:
            runs[i] += 1
        return i

    producer = make()
    eager = make(dispatch_on_submit=True)  # producers that also hand out at submit time
    # plain processors: the dispatchers below (and the eager submits) are what races here
    processors = [worker.processor(capacity=2, queues=("default",), lease=30.0, dispatch_on_ack=False, scheduler=False)
                  for _ in range(4)]
    for p in processors:
        p.start()

    handed: list[list[tuple[str, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def dispatcher(k: int) -> None:
        sched = make()
        while not stop.is_set():
            got = sched.dispatch(25)
            handed[k] += got
            if not got:
                stop.wait(0.001)

    dispatchers = [threading.Thread(target=dispatcher, args=(k,)) for k in range(4)]
    for t in dispatchers:
        t.start()
    half = TASKS // 2
    handles = producer.submit_many("record", [(i,) for i in range(half)])
    handles += [eager.submit("record", i) for i in range(half, TASKS)]
    try:
        values = [h.result(timeout=60) for h in handles]
    finally:
        stop.set()
        for t in dispatchers:
            t.join()
        for p in processors:
            p.stop(timeout=10)

    assert values == list(range(TASKS))
    assert sorted(runs) == list(range(TASKS)) and set(runs.values()) == {1}, "a task ran twice or never"
    ids = [task_id for part in handed for task_id, _ in part]
    assert len(ids) == len(set(ids)), "dispatch handed a task out twice"
    assert len(ids) >= 1, "the dispatchers never dispatched anything"
    audit = producer.audit()
    assert audit.ok, audit.problems
    assert audit.counts["done"] == TASKS and audit.counts["processors"] == 0
