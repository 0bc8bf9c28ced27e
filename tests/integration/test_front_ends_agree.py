"""Behaviours the sync and asyncio front ends once did differently (issue 14's four drifts). Each
test runs the same steps on both and checks the one answer both must give."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

import luasched
from luasched import aio
from luasched.core import ops
from luasched.errors import ConnectionLost

FRONT_ENDS = ("sync", "asyncio")


def outcome_of(value: Any) -> Any:
    """Await ``value`` when it is a coroutine (an asyncio method), else return it."""
    if inspect.isawaitable(value):
        async def wait() -> Any:
            return await value
        return asyncio.run(wait())
    return value


# --- group waits read the primary ----------------------------------------------------------------


def _stale_copy(primary: Any, stale: fakeredis.FakeRedis, keys: Any, ids: list[str]) -> None:
    """Write into ``stale`` what a lagging replica would hold: the members still running."""
    for task_id in ids:
        record = primary.hgetall(keys.task(task_id))
        stale.hset(keys.task(task_id), mapping={**record, b"s": b"running"})


@pytest.mark.parametrize("front", FRONT_ENDS)
def test_group_waits_read_the_primary_not_a_lagging_replica(front, make_client, make_async_client, namespace):
    """as_completed() and results() follow the group's stream on the primary, and read the
    outcomes it names there too: a replica that has not caught up must not answer them."""
    primary = make_client()
    sync = luasched.Scheduler(primary, namespace=namespace)
    p = sync.processor(capacity=8)
    p.register()
    group = sync.map("add", [(i,) for i in range(6)])
    sync.dispatch()

    def add(x: int) -> int:
        return x + 1

    sync.task(add)
    p.process_available()
    stale = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)), protocol=2)
    _stale_copy(primary, stale, sync.keys, group.ids)

    if front == "sync":
        reading = luasched.Scheduler(primary, namespace=namespace, read_redis=stale)
        g = reading.group(group.id)
        seen = [o.state for o in g.as_completed(timeout=10)]
        values = g.results(timeout=10)
        reading.close()
    else:
        async def main() -> tuple[list[str], list[Any]]:
            a_primary = make_async_client()
            a_stale = fakeredis.FakeAsyncRedis(server=stale.connection_pool.connection_kwargs["server"], protocol=2)
            reading = aio.Scheduler(a_primary, namespace=namespace, read_redis=a_stale)
            g = await reading.group(group.id)
            seen = [o.state async for o in g.as_completed(timeout=10)]
            values = await g.results(timeout=10)
            await a_primary.aclose()
            await a_stale.aclose()
            return seen, values

        seen, values = asyncio.run(main())
    stale.close()
    assert seen == ["done"] * 6
    assert values == [i + 1 for i in range(6)]
    p.deregister()


# --- a failed constructor leaves no client open -----------------------------------------------------


class _Made:
    """Every redis-py client made, and every one closed, while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[Any] = []
        self.closed: list[Any] = []
        for cls, close in ((redis.Redis, "close"), (redis.asyncio.Redis, "aclose")):
            self._spy(monkeypatch, cls, close)

    def _spy(self, monkeypatch: pytest.MonkeyPatch, cls: type, close: str) -> None:
        init, shut = cls.__init__, getattr(cls, close)
        made, closed = self.made, self.closed

        def spy_init(client: Any, *args: Any, **kwargs: Any) -> None:
            made.append(client)
            init(client, *args, **kwargs)

        if close == "aclose":
            async def spy_close(client: Any, *args: Any, **kwargs: Any) -> None:
                closed.append(client)
                await shut(client, *args, **kwargs)
        else:
            def spy_close(client: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[misc]
                closed.append(client)
                shut(client, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy_init)
        monkeypatch.setattr(cls, close, spy_close)

    def left_open(self) -> list[Any]:
        return [c for c in self.made if not any(c is d for d in self.closed)]


@pytest.mark.parametrize("front", FRONT_ENDS)
@pytest.mark.parametrize("kwargs, error", [
    ({"redis": None, "durability": 1}, ValueError),  # the embedded server has no replicas
    ({"redis": "redis://127.0.0.1:1/0", "read_redis": ["redis://127.0.0.1:1/0", 42]}, TypeError),
    ({"redis": "redis://127.0.0.1:1/0", "read_redis": "memcached://nope"}, ValueError),
])
def test_a_failed_constructor_leaves_no_client_open(front, kwargs, error, monkeypatch):
    made = _Made(monkeypatch)
    cls = luasched.Scheduler if front == "sync" else aio.Scheduler
    with pytest.raises(error):
        cls(**kwargs)
    assert made.left_open() == []


# --- one backoff while Redis is unreachable ---------------------------------------------------------


def _retry_pauses(front: str, make_client: Any, make_async_client: Any, namespace: str,
                  monkeypatch: pytest.MonkeyPatch, failures: int) -> list[float]:
    """The pauses a running processor's slot takes between tries of a call that fails
    ``failures`` times with the connection lost (the pauses recorded, not slept)."""
    pauses: list[float] = []
    left = {"n": failures}

    def fail_then(result: Any) -> Any:
        if left["n"] > 0:
            left["n"] -= 1
            raise ConnectionLost("test: Redis is away")
        return result

    if front == "sync":
        monkeypatch.setattr(time, "sleep", pauses.append)
        sched = luasched.Scheduler(make_client(), namespace=namespace)
        p = sched.processor()
        real = sched.call
        monkeypatch.setattr(sched, "call", lambda call: fail_then(real(call)))
        p._send(ops.heartbeat(sched.ns, None, p.id), threading.Event())
        sched.close()
        return pauses

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", record)

    async def main() -> None:
        client = make_async_client()
        sched = aio.Scheduler(client, namespace=namespace)
        p = sched.processor()
        real = sched.call

        async def failing(call: Any) -> Any:
            return fail_then(await real(call))

        monkeypatch.setattr(sched, "call", failing)
        await p._send(ops.heartbeat(sched.ns, None, p.id), asyncio.Event())
        await client.aclose()

    outcome_of(main())
    return pauses


def test_a_slot_backs_off_the_same_on_both_front_ends(make_client, make_async_client, namespace, monkeypatch):
    """A slot retrying a call through a lost connection waits 0.05 s, then twice as long each
    time, up to one cap that both front ends share."""
    failures = 9
    sync = _retry_pauses("sync", make_client, make_async_client, namespace, monkeypatch, failures)
    asynchronous = _retry_pauses("asyncio", make_client, make_async_client, namespace, monkeypatch, failures)
    assert len(sync) == failures and sync == asynchronous
    assert sync[:3] == [0.05, 0.1, 0.2]
    assert max(sync) == sync[-1] == sync[-2] < 0.05 * 2 ** (failures - 1)  # capped
