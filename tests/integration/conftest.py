"""Fixtures the integration tests share: asyncio Schedulers, live threaded processors and loops,
and the command line's APP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import luasched
from luasched import aio
from tests import cli_app
from tests.servers import RedisServer


@pytest.fixture
def make_asched(make_async_client, namespace):
    """Call inside the test's event loop; close with ``await s.client.aclose()``."""

    def make(**kwargs) -> aio.Scheduler:
        kwargs.setdefault("dispatch_on_submit", False)  # as make_sched: placement by explicit calls
        return aio.Scheduler(make_async_client(), namespace=namespace, **kwargs)

    return make


@pytest.fixture
def live(make_sched):
    """Schedulers on server time (no injected clock), stopped loops and processors at the end."""
    started: list = []
    stops: list[tuple[threading.Event, threading.Thread, luasched.Scheduler]] = []

    class Live:
        def sched(self, **kwargs) -> luasched.Scheduler:
            return make_sched(**kwargs)

        def processor(self, sched, **kwargs) -> luasched.Processor:
            p = sched.processor(**kwargs)
            p.start()
            started.append(p)
            return p

        def loop(self, sched) -> None:
            stop = threading.Event()
            t = threading.Thread(target=sched.run, args=(stop,))
            t.start()
            stops.append((stop, t, sched))

    yield Live()
    for stop, t, sched in stops:
        stop.set()
        sched.wake()
        t.join(5)
        assert not t.is_alive(), "the scheduler loop did not stop"
    for p in started:
        p.stop(timeout=5)


@pytest.fixture
def app(namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[luasched.Scheduler]:
    """The APP ``tests.cli_app:sched``, on the embedded server in a namespace of this test only."""
    sched = cli_app.make_app(namespace)
    monkeypatch.setattr(cli_app, "sched", sched)
    yield sched
    sched.purge()


@pytest.fixture
def real(app: luasched.Scheduler, redis_server: RedisServer) -> Iterator[luasched.Scheduler]:
    """The same APP (tasks, namespace) on the session's real redis-server."""
    sched = app.connect(redis_server.url)
    yield sched
    sched.purge()
    sched.close()
