"""The example service in examples/service.py, driven through its ASGI interface."""

from __future__ import annotations

import json
import os
import uuid

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

TEXTS = ["the quick brown fox", "jumps over", "the extraordinarily lazy dog", ""]


def load_service(monkeypatch, redis_url: str | None, processors: str | None):
    """examples.service as uvicorn would import it, with this environment."""
    if redis_url is None:
        monkeypatch.delitem(os.environ, "LUASCHED_REDIS_URL", raising=False)
    else:
        monkeypatch.setitem(os.environ, "LUASCHED_REDIS_URL", redis_url)
    if processors is None:
        monkeypatch.delitem(os.environ, "EMBEDDED_PROCESSORS", raising=False)
    else:
        monkeypatch.setitem(os.environ, "EMBEDDED_PROCESSORS", processors)
    monkeypatch.setitem(os.environ, "LUASCHED_NAMESPACE", f"svc-{uuid.uuid4().hex[:8]}")
    import importlib

    import examples.service as module

    return importlib.reload(module)  # a fresh Scheduler in a fresh namespace, in this loop


@pytest.fixture(params=["embedded", "real"])
def service(monkeypatch, request):
    """embedded: started with no environment at all (its own two processor slots); real: on
    LUASCHED_REDIS_URL with two slots in this process (processors apart work the same way)."""
    if request.param == "real":
        module = load_service(monkeypatch, request.getfixturevalue("redis_server").url, "2")
    else:
        module = load_service(monkeypatch, None, None)
    with TestClient(module.app) as client:
        yield client


def test_on_the_embedded_server_with_no_processor_it_refuses_to_start(monkeypatch):
    """Nothing could ever run its tasks: it says so at startup instead of answering 202 forever."""
    module = load_service(monkeypatch, None, "0")
    assert module.sched.embedded
    with pytest.raises(RuntimeError, match="LUASCHED_REDIS_URL=redis://"), TestClient(module.app):
        pass


def test_on_redis_it_runs_no_processor_of_its_own(monkeypatch, redis_server):
    module = load_service(monkeypatch, redis_server.url, None)
    assert not module.sched.embedded and module.embedded_processors() == 0


def test_submit_a_batch_and_get_the_summary(service):
    created = service.post("/analyses", json={"texts": TEXTS})
    assert created.status_code == 202
    body = created.json()
    assert body["tasks"] == 4
    summary = service.get(f"/analyses/{body['id']}/summary", params={"wait": 20})
    assert summary.status_code == 200
    assert summary.json() == {"texts": 4, "analysed": 4, "failed": 0, "words": 10, "mean_words": 2.5,
                              "longest_word": "extraordinarily"}
    progress = service.get(f"/analyses/{body['id']}").json()
    assert progress == {"total": 4, "done": 4, "failed": 0, "cancelled": 0, "pending": 0}


def test_progress_streams_one_event_per_text(service):
    group_id = service.post("/analyses", json={"texts": TEXTS}).json()["id"]
    events = []
    with service.stream("GET", f"/analyses/{group_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and line != "data: {}":
                events.append(json.loads(line[len("data: "):]))
    assert sorted(e["finished"] for e in events) == [1, 2, 3, 4]
    assert sorted(e["result"]["words"] for e in events) == [0, 2, 4, 4]
    assert all(e["total"] == 4 and e["state"] == "done" for e in events)


def test_bad_input_and_unknown_ids(service):
    assert service.post("/analyses", json={"texts": []}).status_code == 422
    assert service.post("/analyses", json={"texts": [1, 2]}).status_code == 422
    assert service.get("/analyses/nope").status_code == 404
    assert service.get("/analyses/nope/summary").status_code == 404
