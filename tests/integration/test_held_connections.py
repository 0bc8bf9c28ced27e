"""Threads that call a Scheduler often hold a connection of their own (``connection.Holder``):
fewer pool borrows, the same replies, nothing left open, nothing shared across a fork."""

from __future__ import annotations

import collections
import gc
import os
import threading

import pytest
import redis

import luasched
from luasched import scripts
from luasched._backends.fastpath import Holder, direct_pipeline, own_connection

pytestmark = pytest.mark.real_redis


class CountingPool(redis.ConnectionPool):
    """Counts, per thread, how often a connection is borrowed from the pool."""

    borrows: collections.Counter[str] = collections.Counter()

    def get_connection(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingPool.borrows[threading.current_thread().name] += 1
        return super().get_connection(*args, **kwargs)


@pytest.fixture
def counted(redis_server, namespace):
    admin = redis_server.client()
    for source in scripts.flagged_sources().values():  # loaded: no NOSCRIPT round in the counts below
        admin.script_load(source)
    admin.close()
    pool = CountingPool(port=redis_server.port, protocol=2)
    sched = luasched.Scheduler(redis.Redis(connection_pool=pool), namespace=namespace)
    sched.check_eviction("tests")  # done once, at the first submit: not in the counts below
    CountingPool.borrows.clear()
    yield sched
    sched.close()
    pool.disconnect()


def own_connections(sched: luasched.Scheduler) -> list:
    return list(sched._wire._holder._made)


def test_a_thread_that_submits_in_a_loop_holds_one_connection_until_close(counted):
    me = threading.current_thread().name
    handles = [counted.submit("noop", i) for i in range(Holder.HOLD_AFTER)]
    # the first HOLD_AFTER - 1 calls borrow
    assert CountingPool.borrows[me] == Holder.HOLD_AFTER - 1
    handles += [counted.submit("noop", i) for i in range(50)]
    assert counted.counts()["submitted"] == 50 + Holder.HOLD_AFTER
    assert len({h.id for h in handles}) == 50 + Holder.HOLD_AFTER
    # every later call goes over the thread's own connection
    assert CountingPool.borrows[me] == Holder.HOLD_AFTER - 1
    [conn] = own_connections(counted)
    assert conn._sock is not None
    counted.close()
    assert conn._sock is None, "close() closes the connections its threads hold"
    assert own_connections(counted) == []
    # after close every call borrows again (and still works)
    before = CountingPool.borrows[me]
    counted.submit("noop")
    assert CountingPool.borrows[me] == before + 1 and own_connections(counted) == []


def test_a_thread_that_calls_a_few_times_only_borrows(counted):
    def few() -> None:
        for _ in range(Holder.HOLD_AFTER - 1):
            counted.submit("noop")

    t = threading.Thread(target=few, name="few")
    t.start()
    t.join()
    assert CountingPool.borrows["few"] == Holder.HOLD_AFTER - 1
    assert own_connections(counted) == []
    assert counted.counts()["submitted"] == Holder.HOLD_AFTER - 1


def test_a_threads_connection_closes_when_the_thread_ends(counted):
    seen: list = []

    def many() -> None:
        for _ in range(20):
            counted.submit("noop")
        seen.append(counted._wire._holder.connection())

    t = threading.Thread(target=many)
    t.start()
    t.join()
    assert seen[0] is not None and seen[0]._sock is not None
    sock = seen[0]._sock
    seen.clear()
    gc.collect()
    assert own_connections(counted) == []
    assert sock.fileno() == -1, "the ended thread's connection was closed"
    assert counted.counts()["submitted"] == 20


def test_a_forked_child_never_writes_on_its_parents_connection(counted):
    for _ in range(Holder.HOLD_AFTER + 2):
        counted.submit("noop")
    parents = counted._wire._holder.connection()
    assert parents is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its calls must not go over the parent's socket
        code = 1
        try:
            os.close(read)
            mine = counted._wire._holder.connection()
            counted.submit("noop")
            code = 0 if mine is not parents and counted.counts()["submitted"] == Holder.HOLD_AFTER + 3 else 3
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    child = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert child == bytes([0])
    # the parent's connection is still in step: its next replies are its own
    assert counted._wire._holder.connection() is parents
    counted.submit("noop")
    assert counted.counts()["submitted"] == Holder.HOLD_AFTER + 4


def test_a_direct_pipeline_puts_an_error_reply_in_its_place_and_reads_on(redis_server, namespace):
    client = redis_server.client()
    conn = own_connection(client)
    key = f"{namespace}:k"
    try:
        replies = direct_pipeline(conn, [("SET", key, "v"), ("LPUSH", key, "x"), ("GET", key)])
        assert replies is not None
        assert replies[0] in (b"OK", True) and replies[2] == b"v"
        assert isinstance(replies[1], redis.exceptions.ResponseError) and "WRONGTYPE" in str(replies[1])
        # a connection the server dropped answers None (the caller resends through redis-py)
        client.client_kill_filter(_id=int(direct_pipeline(conn, [("CLIENT", "ID")])[0]))
        assert direct_pipeline(conn, [("GET", key)]) is None
        assert direct_pipeline(conn, [("GET", key)]) == [b"v"], "it reconnects on its next send"
    finally:
        conn.disconnect()
        client.delete(key)
        client.close()


def test_no_connection_is_held_for_a_client_that_cannot_lend_one(redis_server, namespace):
    blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool(port=redis_server.port, protocol=2))
    sched = luasched.Scheduler(blocking, namespace=namespace)
    for _ in range(Holder.HOLD_AFTER + 2):
        sched.submit("noop")
    assert sched._wire._holder.connection() is None and own_connections(sched) == []
    assert sched.counts()["submitted"] == Holder.HOLD_AFTER + 2
    sched.close()
    blocking.close()
