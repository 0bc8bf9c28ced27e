"""The dashboard's routes through Starlette's TestClient on both backends: every page renders
what Redis holds, bad input is a 400 or 404 page, and read-only means nothing is written."""

from __future__ import annotations

import re

import anyio
import fakeredis
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import luasched
import luasched.aio
import luasched.metrics
from luasched.web import create_app, stop_streams
from luasched.web.reads import PAGE_SIZE, Source
from tests.scripts.util import ack, error_json, start

TOKEN = "s3cret-token"


def register(sched):
    @sched.task(max_attempts=1)
    def add(a, b):
        return a + b

    return add


@pytest.fixture
def busy(sched):
    """A queued, a delayed and a failed task, a group, a schedule and a registered processor."""
    register(sched)
    p = sched.processor(capacity=2, queues=("work",), lease=600)
    assert p.register()
    queued = sched.submit("add", 1, 2)
    late = sched.submit("add", 3, 4, _delay=60)
    dead = sched.submit("add", 5, 6, _queue="work")
    assert sched.dispatch()
    ran = start(sched, p.id).task
    assert ran.id == dead.id
    ack(sched, p.id, ran, "error", error_json("no sum today"))
    group = sched.map("add", [(1, 1), (2, 2)], queue="later")
    sched.schedule("nightly", "add", (1, 1), cron="0 3 * * *")
    return {"queued": queued, "late": late, "dead": dead, "group": group, "proc": p}


def client(sched, **kwargs):
    return TestClient(create_app(sched, **kwargs))


def test_every_page_shows_what_redis_holds(sched, busy):
    c = client(sched)
    overview = c.get("/")
    assert overview.status_code == 200
    assert re.search(r'data-count="failed">1<', overview.text)
    assert 'data-queue="later">2<' in overview.text
    assert re.search(r'data-oldest="later">[0-9.]+[smh]<', overview.text)  # its head's age
    assert 'data-oldest="work">-<' in overview.text  # an empty queue has no head
    assert "maxmemory-policy" in overview.text
    assert re.search(r'>later</a></td><td>2</td><td>[0-9.]+[smh]</td>', c.get("/queues").text)
    assert busy["proc"].id in c.get("/processors").text
    assert busy["queued"].id in c.get("/tasks?state=queued&queue=default").text
    assert busy["late"].id in c.get("/tasks?state=delayed").text
    assert busy["dead"].id in c.get("/tasks?state=failed&page=1").text
    detail = c.get(f"/tasks/{busy['dead'].id}")
    assert detail.status_code == 200 and "no sum today" in detail.text and "ValueError" in detail.text
    assert "[5, 6]" in detail.text
    why = sched.explain(busy["late"].id)
    assert why.text and why.text in c.get(f"/tasks/{busy['late'].id}").text.replace("&#39;", "'")
    failed = c.get("/failed").text
    assert busy["dead"].id in failed and "no sum today" in failed
    group = c.get(f"/groups/{busy['group'].id}")
    assert group.status_code == 200 and "0 of 2 finished" in group.text
    assert "nightly" in c.get("/schedules").text
    assert c.get("/audit-log").status_code == 200
    assert "Sign in" not in overview.text  # read-only: no sign-in either


def test_a_retried_tasks_timeline_shows_both_attempts_and_the_first_error(sched, clock):
    register(sched)
    p = sched.processor(capacity=1, lease=600)
    assert p.register()
    h = sched.submit("add", 1, 2, _max_attempts=2, _retry_backoff=1)
    sched.dispatch()
    first = start(sched, p.id).task
    clock.advance(1)
    ack(sched, p.id, first, "error", error_json("flaky upstream"))
    clock.advance(1)
    sched.dispatch()
    second = start(sched, p.id).task
    ack(sched, p.id, second, "done", "3")
    page = client(sched).get(f"/tasks/{h.id}").text
    rows = re.findall(r'<tr data-event="([a-z ]+)"><td>([^<]+)</td><td>[a-z ]+</td><td>([^<]+)</td><td>([^<]*)</td>',
                      page)
    assert [r[0] for r in rows] == ["created", "placed", "started", "ended", "retry due", "placed", "started",
                                    "finished"]
    assert [(r[2], r[3]) for r in rows if r[0] in ("started", "ended")] == [
        (p.id, "attempt 1"), (p.id, "attempt 1 error, retried (ValueError: flaky upstream)"), (p.id, "attempt 2")]
    assert rows[0][1] == "2023-11-14 22:13:20.000" and rows[3][1] == "2023-11-14 22:13:21.000"


