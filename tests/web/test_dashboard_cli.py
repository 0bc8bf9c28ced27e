"""``luasched dashboard``: serves the dashboard of a namespace with uvicorn; bad options are one line."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import luasched
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "luasched", "dashboard", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_admin_without_a_token_is_refused():
    done = run("--redis", "redis://127.0.0.1:1/0", "--namespace", "ns", "--admin")
    assert done.returncode == 2
    assert "--admin needs --token" in done.stderr and "Traceback" not in done.stderr


def test_it_serves_the_namespace_read_only(redis_server, namespace):
    sched = luasched.Scheduler(redis_server.client(), namespace=namespace, dispatch_on_submit=False)
    handle = sched.submit("anything", 1)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "luasched", "dashboard", "--redis", redis_server.url,
                             "--namespace", namespace, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/tasks?state=queued&queue=default",
                                            timeout=5) as page:
                    status, text = page.status, page.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert status == 200 and handle.id in text
        forged = urllib.request.Request(f"http://127.0.0.1:{port}/actions/pause", data=b"queue=default")
        try:
            urllib.request.urlopen(forged, timeout=5)
        except urllib.error.HTTPError as refused:
            assert refused.code == 403
            refused.close()
        else:
            raise AssertionError("a POST to a read-only dashboard was accepted")
        assert sched.paused() == []
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
        sched.purge()
