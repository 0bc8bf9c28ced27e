"""Every lua/*.lua opens with its header, matches a name in luasched.scripts, and uses no globals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from luasched import scripts
from luasched.core import fields
from luasched.core.keys import FIXED

LUA = scripts.lua_dir()
SCRIPT_FILES = sorted(LUA.glob("*.lua"))
LIB_FILES = sorted((LUA / scripts.LIB_DIR).glob("*.lua"))
ALL_FILES = SCRIPT_FILES + LIB_FILES


def file_id(path: Path) -> str:
    return path.relative_to(LUA).as_posix()


def header(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    assert source.startswith("--[["), f"{path.name} does not open with a --[[ header"
    end = source.find("]]")
    assert end > 0, f"{path.name}: the header is never closed"
    return source[:end]


def body(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    return source[source.find("]]") + 2:].splitlines()


def test_there_are_scripts_and_libraries():
    assert len(SCRIPT_FILES) >= 12
    assert {p.stem for p in LIB_FILES} >= {"util", "processors", "placement", "lifecycle", "replay"}
    assert not (LUA / "_lib.lua").exists()


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=file_id)
def test_header_names_the_script(path):
    assert header(path).startswith(f"--[[ {path.stem}:")


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=file_id)
def test_header_names_the_fixed_keys_it_gets(path):
    assert f"  KEYS[1..{len(FIXED)}] the fixed keys (see lib/util): uses " in header(path)


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=file_id)
@pytest.mark.parametrize("word", ["KEYS", "ARGV", "Returns", "Invariant"])
def test_header_documents(path, word):
    assert word in header(path), f"the header of {path.name} does not mention {word}"


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=file_id)
def test_header_numbers_argv_from_one_without_gaps(path):
    numbers = sorted({int(n) for n in re.findall(r"ARGV\[(\d+)\]", header(path))})
    assert numbers and numbers == list(range(1, numbers[-1] + 1)), numbers


@pytest.mark.parametrize("path", LIB_FILES, ids=file_id)
def test_library_header_names_the_library(path):
    assert header(path).startswith(f"--[[ lib/{path.stem}: ")


def test_util_header_maps_the_keyspace():
    text = header(LUA / scripts.LIB_DIR / "util.lua")
    for i, name in enumerate(FIXED, start=1):
        assert f"KEYS[{i}] {name} " in text
    for key in ("t:<id>", "q:<queue>", "ik:<kind>:<queue>", "kinds", "kindn", "qk:<queue>", "p:<pid>",
                "p:<pid>:i", "p:<pid>:r", "p:<pid>:w", "g:<gid>", "gi:<gid>", "gs:<gid>", "w:<id>", "rate:<n>",
                "r:<rid>"):
        assert f"    {key} " in text, key
    others = [p for p in ALL_FILES if p.name != "util.lua" or p.parent.name != scripts.LIB_DIR]
    assert not [p for p in others if "KEYS[1] stats" in header(p)]  # one map, in one place


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_header_declares_what_it_includes_on_one_line(path):
    assert len(re.findall(r"^  Includes: ", header(path), re.M)) == 1


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_every_included_library_is_used(path):
    """The loader refuses a name a file does not include; this is the other half: a file
    includes only libraries it uses itself (not those it reaches through another library)."""
    tree = scripts.LuaTree(LUA)
    used = scripts.free_names(path.read_text(encoding="utf-8"))
    for lib in scripts.declared_includes(path.read_text(encoding="utf-8")):
        assert used & set(tree.libraries[lib].defines), f"{file_id(path)} includes {lib} and uses none of it"


def test_every_name_has_a_file_and_every_file_a_name():
    assert sorted(scripts.NAMES) == sorted(p.stem for p in SCRIPT_FILES)
    assert len(set(scripts.NAMES)) == len(scripts.NAMES)
    assert scripts.READ_ONLY <= set(scripts.NAMES)


# A statement at column 0 that assigns: `name = ...`, `a, b = ...`, `t.x = ...` (not `==`).
ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.\[\]'\"]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=(?!=)")
GLOBAL_FUNCTION = re.compile(r"^function\b")


def writes_a_global(line: str, source: str) -> bool:
    """An assignment at column 0 to a name (or a field of a table) that ``source`` does not
    define as a local: a global. ``C.now = ...`` with ``local C`` above is a local's field."""
    if not ASSIGNMENT.match(line):
        return False
    free = scripts.free_names(source)
    targets = line[:re.search(r"=(?!=)", line).start()].split(",")
    return any(re.match(r"\s*([A-Za-z_]\w*)", t).group(1) in free for t in targets)


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_no_global_assignments(path):
    source = path.read_text(encoding="utf-8")
    bad = []
    for number, line in enumerate(body(path), start=1):
        if line.startswith("local ") or line.startswith("--"):
            continue
        if writes_a_global(line, source) or GLOBAL_FUNCTION.match(line):
            bad.append(f"{path.name} body line {number}: {line}")
    assert bad == []


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_column_zero_lines_are_locals_control_calls_or_fields_of_locals(path):
    source = path.read_text(encoding="utf-8")
    allowed = re.compile(
        r"^(local\b|if\b|elseif\b|else\b|end\b|for\b|while\b|repeat\b|until\b|do\b|return\b|--|\]\]|$"
        r"|[A-Za-z_][\w.:]*\(|[})\]])")
    odd = [line for line in body(path) if line and not line[0].isspace() and not allowed.match(line)
           and not (ASSIGNMENT.match(line) and not writes_a_global(line, source))]
    assert odd == [], f"{path.name}: lines at column 0 that are neither local, control, a call, nor a local's field"


