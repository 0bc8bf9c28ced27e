"""OpenTelemetry traces, with the optional extra ``luasched[otel]`` (opentelemetry-api).

A submit made while tracing is on (the API is installed and an SDK TracerProvider is set) records
a PRODUCER span ``<queue> publish`` and stores its context with each task it creates (the W3C
``traceparent``, in the task record). A processor then runs each attempt in a CONSUMER span
``<queue> process``, the child of that context and linked to it, so that one trace connects the
submit to every attempt, retries included. Attributes follow the messaging semantic conventions:
``messaging.system`` = ``luasched``, ``messaging.destination.name`` = the queue,
``messaging.operation.name`` / ``.type``, ``messaging.message.id`` = the task id; and
``luasched.attempt``, ``luasched.processor``. The consumer span has two events: ``placed``, at the
time the attempt was placed on its processor (``luasched.processor``), and ``waited``: how long it
waited between its submit and this start (``luasched.wait_ms``), that wait by phase
(``luasched.wait.dependencies_ms``, ``.delay_ms``, ``.queue_ms``, ``.inbox_ms``: those that apply;
core/timeline ``wait_of``) and ``luasched.wait_reason``, the phase that held it longest
(``dependencies``: created -> ready, waiting for its parents; ``delay``: submitted with a delay,
or a retry's backoff; ``queue``: ready -> placed, no free processor or held by a policy; ``inbox``:
placed -> started; ``none``: it did not wait). A retry's phases start when its previous attempt
ended. The finer cause of a queue hold (which limiter, a pause, a label no processor has) is not
kept once the task has moved on: ``Scheduler.explain`` says it while the task waits. A failed
attempt sets the span's status to ERROR with the error's type and message.

Without the extra, or without a TracerProvider, nothing is recorded and nothing is read: ``active``
is False, submits carry no context, and processors send no extra read. That check is all it costs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any

from .core.fields import TASK
from .core.ops import Command, Namespace, NewTask, text
from .core.tasks import Started, decode_error
from .core.timeline import Facts as RecordFacts
from .core.timeline import decode_attempts, wait_of

try:  # the optional extra luasched[otel]
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    propagate = trace = None  # type: ignore[assignment]

#: The instrumentation scope's name.
SCOPE = "luasched"

#: What a consumer span needs of one task: its stored context, queue, and its record's times
#: (created, ready, placed, started), parents and attempt log.
Facts = tuple[str, str, RecordFacts]

#: The task record's fields a consumer span reads, in the order decode_read takes them.
READ = (TASK.trace, TASK.queue, TASK.created_ms, TASK.started_ms, TASK.ready_ms, TASK.placed_ms, TASK.parents,
        TASK.attempts_log)


def active() -> bool:
    """True when the OpenTelemetry API is installed and a TracerProvider was set (an SDK's): the
    default, proxy provider records nothing, so luasched then does nothing either."""
    return trace is not None and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _attributes(queue: str, operation: str, task_id: str | None = None) -> dict[str, Any]:
    kind = "process" if operation == "process" else "send"
    found: dict[str, Any] = {"messaging.system": "luasched", "messaging.destination.name": queue,
                             "messaging.operation.name": operation, "messaging.operation.type": kind}
    if task_id is not None:
        found["messaging.message.id"] = task_id
    return found


def stamped(news: Sequence[NewTask]) -> list[NewTask]:
    """``news`` with the context of a PRODUCER span (one per call, ``<queue> publish``, the child
    of the current span) to store with each task; ``news`` themselves when tracing is off."""
    if not news or not active() or all(n.trace for n in news):  # (coalesced submits were stamped each)
        return list(news)
    queue = news[0].options.queue
    attributes = _attributes(queue, "publish", news[0].id if len(news) == 1 else None)
    attributes["messaging.batch.message_count"] = len(news)
    tracer = trace.get_tracer(SCOPE)
    with tracer.start_as_current_span(f"{queue} publish", kind=trace.SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    stored = json.dumps(carrier, separators=(",", ":"), sort_keys=True)
    return [n if n.trace else _with_trace(n, stored) for n in news]


def _with_trace(new: NewTask, stored: str) -> NewTask:
    return replace(new, trace=stored)


def read(ns: Namespace, tasks: Sequence[Started]) -> Command:
    """One read of what a consumer span needs of each task: its stored context, queue, when it was
    created, ready, placed and started, its parents and attempt log (a pipeline of HMGETs)."""
    return Command("pipeline", tuple(("hmget", (ns.keys.task(t.id), *READ)) for t in tasks))


def decode_read(replies: Sequence[Any], tasks: Sequence[Started]) -> list[Facts]:
    """The facts of each task read (``tasks``: the attempts started, in the order ``read`` took)."""
    out = []
    for reply, task in zip(replies, tasks, strict=True):
        stored, queue, created, started, ready, placed, parents, log = text(reply)
        record = RecordFacts("running", task.attempt, int(created or 0), int(ready or 0), int(placed or 0),
                             int(started or 0), 0, "", "", parents or "", decode_attempts(log))
        out.append((stored or "", queue or "default", record))
    return out


#: What an attempt runs in when tracing is off: no span, a status setter that does nothing.
_NO_SPAN: AbstractContextManager[Callable[[str, str], None]] = nullcontext(lambda outcome, payload: None)


def consumer_span(task: Started, pid: str, facts: Facts | None) -> AbstractContextManager[Callable[[str, str], None]]:
    """The CONSUMER span one attempt runs in (nothing when ``facts`` is None: tracing is off, and
    the attempt pays one check). Yields a callable that takes the attempt's (outcome, payload) to
    set the span's status."""
    if facts is None or trace is None:
        return _NO_SPAN
    return _span(task, pid, facts)


@contextmanager
def _span(task: Started, pid: str, facts: Facts) -> Iterator[Callable[[str, str], None]]:
    stored, queue, record = facts
    parent = propagate.extract(json.loads(stored)) if stored else None
    links = []
    if parent is not None:
        remote = trace.get_current_span(parent).get_span_context()
        if remote.is_valid:
            links.append(trace.Link(remote))
    attributes = _attributes(queue, "process", task.id) | {"luasched.attempt": task.attempt,
                                                            "luasched.processor": pid}
    tracer = trace.get_tracer(SCOPE)
    with tracer.start_as_current_span(f"{queue} process", context=parent, kind=trace.SpanKind.CONSUMER,
                                      links=links, attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as span:
        span.add_event("placed", {"luasched.processor": pid},
                       timestamp=record.placed_ms * 1_000_000 if record.placed_ms else None)
        wait = wait_of(record)
        if record.created_ms and wait is not None:
            waited: dict[str, str | int] = {"luasched.wait_ms": max(0, record.started_ms - record.created_ms),
                                            "luasched.wait_reason": wait.reason}
            waited |= {f"luasched.wait.{phase}_ms": ms for phase, ms in wait.phases.items()}
            span.add_event("waited", waited)

        def ended(outcome: str, payload: str) -> None:
            if outcome != "done":
                error = decode_error(payload)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{error['type']}: {error['message']}"))
                span.set_attribute("error.type", error["type"])

        yield ended
