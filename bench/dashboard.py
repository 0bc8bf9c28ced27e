"""Does the dashboard slow down with history? The overview and a task listing rendered over a
namespace with few and with many finished tasks (issue 20: a million must cost what a thousand do).

    .venv/bin/python bench/dashboard.py [--few 1000] [--many 1000000] [--renders 200]

Starts its own redis-server on a free loopback port, finishes --few tasks (one in FAIL_EVERY fails:
a dead letter) through a running processor, renders each page --renders times through
Starlette's TestClient (in process, no network), then finishes tasks up to --many and renders
again (--few leaves more than a page of dead letters: both listings are full). Prints, per page,
the median render time and the Redis commands one render runs (INFO commandstats, which also
counts the commands run inside scripts). Results go to bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.testclient import TestClient  # noqa: E402

import luasched  # noqa: E402
from luasched.web import create_app  # noqa: E402
from tests.servers import start_redis  # noqa: E402

PAGES = ("/", "/tasks?state=failed", "/tasks?state=queued&queue=default", "/failed", "/processors")


#: One task in this many fails (one attempt): dead letters grow with the history, as they do.
FAIL_EVERY = 10


def finish(sched: luasched.Scheduler, n: int, first: int = 0) -> None:
    """Run tasks ``first`` .. ``first + n - 1`` to their end, in chunks, through one processor: each
    is done but one in FAIL_EVERY, which fails (a dead letter)."""
    proc = sched.processor(capacity=16, lease=60)
    proc.start()
    try:
        for start in range(first, first + n, 5000):
            handles = sched.submit_many("work", [(i,) for i in range(start, min(start + 5000, first + n))])
            for h in handles:
                with contextlib.suppress(luasched.TaskFailed):
                    h.result(timeout=600)
    finally:
        proc.stop(timeout=30)


def commands(client: object) -> int:
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def renders(sched: luasched.Scheduler, client: object, count: int) -> dict[str, dict[str, float]]:
    web = TestClient(create_app(sched))
    out = {}
    for url in PAGES:
        assert web.get(url).status_code == 200  # loads the scripts the page uses
        before = commands(client)
        assert web.get(url).status_code == 200
        per_render = commands(client) - before
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            web.get(url)
            times.append(time.perf_counter() - t0)
        out[url] = {"median_ms": round(statistics.median(times) * 1000, 2), "commands": per_render}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=1000)
    parser.add_argument("--many", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("luasched").setLevel(logging.ERROR)  # not a line per dead letter
    server = start_redis()
    try:
        client = server.client()
        sched = luasched.Scheduler(server.client(), namespace="bench")

        @sched.task(max_attempts=1)
        def work(i: int) -> None:
            if i % FAIL_EVERY == 0:
                raise ValueError(f"task {i} fails, as one in {FAIL_EVERY} does")

        finish(sched, args.few)
        few = renders(sched, client, args.renders)
        t0 = time.perf_counter()
        finish(sched, args.many - args.few, first=args.few)
        filled_s = time.perf_counter() - t0
        many = renders(sched, client, args.renders)
        counts = sched.counts()
        done, failed = counts["done"], counts["failed"]
        memory = client.info("memory")["used_memory_human"]
    finally:
        server.cleanup()
    result = {"few": args.few, "many": args.many, "done_at_end": done, "failed_at_end": failed,
              "used_memory": memory, "fill_s": round(filled_s, 1),
              "pages": {url: {"few": few[url], "many": many[url]} for url in PAGES}}
    print(f"{'page':40} {'ms @' + str(args.few):>12} {'ms @' + str(args.many):>14} {'cmds':>6} {'cmds':>6}")
    for url in PAGES:
        a, b = few[url], many[url]
        print(f"{url:40} {a['median_ms']:12} {b['median_ms']:14} {a['commands']:6} {b['commands']:6}")
    out = ROOT / "bench" / "results" / "dashboard.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
