"""luasched/scripts.py and luatree.py: what is sent to Redis, and calls surviving a flushed script cache."""

from __future__ import annotations

import hashlib
import re

import pytest

from luasched import scripts
from luasched.core import fields, ops
from tests.scripts.util import audit_ok

LIBS = sorted((scripts.lua_dir() / scripts.LIB_DIR).glob("*.lua"))


def lua_tree(tmp_path, files):
    """A lua/ folder of its own: ``files`` maps a path under it ("ack.lua", "lib/util.lua") to text."""
    folder = tmp_path / "lua"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_sources_put_the_helpers_a_script_uses_first():
    sources = scripts.sources()
    helpers = {h for path in LIBS for h in re.findall(r"^local function (\w+)", path.read_text(), re.M)}
    order = [path.stem for path in LIBS]
    assert {"util", "processors", "placement", "lifecycle", "replay"} <= set(order)

    assert sorted(sources) == sorted(scripts.NAMES)
    constants = fields.lua_constants()
    for name, source in sources.items():
        own = (scripts.lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
        own = re.sub(r"\b[A-Z]+_[A-Z_]+\b", lambda m: f"'{constants[m[0]]}'" if m[0] in constants else m[0], own)
        own = re.sub(r"\bC\.(\w+)", lambda m: f"C[{scripts.CONTEXT.index(m[1]) + 1}]", own)
        assert source.endswith(own), name  # the script, its field constants and context fields resolved
        sent = source[:-len(own)]
        sections = [s.removeprefix("lib/") for s in re.findall(r"^-- (lib/\w+|fields)$", sent, re.M)]
        assert sent == "" or re.match(r"-- (lib/)?\w+\n", sent), name  # libraries, then the script
        assert set(sections) <= {*order, scripts.FIELDS}, name
        included = set(re.findall(r"^local function (\w+)", sent, re.M))
        # every helper called anywhere in what is sent is defined in it (a helper left out by
        # mistake would be a nil global at run time), and none of what is left out is called
        called = {h for h in helpers if re.search(rf"\b{h}\(", source)}
        assert called == included, name
        for i, lib in enumerate(sections):  # each library after the ones it includes
            if lib == scripts.FIELDS:
                continue
            deps = scripts.declared_includes((scripts.lua_dir() / scripts.LIB_DIR / f"{lib}.lua").read_text())
            assert set(deps) & set(sections) <= set(sections[:i]), (name, lib)
    assert "placer" in sources["dispatch"] and "placer" not in sources["heartbeat"]
    assert "heap_pop" not in sources["start"]  # start_many's parameter 'take' is no use of placement's take()


def test_lib_for_follows_helpers_through_other_helpers(tmp_path):
    folder = lua_tree(tmp_path, {
        "lib/a.lua": (
            "--[[ lib/a: header\n  Includes: (none)\n]]\n"
            "local K = 1\n"
            "local function a() return K end\n"
            "-- b calls a\n"
            "local function b() return a() end\n"
            "local function c() return 3 end\n"
        ),
        "s.lua": "--[[ s: uses b\n  Includes: a\n]]\nreturn b() -- not c\n",
        "one.lua": "--[[ one: uses nothing\n  Includes: a\n]]\nreturn 1\n",
    })
    sources = scripts.sources(folder)
    assert sources["s"] == (
        "-- lib/a\n"
        "local K = 1\n"
        "local function a() return K end\n"
        "-- b calls a\n"
        "local function b() return a() end\n"
        "--[[ s: uses b\n  Includes: a\n]]\nreturn b() -- not c\n"
    )
    assert sources["one"] == "--[[ one: uses nothing\n  Includes: a\n]]\nreturn 1\n"


def test_includes_are_followed_through_libraries_dependencies_first(tmp_path):
    folder = lua_tree(tmp_path, {
        "lib/base.lua": "--[[ lib/base: x\n  Includes: (none)\n]]\nlocal function one() return 1 end\n"
                        "local function unused() return 0 end\n",
        "lib/mid.lua": "--[[ lib/mid: x\n  Includes: base\n]]\nlocal function two() return one() + one() end\n",
        "lib/top.lua": "--[[ lib/top: x\n  Includes: mid\n]]\nlocal function three() return two() + 1 end\n",
        "s.lua": "--[[ s: x\n  Includes: top\n]]\nreturn three()\n",
    })
    sent = scripts.sources(folder)["s"]
    assert re.findall(r"^-- lib/(\w+)$", sent, re.M) == ["base", "mid", "top"]
    assert sent.index("function one") < sent.index("function two") < sent.index("function three")
    assert "unused" not in sent


@pytest.mark.parametrize(("files", "message"), [
    # a helper of a library the header does not include (included only through another library)
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function finish() return 1 end\n",
      "lib/b.lua": "--[[ lib/b: x\n  Includes: a\n]]\nlocal function g() return finish() end\n",
      "ack.lua": "--[[ ack: x\n  Includes: b\n]]\nreturn finish() + g()\n"},
     "lua/ack.lua uses finish (defined in lib/a), which its header does not include"),
    # a name no library defines (a typo)
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function finish() return 1 end\n",
      "ack.lua": "--[[ ack: x\n  Includes: a\n]]\nreturn fnish()\n"},
     "lua/ack.lua uses fnish, which no included library defines"),
    # a global written is a name used and not defined
    ({"ack.lua": "--[[ ack: x\n]]\ncount = 1\nreturn count\n"},
     "lua/ack.lua uses count, which no included library defines"),
    ({"ack.lua": "--[[ ack: x\n]]\nreturn bit.band(1, 3)\n"},
     "lua/ack.lua uses bit, which no included library defines"),
    # a library that uses what it does not include
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function one() return 1 end\n",
      "lib/b.lua": "--[[ lib/b: x\n]]\nlocal function two() return one() end\n",
      "s.lua": "--[[ s: x\n  Includes: b\n]]\nreturn two()\n"},
     "lua/lib/b.lua uses one (defined in lib/a), which its header does not include"),
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function f() return g() end\nlocal function g() return 1 end\n",
      "s.lua": "--[[ s: x\n]]\nreturn 1\n"},
     "lua/lib/a.lua uses g before it defines it"),
    ({"ack.lua": "--[[ ack: x\n  Includes: util, placment\n]]\nreturn 1\n",
      "lib/util.lua": "--[[ lib/util: x\n]]\nlocal function u() return 1 end\n"},
     "lua/ack.lua includes placment, which is no library (lua/lib/placment.lua does not exist)"),
    ({"lib/a.lua": "--[[ lib/a: x\n  Includes: b\n]]\nlocal function f() return g() end\n",
      "lib/b.lua": "--[[ lib/b: x\n  Includes: c\n]]\nlocal function g() return h() end\n",
      "lib/c.lua": "--[[ lib/c: x\n  Includes: a\n]]\nlocal function h() return f() end\n",
      "s.lua": "--[[ s: x\n  Includes: a\n]]\nreturn f()\n"},
     "include cycle: lib/a -> lib/b -> lib/c -> lib/a"),
    ({"lib/a.lua": "--[[ lib/a: x\n  Includes: a\n]]\nlocal function f() return 1 end\n",
      "s.lua": "--[[ s: x\n]]\nreturn 1\n"},
     "include cycle: lib/a -> lib/a"),
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function fmt() return 1 end\n",
      "lib/b.lua": "--[[ lib/b: x\n]]\nlocal function fmt() return 2 end\n",
      "s.lua": "--[[ s: x\n]]\nreturn 1\n"},
     "lua/lib/b.lua defines fmt, which lib/a defines too"),
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal function f() return 1 end\nreturn f\n",
      "s.lua": "--[[ s: x\n]]\nreturn 1\n"},
     "lua/lib/a.lua line 4: a library holds only top-level locals, not 'return'"),
    ({"s.lua": "--[[ s: x\n]]\nreturn 'open\n"},
     "lua/s.lua: cannot read line 3"),
    # the context: only the names it holds, through a local or parameter named C
    ({"s.lua": "--[[ s: x\n]]\nlocal C = KEYS\nreturn C.stat\n"},
     "lua/s.lua line 4: C.stat is no field of the context (it holds stats, delayed, running"),
    ({"s.lua": "--[[ s: x\n]]\nlocal C = KEYS\nreturn C[1]\n"},
     "lua/s.lua line 4: C[1 is no field of the context"),
    ({"lib/a.lua": "--[[ lib/a: x\n]]\nlocal K = 1\n\nlocal function f(pl)\n  return pl.C.now\nend\n",
      "s.lua": "--[[ s: x\n]]\nreturn 1\n"},
     "lua/lib/a.lua line 6: reads a context through a field"),
])
def test_the_loader_refuses(tmp_path, files, message):
    folder = lua_tree(tmp_path, files)
    with pytest.raises(scripts.ScriptSourceError, match=re.escape(message)):
        scripts.sources(folder)
    assert issubclass(scripts.ScriptSourceError, ValueError)


