"""Lua sources as a tree of scripts and libraries: read the includes, check the names, and
assemble what is sent for a script (scripts.py reads the files and registers the result).

Shared Lua lives in libraries, ``lua/lib/<name>.lua``. A script (or a library) names the ones it
uses on an ``Includes:`` line of its header; what is sent for a script is those libraries (and
the ones they include, dependencies first), then the script. One more library is made here: the
pseudo-library ``fields``, a constant per record field name of luasched/core/fields.py
(``TASK_STATE`` for ``"s"``), so that Lua and Python spell each stored name in one place. A file
includes it like any other library, and the loader writes each constant it uses as its literal
(``'s'``) in what it sends: Lua 5.1 has no compile-time constants, and as locals they were
captured by each helper's closure, made on every call (ack: 2.2 µs more per call).

Of each library only the top-level locals the script uses, directly or through other helpers,
are sent: each one the script runs is a closure made on every call (~0.1 µs each), so the unused
ones are left out.

A file is refused (ScriptSourceError) when it uses a name that neither it defines nor a Lua or
Redis builtin is nor a library its header includes defines, when it includes a library that does
not exist, or when includes form a cycle; a library also when it uses one of its own helpers
before defining it, or defines a name another library defines.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .core.fields import lua_constants
from .core.keys import FIXED

#: The folder of lua/ that holds the libraries.
LIB_DIR = "lib"

#: The pseudo-library of the record field names (luasched/core/fields.py) as Lua constants.
FIELDS = "fields"

#: What a call's context C holds, by slot: it is the call's KEYS table (the fixed keys in FIXED's
#: order), then the prefix, now and keep_s, and the observations lib/metrics gathers in the call.
#: Lua files write C.<name>; what is sent has C[<slot>].
CONTEXT = (*FIXED, "prefix", "now", "keep_s", "observed")

#: Globals a script may use without defining them: Lua 5.1's and Redis's (not cmsgpack, bit,
#: struct: the embedded server lacks them; not os, io: real Redis lacks them).
BUILTINS = frozenset({
    "redis", "cjson", "KEYS", "ARGV", "unpack", "tonumber", "tostring", "type", "pairs", "ipairs",
    "next", "select", "error", "pcall", "xpcall", "assert", "rawget", "rawset", "rawequal",
    "getmetatable", "setmetatable", "string", "table", "math",
})

KEYWORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in", "local",
    "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
})


class ScriptSourceError(ValueError):
    """A Lua file the loader refuses: it names the file, the name and where it is defined."""


# --- reading Lua: tokens, the names a piece of code uses and defines ----------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--(?:\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|[^\n]*))
  | (?P<string>\[(?P<seq>=*)\[.*?\](?P=seq)\]|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^\#<>=(){}\[\];:,.])
""", re.X | re.S)

_OPENS = {"(": ")", "[": "]", "{": "}"}
_HEADER = re.compile(r"--\[(=*)\[(.*?)\]\1\]", re.S)
_INCLUDES = re.compile(r"^\s*Includes:(.*)$", re.M)


@dataclass(frozen=True)
class Token:
    kind: str  # 'name' | 'keyword' | 'string' | 'number' | 'op'
    text: str
    at: int  # offset in the source


def tokens(source: str, label: str = "<lua>") -> list[Token]:
    """The tokens of Lua source, without spaces and comments (a string is one token)."""
    out = []
    at = 0
    while at < len(source):
        m = _TOKEN.match(source, at)
        if not m:
            line = source.count("\n", 0, at) + 1
            raise ScriptSourceError(f"{label}: cannot read line {line} ({source[at:at + 20]!r}: an unclosed string?)")
        kind = m.lastgroup  # the outer group: the inner ones close before it
        assert kind is not None
        if kind not in ("space", "comment"):
            text = m.group()
            if kind == "name" and text in KEYWORDS:
                kind = "keyword"
            out.append(Token(kind, text, at))
        at = m.end()
    return out


