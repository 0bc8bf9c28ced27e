"""A plain submit goes as a command made once per task name and options (``Submitting._quick``),
with its id and arguments set per call. What it writes is what the general path writes; the
command is made anew when the way of sending changes; one the server refuses unsent (its
functions or scripts flushed) goes the general way, which loads what is missing; a submit given
options, a delay or a unique key goes the general way."""

from __future__ import annotations

from typing import Any

import pytest

import luasched

pytestmark = pytest.mark.parametrize("backend", ["embedded", "real"], indirect=True)


def spied(sched: luasched.Scheduler) -> list[tuple[Any, ...]]:
    """The prebuilt commands ``sched`` sends from now on."""
    sent: list[tuple[Any, ...]] = []
    real = sched.call_prebuilt

    def wrapped(script: str, command: tuple[Any, ...]) -> Any:
        sent.append(command)
        return real(script, command)

    sched.call_prebuilt = wrapped  # type: ignore[method-assign]
    return sent


def record(sched: luasched.Scheduler, task_id: str) -> dict[str, str]:
    """A task's stored fields, without its id-free times."""
    raw = sched.client.hgetall(sched.keys.task(task_id))
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return {k: v for k, v in fields.items() if k not in ("ct", "pt")}


def test_a_plain_submit_goes_prebuilt_and_writes_what_the_general_path_writes(make_sched):
    sched = make_sched()

    @sched.task(queue="reports", max_attempts=5, timeout=30)
    def report(name: str, pages: int = 1) -> str:
        return name * pages

    sched.submit(report, "warm")  # loads the scripts or functions: the general path
    sent = spied(sched)
    quick = [sched.submit(report, "a", 2), sched.submit("report", "b"), sched.submit(report, "c", pages=3)]
    assert len(sent) == 3 and all(h.id in c for c, h in zip(sent, quick, strict=True))
    general = sched.submit(report, "a", 2, _queue="reports")  # an option: the general path
    assert len(sent) == 3
    assert record(sched, quick[0].id) == record(sched, general.id)
    assert record(sched, quick[0].id)["a"] == '["a",2]' and record(sched, quick[2].id)["a"] == \
        '{"args":["c"],"kwargs":{"pages":3}}'
    assert sched.counts()["submitted"] == 5 and sched.queue_lengths() == {"reports": 5}
    sched.submit(report, "later", _delay=60)
    sched.submit(report, "once", _unique_key="k")
    assert len(sent) == 3 and sched.audit().ok


def test_a_refused_prebuilt_submit_goes_the_general_way_and_lands_once(make_sched, backend):
    sched = make_sched()
    sched.submit("job", 1)
    sent = spied(sched)
    if backend == "real":
        sched.client.execute_command("FUNCTION", "FLUSH")
    sched.client.script_flush()
    handle = sched.submit("job", 2)  # refused unsent (function not found or NOSCRIPT), then loaded
    again = sched.submit("job", 3)
    assert len(sent) == 2 and handle.state == again.state == "queued"
    assert sched.counts()["submitted"] == 3 and sched.audit().ok


def test_the_command_follows_dispatch_on_submit(make_sched):
    sched = make_sched()
    proc = sched.processor(capacity=2)
    assert proc.register()
    sent = spied(sched)
    queued = sched.submit("job", 1)
    assert queued.state == "queued"
    sched.dispatch_on_submit = True
    behind = sched.submit("job", 2)  # it places as many as it queues, the queue's head first
    assert len(sent) == 2 and sent[0] != sent[1]
    assert queued.state == "assigned" and behind.state == "queued"
    assert sched.audit().ok