def test_names_a_file_uses_leave_out_strings_comments_fields_keys_and_locals():
    lua = """
    local a, b = x1, 'y1 .. "y2"' .. [[ y3 ]] .. [==[ y4 ]] ]==]  -- y5
    --[[ y6
    ]] --[=[ y7 ]=]
    local function f(p, q, ...) return p + q + a + b + x2 end
    for i, v in ipairs(t.field1) do x3(v:method1(), s.field2, {key1 = 1, [x4] = 2, x5}) end
    for k = 1, 2 do x6[k] = k end
    local t, s = function(r) return r end, "\\'" .. x7
    if a ~= b then x8() elseif a then x9() end
    return redis.call('GET', KEYS[1]) .. tostring(a == b and x10)
    """
    assert scripts.free_names(lua) == {f"x{i}" for i in range(1, 11)}


def test_the_real_scripts_load_clean():
    tree = scripts.LuaTree(scripts.lua_dir())  # every library checked
    assert {"util", "processors", "placement", "lifecycle", "replay"} <= set(tree.libraries)
    assert set(scripts.sources()) == set(scripts.NAMES)


def test_the_fields_library_is_the_table_as_lua_constants(sched):
    """The constants the loader makes hold, in Lua itself, what luasched/core/fields.py says."""
    constants = fields.lua_constants()
    script = "--[[ t: every constant\n  Includes: fields\n]]\nreturn {" + ", ".join(constants) + "}\n"
    sent = scripts.build(script, "lua/t.lua")

    assert ops.text(sched.client.eval(sent, 0)) == list(constants.values())


