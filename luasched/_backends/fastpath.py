"""The sync front end's measured fast path: a script call sent on a connection the calling
thread holds, packed by hiredis, read without redis-py's per-call layers (about 20 µs less per
call on this machine, a fifth of a task's round trip). The asyncio front end has none of this;
everything here falls back to redis-py's usual path whenever it cannot apply."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis
import redis.sentinel
from redis.connection import HiredisRespSerializer

try:
    import hiredis
except ImportError:  # redis-py then packs with its Python serializer, never this one
    hiredis = None  # type: ignore[assignment]



def send_packed(conn: Any, commands: Sequence[tuple[Any, ...]]) -> None:
    """Send ``commands`` on ``conn`` in one write: packed by hiredis when the connection packs
    with it (the same bytes, without redis-py's per-argument type checks), else by redis-py."""
    if type(conn._command_packer) is HiredisRespSerializer:
        conn.send_packed_command((b"".join(hiredis.pack_command(c) for c in commands),))
    else:
        conn.send_packed_command(conn.pack_commands(commands))


def direct(client: Any, *args: Any, held: Any = None) -> Any:
    """``client.execute_command(*args)`` for a command that needs no reply callback (EVALSHA),
    sent on a pooled connection without redis-py's per-call layers (retry wrapper, timing and
    error hooks): about 20 µs less per call on this machine, which is a fifth of a task's round
    trip. ``held``: a connection this thread holds for the client (see ``hold``), used
    instead of borrowing one per call. Any client but a plain ``redis.Redis`` takes the usual
    path, and so does a call whose connection broke (redis-py then reconnects and retries; the
    call may have run, which every script here is safe against — see the replays in the README)."""
    if type(client) is not redis.Redis or client.connection is not None:
        return client.execute_command(*args)
    pool: Any = client.connection_pool
    conn: Any = held if held is not None else pool.get_connection()
    try:
        send_packed(conn, [args])
        return conn.read_response()
    except redis.exceptions.ResponseError:
        raise  # the error reply was read whole: the connection is in step
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        conn.disconnect()
    except BaseException:  # interrupted between send and reply: a reply may still be on its way
        conn.disconnect()
        raise
    finally:
        if held is None:
            pool.release(conn)
    return cast(Any, client).execute_command(*args)  # reconnects and retries


def direct_pipeline(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any] | None:
    """The replies of ``commands`` sent on ``conn`` (a connection a thread holds) in one write,
    read in order, an error reply in its place as the exception (like redis-py's
    ``execute(raise_on_error=False)``; no reply callbacks: a BLPOP answers a list). None when
    the connection broke: nothing is known of what ran, and the caller sends them again through
    redis-py's pipeline, which reconnects and retries as it does for any pipeline."""
    try:
        send_packed(conn, commands)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        conn.disconnect()
        return None
    except BaseException:  # interrupted between send and replies: replies may still be on their way
        conn.disconnect()
        raise


class Held(threading.local):
    """The connection the current thread holds (see ``hold`` and ``Holder``), or None; ``pid``
    is the process that made it, ``calls`` how many calls this thread made without one."""

    conn: Any = None
    pid: int = 0
    calls: int = 0
    scoped: bool = False  # conn is hold()'s, for a block of calls (else made by the Holder)


def holdable(client: Any) -> bool:
    """Whether a thread may hold a connection of its own for ``client``: a plain ``redis.Redis``
    on a non-blocking pool without client-side caching; not a Sentinel's pool (its connections
    find their server through the pool)."""
    pool: Any = getattr(client, "connection_pool", None)
    return not (type(client) is not redis.Redis or client.connection is not None
                or not isinstance(pool, redis.ConnectionPool)
                or isinstance(pool, (redis.BlockingConnectionPool, redis.sentinel.SentinelConnectionPool))
                or getattr(pool, "cache", None) is not None)


def own_connection(client: Any) -> Any:
    """A new connection made like ``client``'s pool makes them, outside the pool (it connects on
    its first send), or None when ``client`` is not ``holdable``."""
    if not holdable(client):
        return None
    pool: Any = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


@contextlib.contextmanager
def hold(client: Any) -> Iterator[Any]:
    """A connection of its own (``own_connection``) for one thread's many calls (a processor
    slot makes one per task for as long as it runs): borrowing from redis-py's pool costs a
    lock, two getpid calls, a readiness poll and its metrics on every call (~20 µs of CPU on
    this machine), and threads that borrow per call contend for it. The connection is outside
    the pool, so the pool's limit stays for everyone else's calls. Yields None when the client
    is not ``holdable`` (calls then borrow as usual). Closed at the end; one that broke
    reconnects on its next send."""
    conn = own_connection(client)
    try:
        yield conn
    finally:
        if conn is not None:
            conn.disconnect()


class Holder:
    """The connections the threads that call a client often hold of their own: a thread's
    ``HOLD_AFTER``-th call through ``connection()`` makes one (``own_connection``), and its later
    calls use it, so a producer that submits in a loop does not borrow from the pool per call
    while a thread that calls once or twice (a thread per request) never opens one. A thread's
    connection closes when the thread ends (it is garbage) or at ``close()``; in a forked child
    the parent's is dropped, never used. ``hold()`` gives a thread one for a block of calls."""

    HOLD_AFTER = 8

    def __init__(self, client: Any) -> None:
        self.client = client
        self._held = Held()
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = not holdable(client)

    def connection(self) -> Any:
        """This thread's own connection, or None (borrow from the pool for this call)."""
        held = self._held
        conn = held.conn
        if conn is not None:
            if held.pid == os.getpid() and (held.scoped or not self._closed):
                return conn
            # made before a fork (the parent's socket, never written from here), or closed
            held.conn = None
        if self._closed:
            return None
        held.calls += 1
        if held.calls < self.HOLD_AFTER:
            return None
        return self._adopt(own_connection(self.client))

    def _adopt(self, conn: Any) -> Any:
        with self._lock:
            if self._closed or conn is None:
                return None
            self._made.add(conn)
        self._held.conn, self._held.pid, self._held.scoped = conn, os.getpid(), False
        return conn

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Within it, this thread's calls use a connection of its own from the first call on
        (closed at the end)."""
        held = self._held
        before = held.conn, held.pid, held.scoped
        with hold(self.client) as conn:
            if conn is not None:
                held.conn, held.pid, held.scoped = conn, os.getpid(), True
            try:
                yield
            finally:
                held.conn, held.pid, held.scoped = before

    def close(self) -> None:
        """Close every connection made here; from now on every call borrows from the pool."""
        with self._lock:
            self._closed = True
            made = list(self._made)
            self._made = weakref.WeakSet()
        for conn in made:
            conn.disconnect()
