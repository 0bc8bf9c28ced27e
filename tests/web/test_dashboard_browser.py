"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright) against a
real redis-server with a processor at work: live counts over SSE, a failed task's traceback, a
retry by an admin, the read-only mode, and no request leaving the dashboard's host."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import luasched
from luasched.web import create_app, stop_streams
from tests.servers import free_port

playwright_api = pytest.importorskip("playwright.sync_api")
import uvicorn  # noqa: E402  (after the skip: the browser tests need the test extras)

pytestmark = [pytest.mark.browser, pytest.mark.real_redis]

CHROMIUM = os.environ.get("LUASCHED_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-token"
SEEN: set[str] = set()


def make_app(client: Any, namespace: str) -> luasched.Scheduler:
    sched = luasched.Scheduler(client, namespace=namespace)

    @sched.task
    def add(a: int, b: int) -> int:
        return a + b

    @sched.task(max_attempts=1)
    def flaky(key: str) -> str:
        if key not in SEEN:
            SEEN.add(key)
            raise RuntimeError(f"first try of {key} fails")
        return f"{key} ok"

    return sched


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("LUASCHED_REQUIRE_REAL_REDIS"):
            pytest.fail(f"no chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def work(redis_server: Any, namespace: str) -> Iterator[luasched.Scheduler]:
    """A Scheduler on the real server with a processor (and its scheduler loop) running."""
    sched = make_app(redis_server.client(), namespace)
    proc = sched.processor(capacity=2, lease=30)
    proc.start()
    yield sched
    proc.stop(timeout=10)
    sched.purge()


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Serve an app with uvicorn on a free loopback port in a thread; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread, Any]] = []

    def start(app: Any) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread, app))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread, app in servers:
        stop_streams(app)
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    found = context.new_page()
    found.set_default_timeout(15_000)
    yield found
    context.close()


def failed_task(sched: luasched.Scheduler, key: str) -> luasched.TaskHandle:
    handle = sched.submit("flaky", key)
    with pytest.raises(luasched.TaskFailed):
        handle.result(timeout=15)
    return handle


def test_the_overview_counts_change_live_through_sse(work, serve, page):
    base = serve(create_app(work))
    page.goto(base + "/")
    assert page.inner_text('[data-count="done"]') == "0"
    page.wait_for_function("document.getElementById('live-state').textContent.startsWith('updated')")
    page.evaluate("window.notReloaded = true")
    handles = work.submit_many("add", [(i, i) for i in range(3)])
    assert [h.result(timeout=15) for h in handles] == [0, 2, 4]
    page.wait_for_function("document.querySelector('[data-count=\"done\"]').textContent === '3'")
    assert page.evaluate("window.notReloaded") is True  # the same document: updated by SSE, not a reload


def test_a_failed_task_shows_its_traceback_and_an_admin_retries_it(work, serve, page):
    handle = failed_task(work, "retry-me")
    base = serve(create_app(work, admin=True, token=TOKEN))
    page.goto(f"{base}/tasks/{handle.id}")
    assert page.inner_text("#task-state") == "failed"
    traceback = page.inner_text("#traceback")
    assert "Traceback" in traceback and "RuntimeError: first try of retry-me fails" in traceback
    assert page.locator("button[data-action]").count() == 0  # not signed in yet

    page.goto(f"{base}/login")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.goto(f"{base}/tasks/{handle.id}")
    page.click("button[data-action=retry-failed]")
    page.wait_for_url(f"{base}/tasks/{handle.id}")
    assert handle.result(timeout=15) == "retry-me ok"
    page.reload()
    assert page.inner_text("#task-state") == "done"
    assert "retry-me ok" in page.inner_text("#result")
    rows = page.locator("#timeline tr[data-event]")
    assert [rows.nth(i).get_attribute("data-event") for i in range(rows.count())] == [
        "created", "placed", "started", "ended", "revived", "placed", "started", "finished"]
    assert "RuntimeError: first try of retry-me fails" in page.inner_text('#timeline tr[data-event="ended"]')
    page.goto(f"{base}/audit-log")
    assert "retry-failed" in page.inner_text("main") and handle.id in page.inner_text("main")


def test_an_admin_purges_the_dead_letters_from_the_failed_page(work, serve, page):
    handles = [failed_task(work, f"purge-me-{i}") for i in range(2)]
    base = serve(create_app(work, admin=True, token=TOKEN))
    page.goto(f"{base}/login")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.goto(f"{base}/failed")
    page.fill("input[name=older_than]", "3600")
    page.click("button[data-action=purge-finished]")  # the confirmation is not ticked: the browser refuses
    assert page.url == f"{base}/failed" and work.counts()["failed"] == 2
    assert work.client.xlen(work.keys.audit_log) == 0
    page.check("input[name=confirm]")
    page.click("button[data-action=purge-finished]")
    page.wait_for_url(f"{base}/failed")
    assert work.counts()["failed"] == 2  # none failed an hour ago
    page.fill("input[name=older_than]", "0")
    page.check("input[name=confirm]")
    page.click("button[data-action=purge-finished]")
    page.wait_for_url(f"{base}/failed")
    assert "no dead letter" in page.inner_text("main")
    assert [o.state for o in work.outcomes([h.id for h in handles])] == ["unknown", "unknown"]
    assert work.audit().ok
    page.goto(f"{base}/audit-log")
    log = page.inner_text("main")
    assert "purge-finished" in log and "older than 3600 s" in log


def test_read_only_offers_no_action_and_a_forged_post_writes_nothing(work, serve, page):
    handle = failed_task(work, "stays-failed")
    base = serve(create_app(work))
    for url in ("/", "/queues", "/failed", "/schedules", f"/tasks/{handle.id}"):
        page.goto(base + url)
        assert page.locator("button[data-action], form[action*='/actions/']").count() == 0, url
    statuses = page.evaluate("""async (id) => {
        const out = [];
        for (const what of ['retry-failed', 'purge-finished']) {
            const body = new URLSearchParams({task_id: id, confirm: 'yes'});
            const r = await fetch('/actions/' + what, {method: 'POST', body: body});
            out.push(r.status);
        }
        return out;
    }""", handle.id)
    assert statuses == [403, 403]
    assert work.outcome(handle.id).state == "failed"
    assert work.client.xlen(work.keys.audit_log) == 0


def test_pages_ask_nothing_of_any_other_host(work, serve, page):
    handle = failed_task(work, "elsewhere")
    base = serve(create_app(work, admin=True, token=TOKEN))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{base}/login")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    for url in ("/", "/queues", "/processors", "/tasks?state=failed", f"/tasks/{handle.id}", "/failed",
                "/schedules", "/audit-log"):
        page.goto(base + url)
        page.wait_for_load_state("networkidle") if url != "/" else page.wait_for_function(
            "document.getElementById('live-state').textContent.startsWith('updated')")
    assert asked and all(u.startswith(base + "/") for u in asked), [u for u in asked if not u.startswith(base)]
    assert any(u.endswith("/static/live.js") for u in asked) and any(u.endswith("/events") for u in asked)
