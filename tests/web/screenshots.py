"""Take the docs' screenshots of the dashboard (docs/img/dashboard/*.png) with the browser tests'
chromium, over a private redis-server with a small workload:

    .venv/bin/python -m tests.web.screenshots
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from luasched.web import create_app
from tests.servers import free_port, start_redis
from tests.web.test_dashboard_browser import CHROMIUM, TOKEN, make_app

OUT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard"


def main() -> int:
    server = start_redis()
    try:
        sched = make_app(server.client(), "shop")
        proc = sched.processor(capacity=4, lease=30, labels={"zone": "eu-west-1"})
        proc.start()
        handles = sched.submit_many("add", [(i, i) for i in range(40)])
        for h in handles:
            h.result(timeout=15)
        failed = sched.submit("flaky", "invoice-17")
        failed.outcome()
        time.sleep(1)
        sched.schedule("nightly-report", "add", (1, 2), cron="0 3 * * *")
        sched.submit_many("add", [(i, 1) for i in range(12)], queue="emails", delay=600)
        sched.submit_many("add", [(i, 2) for i in range(7)], queue="reports")
        group = sched.map("add", [(i, i) for i in range(5)])
        group.results(timeout=15)
        port = free_port()
        web = uvicorn.Server(uvicorn.Config(create_app(sched, admin=True, token=TOKEN), host="127.0.0.1",
                                            port=port, log_level="warning", timeout_graceful_shutdown=1))
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        while not web.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(base + "/login")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            shots = {"overview": "/", "queues": "/queues", "processors": "/processors",
                     "tasks": "/tasks?state=delayed", "failed": "/failed", "task": f"/tasks/{failed.id}",
                     "group": f"/groups/{group.id}", "schedules": "/schedules", "audit-log": "/audit-log"}
            for name, url in shots.items():
                page.goto(base + url)
                if url == "/":
                    page.wait_for_function("document.getElementById('live-state').textContent.startsWith('updated')")
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            browser.close()
        web.should_exit = True
        thread.join(timeout=10)
        proc.stop(timeout=10)
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
