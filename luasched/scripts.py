"""The one place that reads lua/*.lua and registers the scripts on a client.

What is sent for a script is assembled by ``luatree``: the libraries its header includes (only
the helpers it uses), then the script. The Scheduler sends EVALSHA, and on NOSCRIPT (a restarted
or new server, a replica, a cluster node that never saw it) loads the script and sends it again.

To a server that reads script flags (Redis 7 and later, Valkey) each script goes with a shebang
line declaring them (``FLAGS``): a script that may write is then refused whole, before it runs,
when the server is out of memory, where without one Redis checks only its first write command
and lets the rest of it grow memory past ``maxmemory``. A server that cannot read a shebang
(the embedded server, Redis 6) gets the plain sources: ``Scripts`` holds which this client sends.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import redis.exceptions

from .core.options import READ_ONLY
from .luatree import CONTEXT, FIELDS, LIB_DIR, LuaTree, ScriptSourceError, declared_includes, free_names, tokens

__all__ = ["CONTEXT", "FIELDS", "FLAGS", "FUNCTIONS", "LIB_DIR", "NAMES", "READ_ONLY", "LuaTree", "ScriptSourceError",
           "Scripts", "build", "declared_includes", "flagged_sources", "free_names", "libraries", "lua_dir", "shebang",
           "sources", "tokens"]

#: Every script, by the name ops.py uses for it (= its file name without ``.lua``).
NAMES = (
    "submit",
    "dispatch",
    "start",
    "ack",
    "heartbeat",
    "reap",
    "cancel",
    "register",
    "deregister",
    "result",
    "counts",
    "metrics",
    "audit",
    "audit_slice",
    "retry_failed",
    "purge_finished",
    "processors",
    "pause",
    "policy",
    "limits",
    "explain",
    "relabel",
    "schedule",
    "fire",
    "schedules",
)

#: The flags a script declares in its shebang, where the server reads them; a script not named
#: here declares none (``#!lua``), so Redis refuses it whole, before it runs, when it is out of
#: memory (OOM), cannot save (MISCONF), is a replica (READONLY) or lacks replicas (NOREPLICAS).
#: - ``no-writes``: the read-only scripts (``READ_ONLY``): they run out of memory and on
#:   replicas, and the server refuses any write they attempt;
#: - ``allow-oom``: scripts that run out of memory because they cannot grow it. heartbeat
#:   writes only over what register wrote (the lease in procs, its record's two times, its
#:   card), with numbers of the same length; result writes at most the one-byte waiter flag
#:   into an existing task record, once per task. Keeping leases through an out-of-memory
#:   spell spares the reap, the re-registrations and the duplicates that lapsed leases cost
#:   after it, and a finished task's result stays readable.
FLAGS: dict[str, str] = {**{name: "no-writes" for name in sorted(READ_ONLY)},
                         "heartbeat": "allow-oom", "result": "allow-oom"}

#: What a server that cannot read a shebang answers to one (Lua 5.1 compiling ``#!lua``):
#: Redis 6 when the script is loaded, the embedded server when it runs.
_SHEBANG_UNREAD = re.compile(r":1: unexpected symbol near '#'")


def lua_dir() -> Path:
    """The installed ``luasched/lua`` (a wheel), or the source tree's top-level ``lua/``."""
    packaged = resources.files("luasched") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parent.parent / "lua"
    if source.is_dir():
        return source
    raise FileNotFoundError(f"luasched's Lua scripts are missing: neither {packaged} nor {source}")


@functools.cache
def _tree(folder: Path) -> LuaTree:
    return LuaTree(folder)


def build(script: str, label: str, folder: Path | None = None) -> str:
    """The source sent to Redis for the Lua text ``script`` (a file of ``folder``, named
    ``label`` in errors): the parts of the libraries it includes that it uses, then itself."""
    return _tree(folder or lua_dir()).build(script, label)


@functools.cache
def sources(folder: Path | None = None) -> dict[str, str]:
    """name -> full source sent to Redis, for every script of ``folder`` (default: lua_dir())."""
    folder = folder or lua_dir()
    tree = _tree(folder)  # every library checked, used or not
    return {path.stem: tree.build(path.read_text(encoding="utf-8"), tree.where(path))
            for path in sorted(folder.glob("*.lua"))}


def shebang(name: str) -> str:
    """The first line of script ``name`` for a server that reads script flags (``FLAGS``)."""
    flags = FLAGS.get(name)
    return f"#!lua flags={flags}\n" if flags else "#!lua\n"


@functools.cache
def flagged_sources(folder: Path | None = None) -> dict[str, str]:
    """name -> source sent to a server that reads script flags: ``shebang`` + ``sources``. The
    shebang replaces no line: Redis reports the same line numbers as for the plain source."""
    return {name: shebang(name) + src for name, src in sources(folder).items()}


