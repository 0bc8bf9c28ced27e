"""``luasched metrics`` prints the exposition Prometheus's parser reads; ``luasched status`` shows the
same snapshot's oldest ages and rates. On the embedded server and on the session's real redis-server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import luasched
from tests import cli_app
from tests.conftest import FakeClock
from tests.integration.test_cli_admin import APP, cli, ok, raw_cli, refused
from tests.servers import RedisServer


@pytest.fixture(params=["embedded", "real"])
def target(request: pytest.FixtureRequest, namespace: str, clock: FakeClock,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[luasched.Scheduler, list[str]]]:
    """The APP on a FakeClock, on one backend, and the CLI arguments that reach it there."""
    app = cli_app.make_app(namespace, clock=clock)
    monkeypatch.setattr(cli_app, "sched", app)
    if request.param == "embedded":
        yield app, ["--redis", "memory://"]
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    real = app.connect(server.url)
    yield real, ["--redis", server.url]
    real.purge()
    real.close()


def _workload(sched: luasched.Scheduler, clock: FakeClock) -> None:
    """One task done, one failed (its only attempt), one left queued on an unserved queue for 3 s."""
    sched.submit("add", 1, 2)
    sched.submit("boom", "no")
    p = sched.processor(capacity=2, queues=("default",))
    p.register()
    sched.dispatch()
    assert p.process_available() == 2
    p.deregister()
    sched.submit("hold", "never-run")  # queue "slow": nobody serves it
    clock.advance(3)


def test_metrics_prints_the_exposition(target: tuple[luasched.Scheduler, list[str]], clock: FakeClock) -> None:
    sched, where = target
    _workload(sched, clock)

    text = ok(cli("metrics", APP, *where)).stdout

    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    ns = ("namespace", sched.namespace)
    assert found[("luasched_tasks_submitted_total", (ns,))] == 3
    assert found[("luasched_tasks_finished_total", (ns, ("outcome", "done")))] == 1
    assert found[("luasched_tasks_finished_total", (ns, ("outcome", "failed")))] == 1
    assert found[("luasched_dispatch_placed_total", (ns,))] == 2
    assert found[("luasched_task_duration_seconds_count", (ns, ("task", "boom")))] == 1
    assert found[("luasched_queue_wait_seconds_count", (ns, ("queue", "default")))] == 2
    assert found[("luasched_queue_oldest_age_seconds", (ns, ("queue", "slow")))] == 3.0
    assert found[("luasched_tasks", (ns, ("state", "queued")))] == 1
    assert "# TYPE luasched_task_duration_seconds histogram" in text


def test_status_shows_oldest_ages_and_rates(target: tuple[luasched.Scheduler, list[str]],
                                            clock: FakeClock) -> None:
    sched, where = target
    _workload(sched, clock)

    shown = json.loads(ok(cli("status", APP, *where, "--json")).stdout)
    tables = ok(cli("status", APP, *where)).stdout

    assert shown["oldest_age_s"] == {"default": 0.0, "slow": 3.0}
    assert shown["per_minute"] == {"done": 1, "failed": 1}
    assert re.search(r"^[│|] slow +[│|] +1 [│|] +3\.0 s [│|]", tables, re.MULTILINE), tables
    assert re.search(r"^last minute +1 done, 1 failed$", tables, re.MULTILINE), tables


def test_metrics_bad_input_is_one_line_exit_2() -> None:
    refused(raw_cli("metrics", "--redis", "redis://127.0.0.1:1/0", "--namespace", "x"), "cannot reach Redis")
    refused(raw_cli("metrics"), "give APP (module:attribute), or --redis URL and --namespace NS")
