"""Every lua/*.lua opens with its header, matches a name in luasched.scripts, and uses no globals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from luasched import scripts

LUA = scripts.lua_dir()
SCRIPT_FILES = sorted(p for p in LUA.glob("*.lua") if p.stem != scripts.LIB)
ALL_FILES = sorted(LUA.glob("*.lua"))


def header(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    assert source.startswith("--[["), f"{path.name} does not open with a --[[ header"
    end = source.find("]]")
    assert end > 0, f"{path.name}: the header is never closed"
    return source[:end]


def body(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    return source[source.find("]]") + 2:].splitlines()


def test_there_are_scripts():
    assert len(SCRIPT_FILES) >= 12
    assert (LUA / f"{scripts.LIB}.lua").is_file()


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
def test_header_names_the_script(path):
    assert header(path).startswith(f"--[[ {path.stem}:")


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("word", ["KEYS", "ARGV", "Returns", "Invariant"])
def test_header_documents(path, word):
    assert word in header(path), f"the header of {path.name} does not mention {word}"


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
def test_header_numbers_argv_from_one_without_gaps(path):
    numbers = sorted({int(n) for n in re.findall(r"ARGV\[(\d+)\]", header(path))})
    assert numbers and numbers == list(range(1, numbers[-1] + 1)), numbers


def test_lib_header_maps_the_keyspace():
    text = header(LUA / f"{scripts.LIB}.lua")
    assert text.startswith(f"--[[ {scripts.LIB}:")
    for i in range(1, 9):
        assert f"KEYS[{i}]" in text


def test_every_name_has_a_file_and_every_file_a_name():
    assert sorted(scripts.NAMES) == sorted(p.stem for p in SCRIPT_FILES)
    assert len(set(scripts.NAMES)) == len(scripts.NAMES)
    assert scripts.READ_ONLY <= set(scripts.NAMES)


# A statement at column 0 that assigns: `name = ...`, `a, b = ...`, `t.x = ...` (not `==`).
ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.\[\]'\"]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=(?!=)")
GLOBAL_FUNCTION = re.compile(r"^function\b")


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_no_global_assignments(path):
    bad = []
    for number, line in enumerate(body(path), start=1):
        if line.startswith("local ") or line.startswith("--"):
            continue
        if ASSIGNMENT.match(line) or GLOBAL_FUNCTION.match(line):
            bad.append(f"{path.name} body line {number}: {line}")
    assert bad == []


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_column_zero_lines_are_locals_control_or_calls(path):
    allowed = re.compile(
        r"^(local\b|if\b|elseif\b|else\b|end\b|for\b|while\b|repeat\b|until\b|do\b|return\b|--|\]\]|$"
        r"|[A-Za-z_][\w.:]*\(|[})\]])")
    odd = [line for line in body(path) if line and not line[0].isspace() and not allowed.match(line)]
    assert odd == [], f"{path.name}: lines at column 0 that are neither local, control, nor a call"


def test_the_checks_catch_a_global():
    """The regexes above are not vacuous."""
    assert ASSIGNMENT.match("count = 1")
    assert ASSIGNMENT.match("a, b = 1, 2")
    assert ASSIGNMENT.match("t.x = 1")
    assert not ASSIGNMENT.match("local count = 1")
    assert not ASSIGNMENT.match("redis.call('SET', k, v)")
    assert GLOBAL_FUNCTION.match("function helper(x)")
    assert not GLOBAL_FUNCTION.match("local function helper(x)")


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_no_forbidden_commands(path):
    """No KEYS/SCAN walks (bounded work), no cmsgpack/bit/struct (the embedded server lacks them)."""
    code = "\n".join(line.split("--", 1)[0] for line in body(path))
    for pattern in (r"'KEYS'", r'"KEYS"', r"'SCAN'", r'"SCAN"', r"\bcmsgpack\b", r"\bbit\.", r"\bstruct\.",
                    r"redis\.sha1hex"):
        assert not re.search(pattern, code), f"{path.name} uses {pattern}"
