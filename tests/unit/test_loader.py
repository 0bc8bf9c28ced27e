"""luasched/scripts.py: what is sent to Redis, and calls surviving a flushed script cache."""

from __future__ import annotations

import hashlib
import re

import pytest

from luasched import scripts
from luasched.core import ops
from tests.scripts.util import audit_ok


def test_sources_put_the_helpers_a_script_uses_first():
    lib = (scripts.lua_dir() / f"{scripts.LIB}.lua").read_text(encoding="utf-8")
    sources = scripts.sources()
    helpers = set(re.findall(r"^local function (\w+)", lib, re.M))

    assert sorted(sources) == sorted(scripts.NAMES)
    for name, source in sources.items():
        own = (scripts.lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
        assert source.startswith(f"--[[ {scripts.LIB}:"), name
        assert source.endswith(own), name
        included = set(re.findall(r"^local function (\w+)", source[:-len(own)], re.M))
        # every helper called anywhere in what is sent is defined in it (a helper left out by
        # mistake would be a nil global at run time), and none of what is left out is called
        called = {h for h in helpers if re.search(rf"\b{h}\(", source)}
        assert called == included, name
    assert "placer" in sources["dispatch"] and "placer" not in sources["heartbeat"]


def test_lib_for_follows_helpers_through_other_helpers():
    lib = (
        "--[[ _lib: header ]]\n"
        "local K = 1\n"
        "local function a() return K end\n"
        "-- b calls a\n"
        "local function b() return a() end\n"
        "local function c() return 3 end\n"
    )
    shaken = scripts.lib_for(lib, "return b() -- not c")
    assert shaken == (
        "--[[ _lib: header ]]\n"
        "local K = 1\n"
        "local function a() return K end\n"
        "-- b calls a\n"
        "local function b() return a() end\n"
    )
    assert scripts.lib_for(lib, "return 1") == "--[[ _lib: header ]]\n"


def test_each_script_is_registered_by_the_sha_of_its_source(sched):
    for name in scripts.NAMES:
        expected = hashlib.sha1(scripts.sources()[name].encode("utf-8")).hexdigest()
        assert sched.scripts[name].sha == expected


def test_unknown_script_name(sched):
    with pytest.raises(KeyError):
        sched.scripts["no-such-script"]


def flush(sched):
    sched.client.script_flush()
    sha = sched.scripts["submit"].sha
    assert sched.client.script_exists(sha) == [False]


def test_a_single_call_after_script_flush(sched):
    sched.submit("add")
    flush(sched)

    h = sched.submit("add")  # EVALSHA -> NOSCRIPT -> load -> again

    assert sched.counts()["submitted"] == 2
    assert h.state == "queued"
    assert sched.client.script_exists(sched.scripts["submit"].sha) == [True]
    audit_ok(sched)


def test_call_many_after_script_flush(sched):
    sched.submit("add")
    flush(sched)

    handles = sched.submit_many("add", [(i,) for i in range(2500)])  # 3 chunks, one pipeline

    assert len(handles) == 2500
    assert sched.counts()["submitted"] == 2501
    assert sched.queue_lengths() == {"default": 2501}
    audit_ok(sched)


def test_call_many_of_different_scripts_after_script_flush(sched):
    sched.submit("add")
    flush(sched)
    ns = sched.ns

    replies = sched.call_many([ops.counts(ns, sched.now_ms()), ops.dispatch(ns, sched.now_ms(), 5, "r1"),
                               ops.counts(ns, sched.now_ms())])

    assert ops.decode_counts(replies[0])[0]["queued"] == 1
    assert ops.decode_dispatch(replies[1]).assignments == []
    assert len(replies) == 3
    audit_ok(sched)


def test_call_many_of_nothing_and_of_one(sched):
    assert sched.call_many([]) == []
    (reply,) = sched.call_many([ops.counts(sched.ns, None)])
    assert ops.decode_counts(reply)[0]["submitted"] == 0


def test_a_script_error_is_a_script_error_naming_the_operation(sched):
    import luasched

    bad = ops.Call("dispatch", sched.keys.fixed, (sched.keys.prefix, "", "0"))
    with pytest.raises(luasched.ScriptError, match="dispatch") as refused:
        sched.call(bad)
    assert "bad now_ms, limit or request id" in str(refused.value)


def test_call_many_after_flush_loads_each_script_once_and_resends_in_one_pipeline(sched):
    sched.submit("add")
    flush(sched)
    pipelines, loads = [], []
    real_pipeline, real_load = sched.client.pipeline, sched.client.script_load
    sched.client.pipeline = lambda *a, **kw: pipelines.append(1) or real_pipeline(*a, **kw)
    sched.client.script_load = lambda src: loads.append(src) or real_load(src)

    sched.submit_many("add", [(i,) for i in range(2500)])  # 3 chunks

    assert (len(pipelines), len(loads)) == (2, 1)  # refused once, loaded once, resent together
    assert sched.counts()["submitted"] == 2501
    audit_ok(sched)
