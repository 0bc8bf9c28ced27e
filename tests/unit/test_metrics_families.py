"""The metric families of a snapshot (pure), and the docs that list them: the metrics page names
every family, and the Grafana dashboard queries no metric that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from luasched.core.metrics import BOUNDS_MS, Histogram, QueueInfo, Snapshot, histograms
from luasched.metrics import families, render

ROOT = Path(__file__).resolve().parents[2]
VALUES = {"submitted": 9, "done": 4, "failed": 2, "cancelled": 1, "expired": 1, "retried": 3, "recovered": 1,
          "placed": 7, "revived": 1, "purged": 1, "waiting": 0, "queued": 2, "delayed": 0, "assigned": 1, "running": 2,
          "processors": 3, "idle_processors": 1, "lapsed_processors": 1, "capacity": 8, "done_last_minute": 4,
          "failed_last_minute": 1, "now_ms": 10_000}
SNAP = Snapshot("ns", VALUES, {"q": QueueInfo(2, 7_500), "empty": QueueInfo(0, None)},
                {"add": Histogram((1, 0, 2) + (0,) * (len(BOUNDS_MS) - 2), 40)},
                {"q": Histogram((0,) * len(BOUNDS_MS) + (1,), 4_000_000)})


def test_values_derived_from_the_counters():
    found = {(m.name, s.name, tuple(sorted(s.labels.items()))): s.value for m in families(SNAP) for s in m.samples}
    ns = ("namespace", "ns")
    # failed: ever failed after starting = failed now + revived + purged - expired (expired also counts
    # failed): a retried or purged dead letter still counts, the counter never goes down
    assert found[("luasched_tasks_finished", "luasched_tasks_finished_total", (ns, ("outcome", "failed")))] == 3
    assert found[("luasched_processors", "luasched_processors", (ns, ("state", "busy")))] == 1
    assert found[("luasched_slots", "luasched_slots", (ns, ("state", "free")))] == 5
    assert found[("luasched_queue_oldest_age_seconds", "luasched_queue_oldest_age_seconds",
                  (ns, ("queue", "q")))] == 2.5
    assert found[("luasched_queue_oldest_age_seconds", "luasched_queue_oldest_age_seconds",
                  (ns, ("queue", "empty")))] == 0
    buckets = {dict(k[2])["le"]: v for k, v in found.items() if k[1] == "luasched_task_duration_seconds_bucket"}
    assert (buckets["0.005"], buckets["0.01"], buckets["0.025"], buckets["+Inf"]) == (1, 1, 3, 3)
    assert found[("luasched_task_duration_seconds", "luasched_task_duration_seconds_sum", (ns, ("task", "add")))] \
        == 0.04


def test_histograms_read_bucket_and_sum_fields_and_labels_with_colons():
    flat = ["d:0:a:b", "2", "d:16:a:b", "1", "ds:a:b", "9000000", "wq:3:q", "5"]
    assert histograms(flat, "d:", "ds:") == {"a:b": Histogram((2,) + (0,) * 15 + (1,), 9000000)}


def test_the_docs_list_every_metric_and_grafana_asks_for_no_other():
    names = {m.name + ("_total" if m.type == "counter" else "") for m in families(SNAP)}
    page = (ROOT / "docs" / "guides" / "metrics.md").read_text(encoding="utf-8")
    assert {n for n in names if f"`{n}`" not in page} == set()
    exposed = set(re.findall(r"^(luasched_\w+)", render(families(SNAP)).decode(), re.MULTILINE))
    dashboard = json.loads((ROOT / "docs" / "guides" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"luasched_\w+", target["expr"])}
    assert asked and asked <= exposed