@dataclass(frozen=True)
class _Names:
    """What a piece of Lua uses and defines (scope-insensitive): ``free`` are the names it uses
    and defines nowhere (fields after '.'/':' and table-constructor keys are no names)."""

    uses: tuple[Token, ...]  # each name token that is a use
    defined: frozenset[str]

    @property
    def used(self) -> frozenset[str]:
        return frozenset(t.text for t in self.uses)

    @property
    def free(self) -> frozenset[str]:
        return self.used - self.defined - BUILTINS


def _names(toks: list[Token]) -> _Names:
    uses: list[Token] = []
    defined: set[str] = set()
    brackets: list[str] = []  # the open brackets, innermost last
    i = 0
    while i < len(toks):
        tok = toks[i]
        prev = toks[i - 1].text if i else ""
        if tok.kind == "op" and tok.text in _OPENS:
            brackets.append(tok.text)
        elif tok.kind == "op" and tok.text in _OPENS.values():
            if brackets:
                brackets.pop()
        elif tok.text == "local" and i + 1 < len(toks) and toks[i + 1].text != "function":
            i += 1  # local a, b
            while i < len(toks) and toks[i].kind == "name":
                defined.add(toks[i].text)
                if i + 1 < len(toks) and toks[i + 1].text == ",":
                    i += 2
                else:
                    break
        elif tok.text == "for":
            i += 1  # for k, v in / for i =
            while i < len(toks) and toks[i].text not in ("in", "="):
                if toks[i].kind == "name":
                    defined.add(toks[i].text)
                i += 1
            continue
        elif tok.text == "function":
            i += 1  # function name.field:method(params) / local function name(params) / function(params)
            if prev == "local" and i < len(toks) and toks[i].kind == "name":
                defined.add(toks[i].text)
                i += 1
            elif i < len(toks) and toks[i].kind == "name":
                uses.append(toks[i])  # a global function: the name is written, not defined
                while i < len(toks) and toks[i].text != "(":
                    i += 1
            if i < len(toks) and toks[i].text == "(":
                brackets.append("(")
                i += 1
                while i < len(toks) and toks[i].text != ")":
                    if toks[i].kind == "name":
                        defined.add(toks[i].text)
                    i += 1
                continue  # the ')' closes the bracket
        elif tok.kind == "name":
            after = toks[i + 1].text if i + 1 < len(toks) else ""
            field = prev in (".", ":")
            key = bool(brackets) and brackets[-1] == "{" and prev in ("{", ",", ";") and after == "="
            if not field and not key:
                uses.append(tok)
        i += 1
    return _Names(tuple(uses), frozenset(defined))


def _written(source: str, label: str, toks: list[Token], names: _Names, constants: dict[str, str],
             lines_before: int = 0) -> str:
    """``source`` with each use of a field constant written as its literal, and each C.<name>
    (the call's context) as its slot C[<n>]. ``lines_before``: where source starts in its file."""
    shadowed = names.defined & constants.keys()
    if shadowed:
        raise ScriptSourceError(f"{label} defines {min(shadowed)}, a name of the {FIELDS} library")
    uses = {t.at for t in names.uses}
    out, at = [], 0
    for i, tok in enumerate(toks):
        if tok.text != "C" and (tok.at not in uses or tok.text not in constants):
            continue
        after = toks[i + 1].text if i + 1 < len(toks) else ""
        line = lines_before + source.count("\n", 0, tok.at) + 1
        if tok.at not in uses:  # a field named C: pl.C
            if after == ".":
                raise ScriptSourceError(f"{label} line {line}: reads a context through a field; pass it to a "
                                        "local or parameter named C first")
        elif tok.text in constants:
            out += [source[at:tok.at], f"'{constants[tok.text]}'"]
            at = tok.at + len(tok.text)
        elif after in (".", ":", "["):
            field = toks[i + 2].text if i + 2 < len(toks) else ""
            if after != "." or field not in CONTEXT:
                raise ScriptSourceError(f"{label} line {line}: C{after}{field} is no field of the context "
                                        f"(it holds {', '.join(CONTEXT)})")
            out += [source[at:toks[i + 1].at], f"[{CONTEXT.index(field) + 1}]"]
            at = toks[i + 2].at + len(field)
    return "".join(out) + source[at:]