def test_unknown_ids_are_404_pages(sched, busy):
    c = client(sched)
    for url in ("/tasks/no-such-task", "/tasks/bad%20id", "/groups/no-such-group", "/nowhere"):
        r = c.get(url)
        assert r.status_code == 404, url
        assert "Not found" in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", "page=1.5", "state=done", "state=bogus"])
def test_bad_listings_are_400(sched, busy, query):
    r = client(sched).get(f"/tasks?{query}")
    assert r.status_code == 400
    assert "Bad request" in r.text


def test_tasks_are_paged_over_the_queue(sched):
    register(sched)
    ids = [h.id for h in sched.submit_many("add", [(i, i) for i in range(PAGE_SIZE + 3)])]
    c = client(sched)
    first, second = c.get("/tasks?state=queued&queue=default"), c.get("/tasks?state=queued&queue=default&page=2")
    assert [i for i in ids if f">{i}<" in first.text] == ids[:PAGE_SIZE]
    assert [i for i in ids if f">{i}<" in second.text] == ids[PAGE_SIZE:]
    assert "page=2" in first.text and "page=3" not in second.text


def test_events_send_the_counts(sched, busy):
    r = client(sched).get("/events?once=1")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("event: counts\ndata: ")
    assert '"failed": 1' in r.text and '"later": 2' in r.text