def test_the_checks_catch_a_global():
    """The regexes above are not vacuous."""
    assert ASSIGNMENT.match("count = 1")
    assert ASSIGNMENT.match("a, b = 1, 2")
    assert ASSIGNMENT.match("t.x = 1")
    assert not ASSIGNMENT.match("local count = 1")
    assert not ASSIGNMENT.match("redis.call('SET', k, v)")
    assert GLOBAL_FUNCTION.match("function helper(x)")
    assert not GLOBAL_FUNCTION.match("local function helper(x)")
    assert writes_a_global("count = 1", "count = 1")
    assert writes_a_global("t.x = 1", "t.x = 1")
    assert writes_a_global("C.now, g = 1, 2", "local C = {}\nC.now, g = 1, 2")
    assert not writes_a_global("C.now, C.keep_s = 1, 2", "local C = {}\nC.now, C.keep_s = 1, 2")


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_no_forbidden_commands(path):
    """No KEYS/SCAN walks (bounded work), no cmsgpack/bit/struct (the embedded server lacks them)."""
    code = "\n".join(line.split("--", 1)[0] for line in body(path))
    for pattern in (r"'KEYS'", r'"KEYS"', r"'SCAN'", r'"SCAN"', r"\bcmsgpack\b", r"\bbit\.", r"\bstruct\.",
                    r"redis\.sha1hex"):
        assert not re.search(pattern, code), f"{path.name} uses {pattern}"


# --- record field names: the constants of luasched/core/fields.py, never a literal -------------

#: Hash and stream commands, and which arguments after the key are field names.
FIELD_ARGS = {
    "HSET": lambda k: k % 2 == 1, "HSETNX": lambda k: k == 1, "HGET": lambda k: k >= 1,
    "HMGET": lambda k: k >= 1, "HDEL": lambda k: k >= 1, "HEXISTS": lambda k: k == 1,
    "HINCRBY": lambda k: k == 1, "XADD": lambda k: k >= 2 and k % 2 == 0,
}
STORED = {name for kind in fields.LUA_KINDS.values() for name in fields.names(kind).values()}
#: The task's and the processor's names: short, and no value a script writes is spelled the same.
RECORD_LETTERS = {name for kind in (fields.TASK, fields.PROCESSOR) for name in fields.names(kind).values()}


def literal(token) -> str | None:
    return token.text[1:-1] if token.kind == "string" and token.text[0] in "'\"" else None


def redis_calls(source: str):
    """(command, [argument tokens...]) of every redis.call / redis.pcall with a literal command."""
    toks = scripts.tokens(source)
    for i in range(len(toks) - 4):
        if [t.text for t in toks[i:i + 4]] in (["redis", ".", "call", "("], ["redis", ".", "pcall", "("]):
            args, cur, depth = [], [], 0
            for t in toks[i + 4:]:
                if t.text in ")]}" and depth == 0:
                    break
                depth += (t.text in "([{") - (t.text in ")]}")
                if t.text == "," and depth == 0:
                    args.append(cur)
                    cur = []
                else:
                    cur.append(t)
            args.append(cur)
            if args[0] and literal(args[0][0]):
                yield literal(args[0][0]).upper(), args[1:]


def field_literals(source: str) -> list[str]:
    """Field names spelled as literals: in a hash or stream command, or any literal that is a task
    or processor field (a table of fields built for HSET ... unpack())."""
    bad = []
    for cmd, args in redis_calls(source):
        is_field = FIELD_ARGS.get(cmd)
        for k, arg in enumerate(args[1:], start=1):
            value = literal(arg[0]) if arg else None
            if is_field and is_field(k) and value in STORED:
                bad.append(f"{cmd} field {value!r}")
    for tok in scripts.tokens(source):
        if literal(tok) in RECORD_LETTERS:
            bad.append(f"literal {tok.text}")
    return bad


@pytest.mark.parametrize("path", ALL_FILES, ids=file_id)
def test_no_literal_field_names(path):
    assert field_literals(path.read_text(encoding="utf-8")) == []


def test_the_field_check_catches_literals():
    assert field_literals("redis.call('HGET', tk, 's')") == ["HGET field 's'", "literal 's'"]
    assert field_literals("redis.call('HINCRBY', stats, 'done', 1)") == ["HINCRBY field 'done'"]
    assert field_literals("redis.call('HSET', pk, 'ack:' .. slot, memo)") == ["HSET field 'ack:'", "literal 'ack:'"]
    assert field_literals("redis.call('XADD', k, '*', 't', id)") == ["XADD field 't'"]
    assert field_literals("local f = {'f', name}") == ["literal 'f'"]
    assert field_literals("redis.call('HSET', tk, TASK_STATE, 'done')") == []
    assert field_literals("redis.call('HINCRBY', bucket, state, 1) -- 's'") == []
