"""Submit rate of concurrent producers: one coroutine submitting one task at a time, and many
coroutines submitting at once (a service's request handlers), whose submits share script calls;
with --threads the same for the threads of one process on the sync Scheduler.

    .venv/bin/python bench/async_submit.py --tasks 5000 --concurrency 1,10,100 --repeat 3
    .venv/bin/python bench/async_submit.py --no-coalesce     # every submit a call of its own
    .venv/bin/python bench/async_submit.py --threads --concurrency 1,4,16 [--no-coalesce]

A private redis-server (never 6379); tasks/s, the median of the runs; "calls" counts the submit
script calls sent (so tasks per call shows how much the concurrent submits shared).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import luasched  # noqa: E402
from luasched import aio  # noqa: E402
from tests.servers import start_redis  # noqa: E402


async def one_run(url: str, tasks: int, concurrency: int, coalesce: bool) -> tuple[float, int]:
    s = aio.Scheduler(url, namespace="bench-async")
    await s.client.flushdb()
    calls = 0
    real = s._submit

    async def counted(news, group):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await real(news, group)

    s._submit = counted  # type: ignore[method-assign]
    if not coalesce:  # every submit its own call (concurrent calls on several pooled connections)
        async def alone(new):  # type: ignore[no-untyped-def]
            await s._submit([new], "")

        s._coalescer.submit = alone  # type: ignore[method-assign]
    await s.submit("noop")  # scripts loaded, connection made
    calls = 0

    async def producer(n: int) -> None:
        for _ in range(n):
            await s.submit("noop")

    t = time.perf_counter()
    await asyncio.gather(*(producer(tasks // concurrency) for _ in range(concurrency)))
    rate = tasks // concurrency * concurrency / (time.perf_counter() - t)
    await s.close()
    return rate, calls


def thread_run(url: str, tasks: int, concurrency: int, coalesce: bool) -> tuple[float, int]:
    s = luasched.Scheduler(url, namespace="bench-threads")
    s.client.flushdb()
    calls = 0
    lock = threading.Lock()
    real = s._submit

    def counted(news, group):  # type: ignore[no-untyped-def]
        nonlocal calls
        with lock:
            calls += 1
        return real(news, group)

    s._submit = counted  # type: ignore[method-assign]
    if not coalesce:  # every submit its own call, from its own thread
        s._coalescer.submit = lambda new: s._submit([new], "")  # type: ignore[method-assign,assignment]
    s.submit("noop")
    calls = 0
    barrier = threading.Barrier(concurrency + 1)

    def producer(n: int) -> None:
        barrier.wait()
        for _ in range(n):
            s.submit("noop")

    threads = [threading.Thread(target=producer, args=(tasks // concurrency,)) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    rate = tasks // concurrency * concurrency / (time.perf_counter() - began)
    s.close()
    return rate, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,10,100")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-coalesce", action="store_true",
                        help="send every submit in a call of its own (what it was before sharing)")
    parser.add_argument("--threads", action="store_true",
                        help="producer threads on the sync Scheduler instead of coroutines")
    args = parser.parse_args()
    server = start_redis()
    try:
        for c in (int(x) for x in args.concurrency.split(",")):
            if args.threads:
                runs = [thread_run(server.url, args.tasks, c, not args.no_coalesce) for _ in range(args.repeat)]
            else:
                runs = [asyncio.run(one_run(server.url, args.tasks, c, not args.no_coalesce))
                        for _ in range(args.repeat)]
            rate = statistics.median(r for r, _ in runs)
            calls = statistics.median(n for _, n in runs)
            print(f"concurrency {c:>4}: {rate:>9,.0f} tasks/s, {calls:,.0f} script calls "
                  f"({args.tasks / calls:.1f} tasks per call)", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