def test_a_field_constant_is_sent_as_its_literal():
    """No local per constant (each helper's closure would capture it on every call): each use
    is written as the stored name; strings, comments and fields of that name are left alone."""
    script = ("--[[ t: TASK_STATE\n  Includes: fields\n]]\n"
              "local t = {}\nreturn {TASK_STATE, 'TASK_STATE', t.TASK_STATE} -- TASK_STATE\n")
    assert scripts.build(script, "lua/t.lua") == (
        "--[[ t: TASK_STATE\n  Includes: fields\n]]\n"
        "local t = {}\nreturn {'s', 'TASK_STATE', t.TASK_STATE} -- TASK_STATE\n")
    for name, source in scripts.sources().items():
        code = [t.text for t in scripts.tokens(source) if t.kind == "name"]
        assert not set(code) & set(fields.lua_constants()), name
    assert "'ack:' .. slot" in scripts.sources()["ack"]


def test_a_field_constant_not_included_is_refused(tmp_path):
    folder = lua_tree(tmp_path, {"s.lua": "--[[ s: x\n]]\nreturn TASK_STATE\n"})
    said = "lua/s.lua uses TASK_STATE (defined in fields), which its header does not include"
    with pytest.raises(scripts.ScriptSourceError, match=re.escape(said)):
        scripts.sources(folder)
    folder = lua_tree(tmp_path / "b", {"lib/fields.lua": "--[[ lib/fields: x\n]]\nlocal X = 1\n"})
    with pytest.raises(scripts.ScriptSourceError, match="pseudo-library"):
        scripts.sources(folder)
    folder = lua_tree(tmp_path / "c", {"s.lua": "--[[ s: x\n]]\nlocal TASK_STATE = 'q'\nreturn TASK_STATE\n"})
    with pytest.raises(scripts.ScriptSourceError, match="lua/s.lua defines TASK_STATE, a name of the fields library"):
        scripts.sources(folder)


