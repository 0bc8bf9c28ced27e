"""A task cannot wedge its processor: whatever it raises (SystemExit, KeyboardInterrupt,
GeneratorExit, a CancelledError of its own) fails that attempt, named in the error, and the slot
goes on to the next task. On both front ends, on the embedded and the real server."""

from __future__ import annotations

import asyncio

import pytest

import luasched

RAISED = {
    "exit": (SystemExit, "SystemExit"),
    "exit3": (lambda: SystemExit(3), "SystemExit"),
    "interrupt": (KeyboardInterrupt, "KeyboardInterrupt"),
    "generator_exit": (GeneratorExit, "GeneratorExit"),
    "error": (lambda: RuntimeError("plain"), "RuntimeError"),
}


def _raiser(kind: str) -> BaseException:
    make, _ = RAISED[kind]
    return make()


def _check(sched, handles: dict, after, own_cancel=None) -> None:
    """Each hostile task failed with its exception named; the task after them ran."""
    if own_cancel is not None:
        with pytest.raises(luasched.TaskFailed) as failed:
            own_cancel.result(timeout=20)
        assert failed.value.error_type == "CancelledError"
    for kind, h in handles.items():
        with pytest.raises(luasched.TaskFailed) as failed:
            h.result(timeout=20)
        assert failed.value.error_type == RAISED[kind][1]
        if RAISED[kind][1] != "RuntimeError":
            assert "a task cannot stop its processor" in failed.value.message
    assert after.result(timeout=20) == "still here", "the slot went on to the next task"
    counts = sched.counts()
    assert counts["running"] == 0 and counts["failed"] == len(handles) + (own_cancel is not None)
    assert sched.audit().ok


def test_a_thread_slot_survives_whatever_its_task_raises(make_sched):
    sched = make_sched(dispatch_on_submit=True)

    @sched.task(max_attempts=1)
    def hostile(kind: str) -> None:
        raise _raiser(kind)

    @sched.task
    def fine() -> str:
        return "still here"

    p = sched.processor(capacity=1)  # one slot: every task goes through the same thread
    p.start()
    try:
        handles = {kind: sched.submit(hostile, kind) for kind in RAISED}
        _check(sched, handles, sched.submit(fine))
        assert p.running
    finally:
        p.stop(timeout=5)


def test_an_asyncio_slot_survives_whatever_its_task_raises(make_asched, make_sched):
    watcher = make_sched()

    async def main() -> None:
        sched = make_asched(dispatch_on_submit=True)

        @sched.task(max_attempts=1)
        async def hostile(kind: str) -> None:
            if kind == "cancelled":
                raise asyncio.CancelledError("the task's own")
            raise _raiser(kind)

        @sched.task
        async def fine() -> str:
            return "still here"

        p = sched.processor(capacity=1)
        await p.start()
        try:
            ids = {kind: (await sched.submit(hostile, kind)).id for kind in (*RAISED, "cancelled")}
            own_cancel = watcher.handle(ids.pop("cancelled"))
            after = watcher.handle((await sched.submit(fine)).id)
            handles = {kind: watcher.handle(i) for kind, i in ids.items()}
            await asyncio.to_thread(_check, watcher, handles, after, own_cancel)
            assert p.running
        finally:
            await p.stop(timeout=5)
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_ctrl_c_in_the_main_thread_still_stops_process_available(make_sched):
    """By hand, in the main thread, a KeyboardInterrupt is the user's Ctrl-C: it stops the call
    (the task is left to its lease), it is not swallowed as a task failure."""
    sched = make_sched()

    @sched.task
    def interrupted() -> None:
        raise KeyboardInterrupt

    p = sched.processor(capacity=1)
    assert p.register()
    sched.submit(interrupted)
    sched.dispatch()
    with pytest.raises(KeyboardInterrupt):
        p.process_available()
    assert sched.counts()["running"] == 1
    p.deregister()
