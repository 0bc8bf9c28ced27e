"""Prometheus metrics of a namespace, from one read of Redis (lua/metrics.lua), with prometheus_client.

    from luasched import metrics
    families = metrics.collect(sched)            # prometheus_client metric families
    text = metrics.exposition(sched)             # the text format, as /metrics serves it
    registry.register(metrics.Collector(sched))  # or scraped by your own registry

The counters and histograms are kept in Redis by the scripts, so every processor and every exporter
reads the same figures (docs/guides/metrics.md lists them all). Collecting costs O(queues + lanes of
queues in lanes mode + processors + task names and queues times buckets), never O(tasks).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector as _Collector
from prometheus_client.registry import CollectorRegistry

from ._async.scheduler import Scheduler as AsyncScheduler
from ._sync.scheduler import Scheduler
from .core.calls import Command
from .core.metrics import BOUNDS_MS, PLACES, Histogram, Minute, Snapshot, decode_metrics, minutes
from .core.metrics import metrics as metrics_call

__all__ = ["Collector", "collect", "collect_async", "exposition", "families", "history", "history_async", "snapshot",
           "snapshot_async"]

#: The bucket bounds of the histograms, as Prometheus's ``le`` labels (seconds).
LE = tuple(f"{ms / 1000:g}" for ms in BOUNDS_MS) + ("+Inf",)


def snapshot(sched: Scheduler) -> Snapshot:
    """One read of ``sched``'s namespace: what the metrics show (lua/metrics.lua)."""
    return decode_metrics(sched.namespace, sched.call(metrics_call(sched.ns, sched.now_ms())))


async def snapshot_async(sched: AsyncScheduler) -> Snapshot:
    """snapshot() for an asyncio Scheduler."""
    return decode_metrics(sched.namespace, await sched.call(metrics_call(sched.ns, sched.now_ms())))


def _copies(sched: Scheduler | AsyncScheduler, now_ms: int, span: int) -> tuple[list[int], Command]:
    if not 1 <= span <= 60:
        raise ValueError(f"history: minutes must be 1..60, not {span!r}")
    current = now_ms // 60000
    wanted = list(range(current - span, current + 1))  # one copy more: the first minute's start
    return wanted, Command("pipeline", tuple(("hgetall", (sched.keys.metrics_minute(m),)) for m in wanted))


def _flat(reply: dict[Any, Any]) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for kv in reply.items() for x in kv]


def history(sched: Scheduler, now_ms: int, minutes_back: int = 60) -> list[Minute]:
    """What the histograms counted in each of the last ``minutes_back`` minutes (at most 60: the
    copies live an hour), from the copies the first reap of each minute keeps; ``now_ms``: the
    server's time, e.g. ``snapshot(sched).now_ms``. O(minutes) reads, one round trip."""
    wanted, command = _copies(sched, now_ms, minutes_back)
    replies = sched._send(command, sched.reads.reader())
    return minutes([(m, _flat(r)) for m, r in zip(wanted, replies, strict=True)])


async def history_async(sched: AsyncScheduler, now_ms: int, minutes_back: int = 60) -> list[Minute]:
    """history() for an asyncio Scheduler."""
    wanted, command = _copies(sched, now_ms, minutes_back)
    replies = await sched._send(command, sched.reads.reader())
    return minutes([(m, _flat(r)) for m, r in zip(wanted, replies, strict=True)])


def _counter(name: str, doc: str, ns: str, value: int) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["namespace"])
    family.add_metric([ns], value)
    return family


def _by(name: str, doc: str, label: str, ns: str, values: Iterable[tuple[str, float]],
        kind: type[CounterMetricFamily] | type[GaugeMetricFamily] = GaugeMetricFamily) -> Metric:
    family = kind(name, doc, labels=["namespace", label])
    for key, value in values:
        family.add_metric([ns, key], value)
    return family


def _histogram(name: str, doc: str, label: str, ns: str, series: dict[str, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["namespace", label])
    for key, h in series.items():
        total, buckets = 0, []
        for le, n in zip(LE, h.counts, strict=True):
            total += n
            buckets.append((le, float(total)))
        family.add_metric([ns, key], buckets, h.sum_ms / 1000)
    return family


def families(snap: Snapshot) -> list[Metric]:
    """The metric families of one snapshot (pure: no Redis)."""
    v, ns = snap.values, snap.namespace
    # ever failed, expired ones apart: dead letters now, and those retried or purged since
    failed = v["failed"] + v["revived"] + v["purged"] - v["expired"]
    busy = v["processors"] - v["idle_processors"] - v["lapsed_processors"]
    used = v["assigned"] + v["running"]
    return [
        _counter("luasched_tasks_submitted", "Tasks created by submits.", ns, v["submitted"]),
        _by("luasched_tasks_finished", "Tasks that finished, by outcome (expired: never started by their deadline).",
            "outcome", ns, [("done", v["done"]), ("failed", failed), ("cancelled", v["cancelled"]),
                            ("expired", v["expired"])], CounterMetricFamily),
        _counter("luasched_tasks_retried", "Attempts that ended without success and were retried.", ns, v["retried"]),
        _counter("luasched_tasks_recovered", "Tasks reap took back from lapsed processors or past their timeout.",
                 ns, v["recovered"]),
        _counter("luasched_dispatch_placed", "Tasks placed on a processor by dispatch, at submit or on ack.", ns,
                 v["placed"]),
        _by("luasched_tasks", "Tasks not finished, by where they are.", "state", ns, [(s, v[s]) for s in PLACES]),
        _by("luasched_queue_depth", "Tasks queued, by queue.", "queue", ns,
            [(q, info.depth) for q, info in snap.queues.items()]),
        _by("luasched_queue_oldest_age_seconds", "How long the oldest queued task of a queue has been ready.",
            "queue", ns, [(q, snap.oldest_age_s(q)) for q in snap.queues]),
        _by("luasched_processors", "Registered processors: idle (a free slot), busy (full), lapsed (lease lapsed).",
            "state", ns, [("idle", v["idle_processors"]), ("busy", busy), ("lapsed", v["lapsed_processors"])]),
        _by("luasched_slots", "Slots of live processors: used (tasks assigned or running) and free.", "state", ns,
            [("free", max(0, v["capacity"] - used)), ("used", used)]),
        _by("luasched_tasks_finished_last_minute", "Tasks finished in the last minute (10 s buckets).", "outcome",
            ns, [("done", v["done_last_minute"]), ("failed", v["failed_last_minute"])]),
        _histogram("luasched_task_duration_seconds", "How long attempts ran, by task name.", "task", ns,
                   snap.durations),
        _histogram("luasched_queue_wait_seconds", "How long tasks waited from ready to their first start, by queue.",
                   "queue", ns, snap.waits),
    ]


def collect(sched: Scheduler) -> list[Metric]:
    """The metric families of ``sched``'s namespace, from one read of Redis."""
    return families(snapshot(sched))


async def collect_async(sched: AsyncScheduler) -> list[Metric]:
    """collect() for an asyncio Scheduler."""
    return families(await snapshot_async(sched))


class Collector(_Collector):
    """A prometheus_client collector: each scrape reads the namespace once."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched

    def collect(self) -> Iterator[Metric]:
        yield from collect(self.sched)


def render(found: Iterable[Metric]) -> bytes:
    """The Prometheus text format of metric families, written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(found)))
    return generate_latest(registry)


class _Fixed(_Collector):
    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        yield from self.found


def exposition(sched: Scheduler) -> bytes:
    """The Prometheus text exposition of ``sched``'s namespace (what /metrics serves)."""
    return render(collect(sched))
