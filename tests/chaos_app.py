"""The APP that chaos tests run in real processor processes (``tests.chaos_app:sched``).

Each run of a task appends its id to CHAOS_DIR/<pid>.log: a record of side effects kept outside
luasched, to count how often each task really ran."""

from __future__ import annotations

import os
import random
import time

import luasched

sched = luasched.Scheduler(namespace=os.environ.get("CHAOS_NAMESPACE", "chaos"))


@sched.task(max_attempts=50, retry_backoff=0.05)
def record(i: int, work_s: float = 0.002) -> int:
    info = luasched.current_task()
    assert info is not None
    path = os.path.join(os.environ["CHAOS_DIR"], f"{os.getpid()}.log")
    with open(path, "a", encoding="ascii") as f:  # one short O_APPEND write per run
        f.write(f"{info.id}\n")
    time.sleep(random.uniform(0, work_s))
    return i


@sched.task(max_attempts=1)
def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@sched.task(max_attempts=3, retry_backoff=0.2)
def fails_first(i: int) -> int:
    """Fails its first attempt (a retry then runs it), succeeds after."""
    info = luasched.current_task()
    assert info is not None
    if info.attempt == 1:
        raise ValueError(f"chunk {i}: corrupt input")
    return i


@sched.task(max_attempts=3)
def stalls_first(seconds: float) -> int:
    """Its first attempt writes this process's pid to CHAOS_DIR/stalled.pid and sleeps (a test then
    kills the process); a later attempt returns its number at once."""
    info = luasched.current_task()
    assert info is not None
    if info.attempt == 1:
        path = os.path.join(os.environ["CHAOS_DIR"], "stalled.pid")
        with open(path + ".tmp", "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)  # a reader sees the whole pid or no file
        time.sleep(seconds)
    return info.attempt


@sched.task(max_attempts=3, retry_backoff=0.05)
def exit_first(code: int) -> int:
    """Its first attempt ends the process it runs in with ``os._exit(code)`` (a thread-pool
    processor, or a pool's child process); a later attempt returns its number."""
    info = luasched.current_task()
    assert info is not None
    if info.attempt == 1:
        os._exit(code)
    return info.attempt


@sched.task(max_attempts=3, retry_backoff=0.05)
def never_first() -> dict[str, object]:
    """Its first attempt never returns; a later attempt returns its number and where it ran."""
    info = luasched.current_task()
    assert info is not None
    while info.attempt == 1:
        time.sleep(3600)
    return {"attempt": info.attempt, "processor": info.processor}


@sched.task(max_attempts=1)
def never() -> None:
    """Never returns."""
    while True:
        time.sleep(3600)


@sched.task
def whereami() -> str:
    """The id of the processor running it."""
    info = luasched.current_task()
    assert info is not None
    return info.processor


@sched.task(max_attempts=3, retry_backoff=0.05)
def collect(results: list[object]) -> list[object]:
    """A chord's callback: appends its id to CHAOS_DIR/<pid>.log (as record does) and returns the
    results it was given."""
    info = luasched.current_task()
    assert info is not None
    with open(os.path.join(os.environ["CHAOS_DIR"], f"{os.getpid()}.log"), "a", encoding="ascii") as f:
        f.write(f"{info.id}\n")
    return results
