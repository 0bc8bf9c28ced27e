"""No dashboard page grows with the history: on a real redis-server (its INFO commandstats count
every command, those run by scripts too) each page runs exactly the same commands with 30 and
with 330 finished tasks behind it, and never SCAN or KEYS."""

from __future__ import annotations

from collections import Counter

import pytest
from starlette.testclient import TestClient

import luasched
from luasched.web import create_app

pytestmark = pytest.mark.real_redis

PAGES = ("/", "/queues", "/processors", "/tasks?state=queued&queue=default", "/tasks?state=delayed",
         "/tasks?state=failed", "/failed", "/schedules", "/audit-log", "/events?once=1")


def commands(redis_server) -> Counter[str]:
    stats = redis_server.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
                    if not name.startswith("cmdstat_info") and not name.startswith("cmdstat_config")})


def page_costs(redis_server, sched) -> dict[str, Counter[str]]:
    c = TestClient(create_app(sched))
    costs = {}
    for url in PAGES:
        before = commands(redis_server)
        assert c.get(url).status_code == 200, url
        costs[url] = commands(redis_server) - before
    return costs


def finish(sched, n):
    proc = sched.processor(capacity=4, lease=30)
    proc.start()
    try:
        handles = sched.submit_many("add", [(i, i) for i in range(n)])
        assert [h.result(timeout=30) for h in handles] == [2 * i for i in range(n)]
    finally:
        proc.stop(timeout=10)


def test_no_page_grows_with_the_finished_tasks(redis_server, namespace):
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace)

    @sched.task
    def add(a, b):
        return a + b

    finish(sched, 30)
    sched.submit("add", 1, 1, _queue="unserved")
    page_costs(redis_server, sched)  # the first visit loads the scripts it uses
    few = page_costs(redis_server, sched)
    finish(sched, 300)
    many = page_costs(redis_server, sched)
    sched.purge()
    for url in PAGES:
        assert many[url] == few[url], url
        assert not {"scan", "keys"} & set(many[url]), url
    assert sum(few["/"].values()) > 0  # the counts are taken where the page is read