#: The scripts sent as Redis Functions where the server has them (Redis 7+, Valkey): the ones that
#: may write, which run on the primary. A function library defines its helpers once, when it is
#: loaded; an EVALSHA runs a script's whole text on every call, making each helper anew (~14 µs
#: of a submit's ~25 µs in Redis on this machine). The read-only scripts stay scripts: they also
#: run on replicas, which cannot load a library. So do the ``allow-oom`` ones: FUNCTION LOAD is
#: refused out of memory (SCRIPT LOAD is not), and they must run then, even on first use.
FUNCTIONS = tuple(name for name in NAMES if name not in FLAGS)

#: What a server answers to FCALL or FUNCTION LOAD when it has no functions (Redis 6, the embedded
#: server) or the user may not use them (an ACL without +fcall, +function|load): the call never ran.
_NO_FUNCTIONS = re.compile(r"unknown command .?(fcall|function)|permissions? to run the .?(fcall|function)",
                           re.IGNORECASE)


@functools.cache
def libraries(folder: Path | None = None) -> dict[str, tuple[str, str]]:
    """name -> (function name, library source) of every script of ``FUNCTIONS``. The name holds a
    hash of the source, as an EVALSHA's sha does, so that versions of luasched share a server; the
    script runs as the function's body, its KEYS and ARGV the function's arguments. No script
    of FUNCTIONS has a flag: each function declares none (it may write, and is refused whole when
    Redis is out of memory, as a script with a bare shebang is)."""
    folder = folder or lua_dir()
    tree = _tree(folder)
    out = {}
    for name in FUNCTIONS:
        path = folder / f"{name}.lua"
        helpers, body = tree.parts(path.read_text(encoding="utf-8"), tree.where(path))
        function = f"luasched_{name}_{hashlib.sha1((helpers + body).encode()).hexdigest()[:16]}"
        register = f"redis.register_function{{function_name='{function}', flags={{}}, callback=function(KEYS, ARGV)"
        out[name] = (function, f"#!lua name={function}\n{helpers}\n{register}\n{body}\nend}}\n")
    return out


class Scripts:
    """The scripts registered on one client (sync or asyncio): ``scripts["dispatch"]`` is callable,
    with ``.sha`` and ``.script``, as the client sends it now.

    ``flagged`` says which sources the client sends: with their shebang (``flagged_sources``) or
    plain (``sources``). It starts True but for the embedded server, and turns False for good
    when a server shows it cannot read a shebang (``unflag``), so that every path (one call, a
    pipeline, a call behind a BLPOP, the NOSCRIPT reload) sends what this one attribute says."""

    def __init__(self, client: Any, *, flagged: bool = True, functions: bool = True) -> None:
        self.flagged = flagged
        self.functions = functions
        self._flagged = {name: client.register_script(src) for name, src in flagged_sources().items()}
        self._plain = {name: client.register_script(src) for name, src in sources().items()}
        self._libraries = libraries()

    def __getitem__(self, name: str) -> Any:
        return (self._flagged if self.flagged else self._plain)[name]

    def command(self, script: str, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        """The command that runs ``script``: FCALL of its function while this client sends
        functions (``functions``) and it is one, else EVALSHA."""
        if self.functions and script in self._libraries:
            return ("FCALL", self._libraries[script][0], len(keys), *keys, *args)
        return ("EVALSHA", self[script].sha, len(keys), *keys, *args)

    def library(self, script: str) -> str | None:
        """The function library to load for ``script``, or None when it goes as a script."""
        found = self._libraries.get(script) if self.functions else None
        return found[1] if found else None

    def refused(self, reply: object) -> bool:
        """Whether ``reply`` (to FCALL or FUNCTION LOAD) means the call never ran and is to be sent
        again: its library is not loaded (a new or restarted server, FUNCTION FLUSH), or the
        server has no functions or the user may not use them, in which case this client sends
        scripts (EVALSHA) from now on, as it did before functions."""
        if not isinstance(reply, redis.exceptions.ResponseError):
            return False
        if str(reply).startswith("Function not found"):
            return True
        if _NO_FUNCTIONS.search(str(reply)):
            self.functions = False  # (already False when another thread's call learnt it first)
            return True
        return False

    def unflag(self, reply: object) -> bool:
        """Whether ``reply`` (to loading or running a script) is a server that cannot read a
        shebang (a compile error on line 1, which only a shebang can cause: every plain source
        opens with a comment). The script did not run: from now on this client sends the plain
        sources, and the caller sends the call again. (Such a server checks memory only at a
        script's first write command: luasched cannot do better there.)"""
        if not isinstance(reply, Exception) or not _SHEBANG_UNREAD.search(str(reply)):
            return False
        self.flagged = False  # (already False when another thread's call learnt it first)
        return True
