"""KeyDB does not run a command sent right behind a BLPOP, in the same write, when the BLPOP
returns; processors and scheduler loops pipeline the two, so luasched refuses to start them there
with one clear error, before anything is registered. KeyDB is not installable here: the client
below answers ``INFO keydb`` as KeyDB does (its server.cpp: "# KeyDB\\r\\nmvcc_depth:%d"), in
front of a real redis-server, whose own answer (no such section) lets everything start."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
import redis.asyncio

import luasched
from luasched import aio

pytestmark = [pytest.mark.real_redis]

KEYDB_SECTION = {"mvcc_depth": 0}


class KeyDBLike(redis.Redis):
    def info(self, section=None, *args, **kwargs):
        if section == "keydb":
            return dict(KEYDB_SECTION)
        return super().info(section, *args, **kwargs)


class AsyncKeyDBLike(redis.asyncio.Redis):
    async def info(self, section=None, *args, **kwargs):
        if section == "keydb":
            return dict(KEYDB_SECTION)
        return await super().info(section, *args, **kwargs)


def test_a_redis_server_answers_no_keydb_section(redis_server):
    client = redis_server.client()
    try:
        assert client.info("keydb") == {}
    finally:
        client.close()


def test_processors_and_loops_refuse_keydb_before_registering(redis_server, namespace):
    client = KeyDBLike(port=redis_server.port, protocol=2)
    sched = luasched.Scheduler(client, namespace=namespace)
    try:
        proc = sched.processor(capacity=2, scheduler=False)
        with pytest.raises(luasched.UnsupportedServer, match="the server is KeyDB") as refused:
            proc.start()
        assert "BLPOP" in str(refused.value)
        assert isinstance(refused.value, luasched.LuaschedError)
        assert sched.counts()["processors"] == 0  # nothing was registered
        stop = threading.Event()
        stop.set()
        with pytest.raises(luasched.UnsupportedServer):
            sched.run(stop=stop)
    finally:
        client.close()


def test_a_plain_redis_starts(redis_server, namespace):
    client = redis_server.client()
    sched = luasched.Scheduler(client, namespace=namespace)
    try:
        proc = sched.processor(capacity=1, scheduler=False)
        proc.start()
        try:
            assert sched.counts()["processors"] == 1
        finally:
            proc.stop()
    finally:
        client.close()


def test_the_asyncio_processor_refuses_keydb_too(redis_server, namespace):
    async def run():
        client = AsyncKeyDBLike(port=redis_server.port, protocol=2)
        sched = aio.Scheduler(client, namespace=namespace)
        try:
            with pytest.raises(luasched.UnsupportedServer, match="the server is KeyDB"):
                await sched.processor(capacity=1, scheduler=False).start()
            assert (await sched.counts())["processors"] == 0
        finally:
            await client.aclose()

    asyncio.run(run())