def test_every_sent_script_stays_well_within_lua_51s_limits():
    """At most 200 locals in a function (the main chunk holds the helpers sent and the script's
    own top-level locals) and 60 upvalues per closure."""
    for name, source in scripts.sources().items():
        top = re.findall(r"^local (?:function (\w+)|([\w, ]+?)\s*=)", source, re.M)
        count = sum(len((f or many).split(",")) for f, many in top)
        assert count < 150, (name, count)
        for chunk in re.split(r"^(?=local )", source, flags=re.M):
            if chunk.startswith("local function"):
                assert len(scripts.free_names(chunk)) < 40, (name, chunk[:40])


def test_each_script_is_registered_by_the_sha_of_its_source(sched, backend):
    """With its shebang on a real Redis (7), plain on the embedded server (see test_script_flags)."""
    sent = scripts.flagged_sources() if backend == "real" else scripts.sources()
    for name in scripts.NAMES:
        expected = hashlib.sha1(sent[name].encode("utf-8")).hexdigest()
        assert sched.scripts[name].sha == expected


def test_unknown_script_name(sched):
    with pytest.raises(KeyError):
        sched.scripts["no-such-script"]


def flush(sched):
    """Flush the script cache, and the functions where the Scheduler sends them (Redis 7+)."""
    sched.client.script_flush()
    if sched.scripts.functions:
        sched.client.function_flush()
    assert not loaded(sched, "submit")


def loaded(sched, name: str) -> bool:
    if sched.scripts.library(name) is not None:  # its function's library, by its name
        return bool(sched.client.function_list(library=sched.scripts.command(name, (), ())[1]))
    return sched.client.script_exists(sched.scripts[name].sha) == [True]


def test_a_single_call_after_script_flush(sched):
    sched.submit("add")
    flush(sched)

    h = sched.submit("add")  # EVALSHA -> NOSCRIPT (FCALL -> function not found) -> load -> again

    assert sched.counts()["submitted"] == 2
    assert h.state == "queued"
    assert loaded(sched, "submit")
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
    assert "bad now_ms, limit, request id or keep_s" in str(refused.value)


def test_call_many_after_flush_loads_each_script_once_and_resends_in_one_pipeline(sched):
    sched.submit("add")
    flush(sched)
    pipelines, loads = [], []
    real_pipeline, real_load = sched.client.pipeline, sched.client.script_load
    sched.client.pipeline = lambda *a, **kw: pipelines.append(1) or real_pipeline(*a, **kw)
    sched.client.script_load = lambda src: loads.append(src) or real_load(src)
    real_library = sched._wire.load_library
    sched._wire.load_library = lambda client, src: loads.append(src) or real_library(client, src)

    sched.submit_many("add", [(i,) for i in range(2500)])  # 3 chunks

    assert (len(pipelines), len(loads)) == (2, 1)  # refused once, loaded once, resent together
    assert sched.counts()["submitted"] == 2501
    audit_ok(sched)