def test_read_only_offers_no_action_and_refuses_every_post(sched, busy):
    c = client(sched)
    for url in ("/", "/queues", "/failed", "/schedules", f"/tasks/{busy['dead'].id}"):
        assert "/actions/" not in c.get(url).text, url
    for what in ("retry-failed", "cancel", "pause", "resume", "trigger", "purge-finished"):
        r = c.post(f"/actions/{what}", data={"task_id": busy["dead"].id, "queue": "default", "name": "nightly",
                                             "confirm": "yes"},
                   headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403, what
    assert sched.outcome(busy["dead"].id).state == "failed"
    assert sched.counts()["purged"] == 0
    assert sched.paused() == []
    assert sched.client.xlen(sched.keys.audit_log) == 0


def test_admin_actions_need_the_token(sched, busy):
    c = client(sched, admin=True, token=TOKEN)
    assert "/actions/" not in c.get("/failed").text  # not signed in: no buttons
    form = {"task_id": busy["dead"].id}
    assert c.post("/actions/retry-failed", data=form).status_code == 401
    assert c.post("/actions/retry-failed", data=form, headers={"authorization": "Bearer wrong"}).status_code == 403
    purge = {"confirm": "yes"}
    assert c.post("/actions/purge-finished", data=purge).status_code == 401
    assert c.post("/actions/purge-finished", data=purge, headers={"authorization": "Bearer wrong"}).status_code == 403
    c.cookies.set("luasched_token", TOKEN)
    assert c.post("/actions/retry-failed", data=form).status_code == 403  # the cookie without the csrf field
    assert c.post("/actions/purge-finished", data=purge).status_code == 403
    assert c.post("/login", data={"token": "wrong"}).status_code == 403
    assert sched.outcome(busy["dead"].id).state == "failed"
    assert sched.counts()["purged"] == 0
    assert sched.client.xlen(sched.keys.audit_log) == 0


def test_a_signed_in_admin_purges_the_dead_letters_and_it_is_logged(sched, busy, clock):
    c = client(sched, admin=True, token=TOKEN)
    assert c.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    page = c.get("/failed").text
    assert 'data-action="purge-finished"' in page and 'name="older_than"' in page
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    refused = [{"csrf": csrf, "older_than": "-1", "confirm": "yes"}, {"csrf": csrf, "older_than": "soon",
                                                                      "confirm": "yes"},
               {"csrf": csrf, "older_than": "nan", "confirm": "yes"}, {"csrf": csrf, "older_than": "0"}]
    for form in refused:
        assert c.post("/actions/purge-finished", data=form).status_code == 400, form
    assert sched.counts()["failed"] == 1 and sched.client.xlen(sched.keys.audit_log) == 0

    form = {"csrf": csrf, "older_than": "60", "confirm": "yes", "next": "/failed"}
    r = c.post("/actions/purge-finished", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/failed")
    assert sched.counts()["failed"] == 1  # it failed less than a minute ago
    clock.advance(61)
    assert c.post("/actions/purge-finished", data=form, follow_redirects=False).status_code == 303
    counts = sched.counts()
    assert (counts["failed"], counts["purged"]) == (0, 1)
    assert sched.outcome(busy["dead"].id).state == "unknown"
    assert sched.audit().ok
    entries = [{k.decode(): v.decode() for k, v in e.items()} for _, e in sched.client.xrange(sched.keys.audit_log)]
    assert [(e["what"], e["target"], e["count"]) for e in entries] == [
        ("purge-finished", "older than 60 s", "0"), ("purge-finished", "older than 60 s", "1")]
    assert "purge-finished" in c.get("/audit-log").text


def test_a_signed_in_admin_retries_and_it_is_logged(sched, busy):
    c = client(sched, admin=True, token=TOKEN)
    assert c.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    page = c.get("/failed").text
    assert 'data-action="retry-failed"' in page
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    r = c.post("/actions/retry-failed", data={"task_id": busy["dead"].id, "csrf": csrf, "next": "/failed"},
               follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/failed")
    assert sched.outcome(busy["dead"].id).state in ("queued", "assigned")
    log = c.get("/audit-log").text
    assert "retry-failed" in log and busy["dead"].id in log


def test_every_action_goes_through_the_api(sched, busy):
    c = client(sched, admin=True, token=TOKEN)
    c.headers["authorization"] = f"Bearer {TOKEN}"
    assert c.post("/actions/pause", data={"queue": "later"}).status_code == 200  # followed to /
    assert [p.queue for p in sched.paused()] == ["later"]
    assert c.post("/actions/resume", data={"queue": "later"}).status_code == 200
    assert sched.paused() == []
    assert c.post("/actions/cancel", data={"task_id": busy["late"].id}).status_code == 200
    assert sched.outcome(busy["late"].id).state == "cancelled"
    assert c.post("/actions/trigger", data={"name": "nightly"}).status_code == 200
    assert sched.schedules()[0].runs == 1
    assert c.post("/actions/trigger", data={"name": "no-such"}).status_code == 404
    assert c.post("/actions/cancel", data={}).status_code == 400
    assert c.post("/actions/pause", data={"next": "https://elsewhere.example/"}, follow_redirects=False
                  ).headers["location"] == "/"
    entries = [{k.decode(): v.decode() for k, v in e.items()} for _, e in sched.client.xrange(sched.keys.audit_log)]
    assert [(e["what"], e["target"], e["count"]) for e in entries] == [
        ("pause", "later", "1"), ("resume", "later", "1"), ("cancel", busy["late"].id, "1"),
        ("trigger", "nightly", "1"), ("pause", "*", "1")]
    assert all(e["who"] and int(e["at_ms"]) > 0 for e in entries)


def test_admin_needs_a_token_to_be_made(sched):
    with pytest.raises(ValueError, match="token"):
        create_app(sched, admin=True)


def test_a_redis_outage_is_a_banner_not_a_traceback():
    dead = fakeredis.FakeServer(version=(7, 0))
    sched = luasched.Scheduler(fakeredis.FakeRedis(server=dead), namespace="outage")
    dead.connected = False
    c = TestClient(create_app(sched))
    for url in ("/", "/queues", "/tasks?state=failed", "/failed", "/schedules"):
        r = c.get(url)
        assert r.status_code == 503, url
        assert 'class="banner"' in r.text and "Redis is unavailable" in r.text and "Traceback" not in r.text
    assert c.get("/events?once=1").text == "event: outage\ndata: {}\n\n"


def test_pages_read_from_read_redis():
    """Reads go to the replica: a replica that holds other tasks than the primary shows those (a
    second, different embedded server stands for the replica)."""
    replica = fakeredis.FakeServer(version=(7, 0))
    other = luasched.Scheduler(fakeredis.FakeRedis(server=replica), namespace="reads", dispatch_on_submit=False)
    register(other)
    on_replica = other.submit("add", 1, 1)
    primary = luasched.Scheduler(fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0))),
                                 namespace="reads", read_redis=fakeredis.FakeRedis(server=replica))
    register(primary)
    on_primary = primary.submit("add", 2, 2)
    page = TestClient(create_app(primary)).get("/tasks?state=queued&queue=default").text
    assert on_replica.id in page and on_primary.id not in page


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_metrics_is_the_prometheus_exposition_of_the_namespace(sched, busy):
    got = client(sched).get("/metrics")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
    found = samples(got.text)
    ns = ("namespace", sched.namespace)
    assert found[("luasched_tasks_submitted_total", (ns,))] == 5
    assert found[("luasched_tasks_finished_total", (ns, ("outcome", "failed")))] == 1
    assert found[("luasched_tasks", (ns, ("state", "delayed")))] == 1
    assert got.text.encode() == luasched.metrics.exposition(sched)  # what `luasched metrics` prints