def free_names(source: str, label: str = "<lua>") -> frozenset[str]:
    """The names a piece of Lua uses without defining them (and that no builtin is)."""
    return _names(tokens(source, label)).free


def declared_includes(source: str) -> tuple[str, ...]:
    """The libraries a file's header names on its ``Includes:`` line(s), in order (text in
    parentheses is a remark: ``Includes: (none)``)."""
    header = _HEADER.match(source)
    if not header:
        return ()
    names: list[str] = []
    for line in _INCLUDES.findall(header.group(2)):
        names += [n for n in re.split(r"[\s,]+", re.sub(r"\(.*?\)", " ", line)) if n]
    return tuple(names)


# --- libraries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    """One top-level local of a library (with the comment lines just above it)."""

    defines: frozenset[str]
    text: str
    free: frozenset[str]


@dataclass(frozen=True)
class _Library:
    name: str
    label: str  # as errors name it: "lua/lib/util.lua"
    includes: tuple[str, ...]
    chunks: tuple[_Chunk, ...]
    where: str = ""  # as errors name where a name is defined: "lib/util"

    @functools.cached_property
    def defines(self) -> dict[str, _Chunk]:
        return {n: c for c in self.chunks for n in c.defines}


def _chunk_starts(source: str, toks: list[Token], label: str) -> Iterator[int]:
    """Where each top-level ``local`` of a library starts (its comment lines above included);
    a library holds nothing else at the top level."""
    depth = 0  # blocks and brackets open
    for tok in toks:
        if depth == 0 and tok.text == "local":
            line = source.rfind("\n", 0, tok.at) + 1
            while line > 0:
                above = source.rfind("\n", 0, line - 1) + 1
                if not source[above:line].lstrip().startswith("--"):
                    break
                line = above
            yield line
        elif depth == 0 and tok.kind == "keyword" and tok.text in ("if", "for", "while", "repeat", "do", "return"):
            line = source.count("\n", 0, tok.at) + 1
            raise ScriptSourceError(f"{label} line {line}: a library holds only top-level locals, not {tok.text!r}")
        if tok.text in ("function", "do", "then", "repeat") or tok.text in _OPENS:
            depth += 1
        elif tok.text in ("end", "until", "elseif") or tok.text in _OPENS.values():
            depth -= 1  # (an elseif's 'then' opens again)


def _library(name: str, label: str, source: str, constants: dict[str, str]) -> _Library:
    toks = tokens(source, label)
    starts = list(_chunk_starts(source, toks, label))
    chunks = []
    for a, b in zip(starts, [*starts[1:], len(source)], strict=True):
        text = source[a:b].rstrip("\n") + "\n"
        chunk_toks = tokens(text, label)
        names = _names(chunk_toks)
        first = re.search(r"^local (?:function (\w+)|([\w, ]+?)\s*=)", text, re.M)
        if not first:
            raise ScriptSourceError(f"{label}: cannot read the top-level local at offset {a}")
        defines = frozenset(n.strip() for n in (first.group(1) or first.group(2)).split(","))
        written = _written(text, label, chunk_toks, names, constants, source.count("\n", 0, a))
        chunks.append(_Chunk(defines, written, names.free))
    return _Library(name, label, declared_includes(source), tuple(chunks), f"{LIB_DIR}/{name}")


def _fields_library(constants: dict[str, str]) -> _Library:
    """One chunk per constant, with nothing to send: a use of it is written as its literal."""
    for stored in constants.values():
        assert re.fullmatch(r"[\w:]+", stored), stored
    chunks = tuple(_Chunk(frozenset({name}), "", frozenset()) for name in constants)
    return _Library(FIELDS, "luasched/core/fields.py", (), chunks, FIELDS)


def _where(folder: Path, path: Path) -> str:
    return f"{folder.name}/{path.relative_to(folder).as_posix()}"


