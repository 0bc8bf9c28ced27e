"""Fixtures: every test that can runs on the embedded server and on a private real redis-server."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio

import luasched
from tests.servers import RedisServer, real_redis_required, redis_server_path, start_redis

BACKENDS = ("embedded", "real")
_names = itertools.count()


class FakeClock:
    """An injected clock: tests move time by hand with ``advance``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session (never 6379). Skipped without redis-server,
    unless LUASCHED_REQUIRE_REAL_REDIS is set (CI): then its absence fails the run."""
    if redis_server_path() is None:
        message = "redis-server is not on PATH: the real-Redis half of the tests cannot run"
        if real_redis_required():
            pytest.fail(message + " (LUASCHED_REQUIRE_REAL_REDIS is set)")
        pytest.skip(message)
    server = start_redis()
    yield server
    server.cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "real":
        request.node.add_marker(pytest.mark.real_redis)
    return str(request.param)


@pytest.fixture
def fake_server(backend: str) -> fakeredis.FakeServer | None:
    """This test's own embedded server (None on the real backend)."""
    return fakeredis.FakeServer(version=(7, 0)) if backend == "embedded" else None


@pytest.fixture
def make_client(fake_server: fakeredis.FakeServer | None,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Factory of clients to this test's server: a fresh FakeServer, or the session's redis-server."""
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("protocol", 2)  # what luasched's own clients speak; a test may ask for 3
        if fake_server is not None:
            client = fakeredis.FakeRedis(server=fake_server, **kwargs)
        else:
            server = request.getfixturevalue("redis_server")
            client = server.client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_async_client(fake_server: fakeredis.FakeServer | None,
                      request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Factory of asyncio clients to the same server as make_client. Call it inside the event
    loop that will use the client, and close the client there (``await client.aclose()``)."""
    port = None if fake_server is not None else request.getfixturevalue("redis_server").port

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("protocol", 2)
        if fake_server is not None:
            return fakeredis.FakeAsyncRedis(server=fake_server, **kwargs)
        return redis.asyncio.Redis(port=port, **kwargs)

    return make


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace no other test uses (tests share the real server, never FLUSHALL it)."""
    return f"t{os.getpid()}-{next(_names)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sched(make_client: Callable[..., Any], namespace: str) -> Callable[..., luasched.Scheduler]:
    """Factory of Schedulers on this test's backend and namespace (all share one namespace).
    The scripts' tests place by explicit calls, so a submit here leaves its tasks queued unless
    the test asks for ``dispatch_on_submit=True`` (the Scheduler's own default)."""

    def make(**kwargs: Any) -> luasched.Scheduler:
        kwargs.setdefault("dispatch_on_submit", False)
        client_kwargs = {k: kwargs.pop(k) for k in ("decode_responses",) if k in kwargs}
        return luasched.Scheduler(make_client(**client_kwargs), namespace=namespace, **kwargs)

    return make


@pytest.fixture
def sched(make_sched: Callable[..., luasched.Scheduler], clock: FakeClock) -> luasched.Scheduler:
    """A Scheduler on this test's backend, driven by the injected FakeClock ``clock``."""
    return make_sched(clock=clock)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "real":
            item.add_marker(pytest.mark.real_redis)
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_redis)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped real-Redis test is a failure: fail the session if any was skipped."""
    if not real_redis_required():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [r for r in reporter.stats.get("skipped", []) if "real_redis" in getattr(r, "keywords", {})]
    if skipped:
        reporter.write_line(f"{len(skipped)} real-Redis tests were skipped while "
                            f"LUASCHED_REQUIRE_REAL_REDIS is set: failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
