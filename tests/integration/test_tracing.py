"""OpenTelemetry traces (luasched.tracing): one trace connects a submit to every attempt of its
task, retries included, on both front ends and both servers; with no TracerProvider nothing is
stored and processors send no extra read. The SDK's in-memory exporter collects the spans; the
global provider is never set (other tests must not trace), the module's lookups are patched."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import luasched
from luasched import tracing
from luasched.core.fields import TASK


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(trace, "get_tracer", lambda name, *a, **k: provider.get_tracer(name, *a, **k))
    yield exporter
    provider.shutdown()


def by_name(exporter: InMemorySpanExporter, name: str) -> list:
    return sorted((s for s in exporter.get_finished_spans() if s.name == name), key=lambda s: s.start_time)


def test_one_trace_connects_a_submit_to_each_attempt_across_a_retry(live, spans) -> None:
    sched = live.sched(dispatch_on_submit=True)
    seen: list[int] = []

    @sched.task(retry_backoff=0.05)
    def flaky(x: int) -> int:
        info = luasched.current_task()
        assert info is not None
        seen.append(info.attempt)
        if info.attempt == 1:
            raise ValueError(f"chunk {x}: corrupt input")
        return x

    p = live.processor(sched, capacity=2)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        handle = sched.submit(flaky, 7)
    assert handle.result(timeout=20) == 7 and seen == [1, 2]
    (publish,) = by_name(spans, "default publish")
    first, second = by_name(spans, "default process")
    trace_id = request.get_span_context().trace_id
    assert publish.parent.span_id == request.get_span_context().span_id
    for attempt, span in ((1, first), (2, second)):
        assert span.context.trace_id == trace_id and span.parent.span_id == publish.context.span_id
        assert span.kind == trace.SpanKind.CONSUMER and span.links[0].context.span_id == publish.context.span_id
        assert span.attributes["messaging.system"] == "luasched"
        assert span.attributes["messaging.destination.name"] == "default"
        assert span.attributes["messaging.message.id"] == handle.id
        assert span.attributes["luasched.attempt"] == attempt and span.attributes["luasched.processor"] == p.id
        assert [e.name for e in span.events] == ["placed", "waited"]
    assert first.status.status_code == trace.StatusCode.ERROR and "chunk 7: corrupt input" in first.status.description
    retry_wait = second.events[1].attributes  # the retry's backoff, from the end of the first attempt
    assert retry_wait["luasched.wait.delay_ms"] >= 40 and "luasched.wait.dependencies_ms" not in retry_wait
    assert second.status.status_code == trace.StatusCode.UNSET
    assert publish.kind == trace.SpanKind.PRODUCER and publish.attributes["messaging.message.id"] == handle.id


def waited(exporter: InMemorySpanExporter, task_id: str) -> tuple[dict, dict]:
    """The placed and waited events' (timestamp ns and) attributes of the one span of task_id."""
    (span,) = [s for s in by_name(exporter, "default process") if s.attributes["messaging.message.id"] == task_id]
    placed, wait = span.events
    assert (placed.name, wait.name) == ("placed", "waited")
    return {"at_ns": placed.timestamp, **placed.attributes}, dict(wait.attributes)


def test_the_wait_reason_of_a_delayed_task_and_of_one_behind_a_busy_processor(live, spans) -> None:
    sched = live.sched(dispatch_on_submit=True)
    holding, gate = threading.Event(), threading.Event()

    @sched.task
    def hold() -> None:
        holding.set()
        gate.wait(10)

    @sched.task
    def inc(x: int) -> int:
        return x + 1

    p = live.processor(sched, capacity=1)
    later = sched.submit(inc, 1, _delay=0.3)
    assert later.result(timeout=20) == 2
    placed, wait = waited(spans, later.id)
    assert wait["luasched.wait_reason"] == "delay" and wait["luasched.wait.delay_ms"] >= 250
    assert wait["luasched.wait.delay_ms"] > wait["luasched.wait.queue_ms"] + wait["luasched.wait.inbox_ms"]
    record = sched.task_record(later.id)
    assert placed == {"at_ns": record.placed_ms * 1_000_000, "luasched.processor": p.id}

    busy = sched.submit(hold)
    assert holding.wait(10)
    behind = sched.submit(inc, 2)  # its processor is busy: it waits in its queue
    time.sleep(0.3)
    gate.set()
    assert behind.result(timeout=20) == 3 and busy.result(timeout=20) is None
    placed, wait = waited(spans, behind.id)
    assert wait["luasched.wait_reason"] == "queue" and wait["luasched.wait.queue_ms"] >= 250
    assert "luasched.wait.delay_ms" not in wait and "luasched.wait.dependencies_ms" not in wait
    record = sched.task_record(behind.id)
    assert placed["at_ns"] == record.placed_ms * 1_000_000 >= (record.created_ms + 250) * 1_000_000


def test_the_asyncio_front_end_traces_too(make_asched, spans) -> None:
    async def main() -> None:
        sched = make_asched()

        @sched.task
        async def double(x: int) -> int:
            return 2 * x

        p = sched.processor(capacity=1)
        await p.start()
        try:
            group = await sched.map(double, [(1,), (2,)])
            assert await group.results(timeout=20) == [2, 4]
        finally:
            await p.stop()
            await sched.client.aclose()

    asyncio.run(main())
    (publish,) = by_name(spans, "default publish")
    assert publish.attributes["messaging.batch.message_count"] == 2
    runs = by_name(spans, "default process")
    assert len(runs) == 2 and {s.context.trace_id for s in runs} == {publish.context.trace_id}


def test_without_a_tracer_provider_nothing_is_stored_or_read(live, monkeypatch) -> None:
    assert not tracing.active()  # the default, proxy provider: tracing is off

    def no_read(*args: object) -> None:
        raise AssertionError("a processor read trace facts with tracing off")

    monkeypatch.setattr(tracing, "read", no_read)
    sched = live.sched(dispatch_on_submit=True)

    @sched.task
    def inc(x: int) -> int:
        return x + 1

    live.processor(sched, capacity=1)
    handle = sched.submit(inc, 1)
    assert handle.result(timeout=20) == 2
    assert sched.client.hget(sched.keys.task(handle.id), TASK.trace) is None
