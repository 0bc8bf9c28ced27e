"""An APP for the CLI tests: ``tests.cli_app:sched`` (tests swap in one on a fresh namespace)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import luasched

#: Keys ``flaky`` has already failed for: it fails the first time it sees a key, then succeeds.
FLAKY_SEEN: set[str] = set()
#: ``hold(key)`` runs until ``gate(key)`` is set (at most 30 s), so a test can see it running.
GATES: dict[str, threading.Event] = {}


def gate(key: str) -> threading.Event:
    return GATES.setdefault(key, threading.Event())


def make_app(namespace: str, clock: Callable[[], float] | None = None) -> luasched.Scheduler:
    """A Scheduler on the embedded server with the tasks the CLI tests submit."""
    app = luasched.Scheduler(namespace=namespace, clock=clock)

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(max_attempts=1)
    def boom(message: str) -> None:
        raise RuntimeError(message)

    @app.task(max_attempts=1)
    def flaky(key: str) -> str:
        if key not in FLAKY_SEEN:
            FLAKY_SEEN.add(key)
            raise RuntimeError(f"first try of {key} fails")
        return f"{key} ok"

    @app.task(queue="slow")
    def hold(key: str) -> str:
        gate(key).wait(30)
        return key

    return app


sched = make_app("cli-app")
not_a_scheduler = "just a string"
