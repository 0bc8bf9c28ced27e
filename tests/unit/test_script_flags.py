"""Which source a Scheduler sends for each script: with a shebang declaring its flags to a server
that reads them (Redis 7), plain to one that cannot (the embedded server, Redis 6); the choice is
made once, in ``Scripts``, and every path (one call, a pipeline, a call behind a BLPOP, a reload
after NOSCRIPT) follows it."""

from __future__ import annotations

import asyncio
import hashlib

import fakeredis
import pytest
import redis.exceptions as rx

import luasched
import luasched.aio
from luasched import scripts
from luasched.core import ops
from luasched.core.options import READ_ONLY

#: What Redis 6 answers to SCRIPT LOAD of a source opening with ``#!lua``.
REDIS6_COMPILE_ERROR = ("Error compiling script (new function): user_script:1: unexpected symbol "
                        "near '#'")


def sha(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


def test_the_flags_follow_what_each_script_may_write():
    assert {name for name, flags in scripts.FLAGS.items() if flags == "no-writes"} == READ_ONLY
    # only scripts that cannot grow memory run when it is full; every other one declares nothing
    assert {name for name, flags in scripts.FLAGS.items() if flags == "allow-oom"} == {"heartbeat", "result"}
    assert set(scripts.FLAGS) <= set(scripts.NAMES)
    assert scripts.shebang("counts") == "#!lua flags=no-writes\n"
    assert scripts.shebang("heartbeat") == "#!lua flags=allow-oom\n"
    assert scripts.shebang("ack") == scripts.shebang("submit") == "#!lua\n"
    for name in scripts.NAMES:
        plain, flagged = scripts.sources()[name], scripts.flagged_sources()[name]
        assert flagged == scripts.shebang(name) + plain
        # Scripts.unflag reads a compile error on line 1 as "no shebang here": a plain source's
        # line 1 must be one that cannot fail to compile
        assert plain.startswith("--"), name


def test_only_a_compile_error_on_the_shebang_unflags():
    s = scripts.Scripts(fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0))))
    assert s.flagged and s["ack"].script.startswith("#!lua\n")
    for other in (rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
                  rx.ResponseError("Error running script: user_script:12: unexpected symbol near '#'"),
                  rx.NoScriptError("No matching script. Please use EVAL."), "near '#'", None):
        assert not s.unflag(other)
        assert s.flagged
    assert s.unflag(rx.ResponseError(REDIS6_COMPILE_ERROR))
    assert not s.flagged and s["ack"].sha == sha(scripts.sources()["ack"])


def test_the_embedded_default_sends_plain_scripts_and_works(namespace):
    sched = luasched.Scheduler("memory://", namespace)  # the embedded server, as `luasched demo` uses
    try:
        @sched.task
        def double(x: int) -> int:
            return 2 * x

        assert sched.embedded and not sched.scripts.flagged
        for name in scripts.NAMES:
            assert sched.scripts[name].sha == sha(scripts.sources()[name])
        h = sched.submit(double, 21)
        p = sched.processor(capacity=1)
        p.register()
        sched.dispatch()
        assert p.process_available() == 1
        assert h.result(timeout=5) == 42
        assert sched.counts()["done"] >= 1 and sched.audit().ok
        p.deregister()
    finally:
        sched.close()


def test_the_asyncio_front_end_on_the_embedded_server_sends_plain_scripts():
    async def go() -> None:
        sched = luasched.aio.Scheduler(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=(7, 0)),
                                                                protocol=2))
        try:
            assert not sched.scripts.flagged
            h = await sched.submit("anything", 1)
            assert await h.state() == "queued"
            assert sched.scripts["submit"].sha == sha(scripts.sources()["submit"])
        finally:
            await sched.close()
            await sched.client.aclose()

    asyncio.run(asyncio.wait_for(go(), 30))


@pytest.fixture
def unreadable():
    """A Scheduler told to send flagged scripts to a server that compiles a script only when it
    runs it and cannot read a shebang (fakeredis, as a fakeredis reached over TCP would be)."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)), protocol=2)
    sched = luasched.Scheduler(client, namespace="flags", dispatch_on_submit=False)
    sched.scripts.flagged = True
    yield sched
    sched.close()
    client.close()


def test_one_call_to_a_server_that_cannot_read_a_shebang_falls_back_to_plain(unreadable):
    h = unreadable.submit("anything", 1, _id="one")
    assert not unreadable.scripts.flagged
    assert h.state == "queued" and unreadable.counts()["submitted"] == 1


def test_a_pipeline_to_a_server_that_cannot_read_a_shebang_falls_back_to_plain(unreadable):
    handles = unreadable.submit_many("anything", [(i,) for i in range(2500)])  # 3 calls, one pipeline
    assert not unreadable.scripts.flagged
    assert len(handles) == 2500 and unreadable.counts()["submitted"] == 2500
    assert unreadable.audit().ok


def test_a_call_behind_a_wait_to_a_server_that_cannot_read_a_shebang_falls_back_to_plain(unreadable):
    unreadable.submit("anything", 1)  # learns nothing yet: the flag is reset below
    unreadable.scripts.flagged = True
    reply = unreadable.call_after_wake("flags:nothing", 0.01, ops.counts(unreadable.ns, None))
    assert not unreadable.scripts.flagged
    assert ops.decode_counts(reply)[0]["submitted"] == 1


def test_a_server_that_refuses_to_load_a_shebang_gets_plain_scripts(unreadable):
    """Redis 6 compiles at SCRIPT LOAD, and refuses a shebang there."""
    loaded = []
    real_load = unreadable.client.script_load

    def load(source: str) -> str:
        loaded.append(source)
        if source.startswith("#!"):
            raise rx.ResponseError(REDIS6_COMPILE_ERROR)
        return real_load(source)

    unreadable.client.script_load = load
    h = unreadable.submit("anything", 1)
    assert not unreadable.scripts.flagged
    assert loaded == [scripts.flagged_sources()["submit"], scripts.sources()["submit"]]
    assert h.state == "queued"
    unreadable.counts()
    assert loaded[-1] == scripts.sources()["counts"]  # from then on only plain ones are loaded