def test_an_asyncio_scheduler_serves_the_same_pages(redis_server_or_none, namespace):
    sched = luasched.aio.Scheduler(redis_server_or_none.url if redis_server_or_none else None,
                                   namespace=namespace, dispatch_on_submit=False)
    register(sched)

    with TestClient(create_app(sched, admin=True, token=TOKEN)) as c:
        c.portal.call(sched.submit, "add", 1, 2)
        assert 'data-queue="default">1<' in c.get("/").text
        failed = c.get("/tasks?state=failed")
        assert failed.status_code == 200 and "no task on this page" in failed.text
        assert c.get("/tasks/nope").status_code == 404
        assert ("luasched_tasks_submitted_total", (("namespace", namespace),)) in samples(c.get("/metrics").text)
        c.headers["authorization"] = f"Bearer {TOKEN}"
        assert c.post("/actions/pause", data={"queue": "default"}).status_code == 200
        assert [p.queue for p in c.portal.call(sched.paused)] == ["default"]
        c.portal.call(sched.purge)
        c.portal.call(sched.close)


@pytest.fixture
def redis_server_or_none(backend, request):
    return request.getfixturevalue("redis_server") if backend == "real" else None


def test_a_queue_kept_in_lanes_says_so(sched):
    register(sched)
    urgent = sched.submit("add", 1, 1, _queue="prio", _priority=2)
    page = client(sched).get("/tasks?state=queued&queue=prio").text
    assert urgent.id not in page and "1 queued" in page and "lanes" in page
    assert client(sched).get(f"/tasks/{urgent.id}").status_code == 200  # found by id


def test_events_push_only_changes_and_end_when_told(sched, clock):
    register(sched)
    source = Source(sched)
    quiet = anyio.run(source.snapshot)
    clock.advance(5)
    assert anyio.run(source.snapshot) == quiet  # nothing changed, nothing to send (the clock is no change)
    sched.submit("add", 1, 1)
    assert anyio.run(source.snapshot) != quiet
    app = create_app(sched)
    with TestClient(app) as c, c.stream("GET", "/events") as r:
        lines = r.iter_lines()
        assert next(lines).startswith("event: counts")
        stop_streams(app)
        rest = list(lines)  # the stream ends at its next turn
    assert not any(line.startswith("event:") for line in rest)


def test_it_mounts_under_a_path(sched, busy):
    outer = Starlette(routes=[Mount("/ops/luasched", app=create_app(sched, admin=True, token=TOKEN))])
    c = TestClient(outer)
    overview = c.get("/ops/luasched/")
    assert overview.status_code == 200
    assert 'href="/ops/luasched/queues"' in overview.text and 'src="/ops/luasched/static/live.js"' in overview.text
    assert c.get("/ops/luasched/static/live.js").status_code == 200
    assert c.get("/ops/luasched/tasks/no-such").status_code == 404
    c.headers["authorization"] = f"Bearer {TOKEN}"
    failed = c.get("/ops/luasched/failed").text
    assert 'action="/ops/luasched/actions/retry-failed"' in failed
    assert 'name="next" value="/ops/luasched/failed"' in failed
    r = c.post("/ops/luasched/actions/retry-failed", data={"task_id": busy["dead"].id, "next": "/ops/luasched/failed"},
               follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/ops/luasched/failed")
    assert sched.outcome(busy["dead"].id).state != "failed"
    found = c.get("/ops/luasched/lookup", params={"id": busy["late"].id}, follow_redirects=False)
    assert found.headers["location"] == f"/ops/luasched/tasks/{busy['late'].id}"
    r = c.post("/ops/luasched/actions/pause", data={"next": "//elsewhere.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/ops/luasched/"


def test_processors_show_their_inbox(sched):
    register(sched)
    p = sched.processor(capacity=3, queues=("inq",), lease=600, labels={"zone": "eu"})
    assert p.register()
    first, second = sched.submit_many("add", [(1, 1), (2, 2)], queue="inq")
    assert len(sched.dispatch()) == 2
    running = start(sched, p.id).task
    waiting = second if running.id == first.id else first
    page = client(sched).get("/processors").text
    assert f">{running.id}</a> running" in page and f">{waiting.id}</a> pending" in page
    assert "zone=eu" in page and "2 / 3" in page
