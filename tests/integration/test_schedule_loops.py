"""Three scheduler loops (threads, and on a real server a process too) fire an every=1 schedule
for about ten seconds, by the server's clock, its cadence changed to every=2 half-way while they
run: each tick's task exists exactly once, none is missing and none is extra. The one long test
of schedules (real time)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import luasched
from luasched.core import ops

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SECONDS = 10

CHILD = """
import sys, threading, luasched
sched = luasched.Scheduler(sys.argv[1], namespace=sys.argv[2])
stop = threading.Event()
threading.Timer(float(sys.argv[3]), stop.set).start()
sched.run(stop, max_wait=0.2)
"""


def test_three_loops_fire_every_tick_exactly_once(backend, make_client, namespace, request):
    make = lambda: luasched.Scheduler(make_client(), namespace=namespace)  # noqa: E731
    sched = make()

    @sched.task
    def tick() -> None:
        return None

    first = sched.schedule("beat", tick, every=1, overlap="allow", catchup=5).next_ms
    stop = threading.Event()
    loops = [make() for _ in range(3 if backend == "embedded" else 2)]
    threads = [threading.Thread(target=s.run, args=(stop,), kwargs={"max_wait": 0.2}) for s in loops]
    child = None
    if backend == "real":  # the third loop in a process of its own
        url = request.getfixturevalue("redis_server").url
        child = subprocess.Popen([sys.executable, "-c", CHILD, url, namespace, str(SECONDS)])
    for t in threads:
        t.start()
    time.sleep(SECONDS / 2)
    second = sched.schedule("beat", tick, every=2, overlap="allow", catchup=5).next_ms  # while they run
    time.sleep(SECONDS / 2)
    stop.set()
    for s in loops:
        s.wake()
    for t in threads:
        t.join(timeout=30)
    if child is not None:
        assert child.wait(timeout=30) == 0
    info = sched.schedule_info("beat")
    ids = list(ops.text(sched.client.lrange(sched.keys.queue("default"), 0, -1)))
    assert len(set(ids)) == len(ids), "a tick fired twice"
    times = sorted(int(i.split("@")[1]) for i in ids)
    before = [t for t in times if t < second]
    assert before == list(range(first, before[-1] + 1, 1000)) and before[-1] >= second - 3000, "a tick is missing"
    assert [t for t in times if t >= second] == list(range(second, info.next_ms, 2000)), "a tick is missing"
    expected = times
    assert len(expected) >= SECONDS * 3 // 4 - 2
    assert (info.runs, info.missed, info.skipped) == (len(expected), 0, 0)
    assert sched.audit().ok
