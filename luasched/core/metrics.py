"""The metrics' snapshot (lua/metrics.lua) and the histograms the scripts keep (lua/lib/metrics.lua),
sans I/O: the call, the decoded reply, the bucket bounds and the per-minute history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import METRIC
from .ops import Call, Namespace, _now, text

#: The upper bounds of the histograms' buckets, ms (the last bucket, +Inf, has no bound).
#: lua/lib/metrics.lua holds the same list (a test compares).
BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000)
#: How long a minute's copy of the histograms' totals lives, s: an hour of history, plus the
#: minute itself and a minute of slack.
KEEP_S = 3720

#: The counters of the stats the snapshot reads, by their names in the reply.
COUNTERS = ("submitted", "done", "failed", "cancelled", "expired", "retried", "recovered", "placed", "revived",
            "purged")
#: The places a task can be in while it has not finished, as the gauge ``luasched_tasks`` labels them.
PLACES = ("waiting", "queued", "delayed", "assigned", "running")


def metrics(ns: Namespace, now_ms: int | None) -> Call:
    return ns.call("metrics", ns.prefix, _now(now_ms))


@dataclass(frozen=True)
class Histogram:
    """One histogram's series for one label: counts per bucket (not cumulative; the last is +Inf)
    and the sum of the values, ms."""

    counts: tuple[int, ...]
    sum_ms: int

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class QueueInfo:
    depth: int
    oldest_ms: int | None  # when its oldest queued task became ready (None: empty)


@dataclass(frozen=True)
class Snapshot:
    """What one read of a namespace gives the metrics: its counters and gauges (``values``: the
    reply's names, see lua/metrics.lua), its queues, and its histograms by label."""

    namespace: str
    values: dict[str, int]
    queues: dict[str, QueueInfo]
    durations: dict[str, Histogram] = field(default_factory=dict)  # by task name
    waits: dict[str, Histogram] = field(default_factory=dict)  # by queue

    @property
    def now_ms(self) -> int:
        return self.values["now_ms"]

    def oldest_age_s(self, queue: str) -> float:
        """How long the oldest queued task of ``queue`` has been ready, s (0 when it is empty)."""
        oldest = self.queues[queue].oldest_ms
        return 0.0 if oldest is None else max(0, self.now_ms - oldest) / 1000


def histograms(flat: list[str], bucket_prefix: str, sum_prefix: str) -> dict[str, Histogram]:
    """The histograms of one kind in a flat HGETALL of ``mt`` (or of a minute's key: no sums)."""
    counts: dict[str, list[int]] = {}
    sums: dict[str, int] = {}
    for i in range(0, len(flat), 2):
        name, value = flat[i], int(flat[i + 1])
        if name.startswith(sum_prefix):
            sums[name[len(sum_prefix):]] = value
        elif name.startswith(bucket_prefix):
            bucket, _, label = name[len(bucket_prefix):].partition(":")
            counts.setdefault(label, [0] * (len(BOUNDS_MS) + 1))[int(bucket)] += value
    return {label: Histogram(tuple(counts.get(label, [0] * (len(BOUNDS_MS) + 1))), sums.get(label, 0))
            for label in sorted(set(counts) | set(sums))}


def decode_metrics(namespace: str, reply: Any) -> Snapshot:
    flat, queues, totals = text(reply)
    values = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
    return Snapshot(
        namespace, values,
        {queues[i]: QueueInfo(int(queues[i + 1]), int(queues[i + 2]) if queues[i + 2] != "" else None)
         for i in range(0, len(queues), 3)},
        histograms(totals, METRIC.duration, METRIC.duration_sum),
        histograms(totals, METRIC.wait, METRIC.wait_sum),
    )


@dataclass(frozen=True)
class Minute:
    """What the histograms counted between two copies of their totals (lua/lib/metrics.lua): from
    the copy of minute ``since`` to the copy of minute ``minute`` (one apart unless a minute had no
    reap), by task name (durations) and by queue (waits)."""

    minute: int  # ms // 60000
    since: int
    durations: dict[str, Histogram]
    waits: dict[str, Histogram]

    @property
    def start_ms(self) -> int:
        return self.minute * 60000


def _minus(now: dict[str, Histogram], before: dict[str, Histogram]) -> dict[str, Histogram]:
    out = {}
    for label, h in now.items():
        old = before.get(label, Histogram((0,) * len(h.counts), 0))
        diff = Histogram(tuple(a - b for a, b in zip(h.counts, old.counts, strict=True)), h.sum_ms - old.sum_ms)
        if diff.count:
            out[label] = diff
    return out


def minutes(copies: list[tuple[int, list[str]]]) -> list[Minute]:
    """The per-minute history from the copies of the totals (minute, flat HGETALL of ``m:<minute>``),
    oldest first; an empty copy (expired, or no reap in that minute) is skipped."""
    present = [(m, flat) for m, flat in sorted(copies) if flat]
    parsed = [(m, histograms(flat, METRIC.duration, METRIC.duration_sum),
               histograms(flat, METRIC.wait, METRIC.wait_sum)) for m, flat in present]
    return [Minute(m, before[0], _minus(d, before[1]), _minus(w, before[2]))
            for before, (m, d, w) in zip(parsed, parsed[1:], strict=False)]