class LuaTree:
    """The libraries of one lua/ folder, checked, and the scripts built from them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.constants = lua_constants()
        self.libraries: dict[str, _Library] = {FIELDS: _fields_library(self.constants)}
        for path in sorted((folder / LIB_DIR).glob("*.lua")):
            if path.stem == FIELDS:
                raise ScriptSourceError(f"{_where(folder, path)}: {FIELDS} is the pseudo-library of the field "
                                        "names (luasched/core/fields.py); name this library otherwise")
            self.libraries[path.stem] = _library(path.stem, _where(folder, path),
                                                 path.read_text(encoding="utf-8"), self.constants)
        self.owner: dict[str, str] = {}  # top-level name -> the library defining it
        for lib in self.libraries.values():
            for n in lib.defines:
                if n in self.owner:
                    raise ScriptSourceError(f"{lib.label} defines {n}, which "
                                            f"{self.libraries[self.owner[n]].where} defines too")
                self.owner[n] = lib.name
        for lib in self.libraries.values():
            self._check_library(lib)

    def _order(self, includes: Iterable[str], label: str, path: tuple[str, ...] = ()) -> list[str]:
        """Every library reached from ``includes``, dependencies first."""
        out: list[str] = []
        for name in includes:
            if name in path:
                cycle = " -> ".join(f"{LIB_DIR}/{n}" for n in (*path[path.index(name):], name))
                raise ScriptSourceError(f"include cycle: {cycle}")
            lib = self.libraries.get(name)
            if lib is None:
                raise ScriptSourceError(f"{label} includes {name}, which is no library "
                                        f"({self.folder.name}/{LIB_DIR}/{name}.lua does not exist)")
            for dep in [*self._order(lib.includes, lib.label, (*path, name)), name]:
                if dep not in out:
                    out.append(dep)
        return out

    def _refuse_undeclared(self, label: str, free: Iterable[str], includes: tuple[str, ...]) -> None:
        for n in sorted(free):
            owner = self.owner.get(n)
            if owner is None:
                raise ScriptSourceError(f"{label} uses {n}, which no included library defines")
            if owner not in includes:
                raise ScriptSourceError(f"{label} uses {n} (defined in {self.libraries[owner].where}), "
                                        "which its header does not include")

    def _check_library(self, lib: _Library) -> None:
        self._order(lib.includes, lib.label, (lib.name,))
        seen: set[str] = set()
        for chunk in lib.chunks:
            own = chunk.free & set(lib.defines)
            later = own - seen - chunk.defines
            if later:
                raise ScriptSourceError(f"{lib.label} uses {min(later)} before it defines it")
            self._refuse_undeclared(lib.label, chunk.free - own, lib.includes)
            seen |= chunk.defines

    def where(self, path: Path) -> str:
        """How errors name a file of this folder (``lua/ack.lua``)."""
        return _where(self.folder, path)

    def build(self, script: str, label: str) -> str:
        """What is sent for ``script``: the parts of its libraries it uses, then the script."""
        return "".join(self.parts(script, label))

    def parts(self, script: str, label: str) -> tuple[str, str]:
        """``build``'s two parts: the libraries' (what a Redis Function library defines once) and
        the script's own (what runs on every call)."""
        includes = declared_includes(script)
        order = self._order(includes, label)
        toks = tokens(script, label)
        names = _names(toks)
        free = names.free
        self._refuse_undeclared(label, free, includes)
        wanted = {n for n in free if n in self.owner}
        # a helper only uses helpers sent before it: one pass from the last library back is enough
        for name in reversed(order):
            for chunk in reversed(self.libraries[name].chunks):
                if chunk.defines & wanted:
                    wanted |= {n for n in chunk.free if n in self.owner}
        parts = []
        for name in order:
            lib = self.libraries[name]
            sent = [c.text for c in lib.chunks if c.defines & wanted and c.text]
            if sent:
                parts.append(f"-- {lib.where}\n" + "".join(sent))
        return "".join(parts), _written(script, label, toks, names, self.constants)


