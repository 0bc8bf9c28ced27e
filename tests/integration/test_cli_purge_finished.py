"""``luasched purge-finished``: the dead letters deleted after --yes, --older-than and --limit
honoured, bad input exit 2 with nothing deleted; on the embedded server and on a real one."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import ops
from tests.integration.test_cli_admin import APP, cli, ok, refused, run_one
from tests.servers import RedisServer


def dead(sched: luasched.Scheduler, n: int) -> list[str]:
    handles = [sched.submit("boom", f"dead {i}") for i in range(n)]
    run_one(sched, capacity=n)
    assert all(h.state == "failed" for h in handles)
    return [h.id for h in handles]


def test_needs_yes_then_deletes_the_dead_letters(app: luasched.Scheduler) -> None:
    ids = dead(app, 3)
    done = app.submit("add", 1, 2)
    run_one(app)

    refused(cli("purge-finished", APP), "add --yes to go ahead")
    assert app.counts()["failed"] == 3

    result = ok(cli("purge-finished", APP, "--yes"))
    assert result.stdout == f"deleted 3 dead letters of namespace {app.namespace} on memory://\n"
    assert [o.state for o in app.outcomes(ids)] == ["unknown"] * 3
    assert done.state == "done"
    counts = app.counts()
    assert (counts["failed"], counts["purged"], counts["done"]) == (0, 3, 1)
    assert app.audit().ok
    assert ok(cli("purge-finished", APP, "--yes")).stdout.startswith("deleted 0 dead letters ")


def test_older_than_and_limit(app: luasched.Scheduler) -> None:
    ids = dead(app, 3)
    assert ok(cli("purge-finished", APP, "--older-than", "3600", "--yes")).stdout.startswith("deleted 0 dead ")
    assert ok(cli("purge-finished", APP, "--limit", "1", "--yes")).stdout.startswith("deleted 1 dead letter of ")
    assert app.counts()["failed"] == 2
    left = ops.text(app.client.zrange(app.keys.failed, 0, -1))
    assert set(left) < set(ids)


@pytest.mark.parametrize("args, says", [
    (["--older-than", "-1", "--yes"], "--older-than must be a finite number of seconds >= 0.0"),
    (["--older-than", "nan", "--yes"], "--older-than must be a finite number of seconds"),
    (["--older-than", "-1"], "--older-than must be"),  # checked before the missing --yes is said
    (["--limit", "0", "--yes"], "limit must be between 1"),
])
def test_bad_input_is_exit_2_and_deletes_nothing(app: luasched.Scheduler, args: list[str], says: str) -> None:
    dead(app, 1)
    refused(cli("purge-finished", APP, *args), says)
    assert app.counts()["failed"] == 1


def test_on_real_redis(real: luasched.Scheduler, redis_server: RedisServer) -> None:
    ids = dead(real, 2)
    result = ok(cli("purge-finished", "--redis", redis_server.url, "--namespace", real.namespace, "--yes"))
    assert result.stdout == f"deleted 2 dead letters of namespace {real.namespace} on {redis_server.url}\n"
    assert [o.state for o in real.outcomes(ids)] == ["unknown", "unknown"]
    assert real.audit().ok
