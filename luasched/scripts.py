"""The one place that reads lua/*.lua and registers the scripts on a client.

Each script is sent as the part of ``_lib.lua`` it uses followed by the script's own file: the
helpers it names, and the helpers those name (a helper is a ``local`` at the top of ``_lib``;
each one the script runs is a closure made on every call, ~0.1 µs each, so the unused ones are
left out). The Scheduler sends EVALSHA, and on NOSCRIPT (a restarted or new server, a replica, a
cluster node that never saw it) loads the script and sends it again.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .core.options import READ_ONLY

__all__ = ["LIB", "NAMES", "READ_ONLY", "Scripts", "lib_for", "lua_dir", "sources"]

LIB = "_lib"

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
    "audit",
    "retry_failed",
    "processors",
)



def lua_dir() -> Path:
    """The installed ``luasched/lua`` (a wheel), or the source tree's top-level ``lua/``."""
    packaged = resources.files("luasched") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parent.parent / "lua"
    if source.is_dir():
        return source
    raise FileNotFoundError(f"luasched's Lua scripts are missing: neither {packaged} nor {source}")


_TOP_LOCAL = re.compile(r"^local (?:function (\w+)|([\w, ]+?) =)", re.M)
_COMMENT = re.compile(r"--\[\[.*?\]\]|--[^\n]*", re.S)
_NAME = re.compile(r"[A-Za-z_]\w*")


def _names_used(lua: str) -> set[str]:
    return set(_NAME.findall(_COMMENT.sub(" ", lua)))


def lib_for(lib: str, script: str) -> str:
    """The part of ``lib`` that ``script`` needs: its header, then every top-level local the
    script names, directly or through another one, in the order ``lib`` defines them."""
    starts = [m.start() for m in _TOP_LOCAL.finditer(lib)]
    if not starts:
        return lib
    header = lib[:starts[0]]
    chunks = [lib[a:b] for a, b in zip(starts, [*starts[1:], len(lib)], strict=True)]
    defines = []
    for chunk in chunks:
        m = _TOP_LOCAL.match(chunk)
        assert m is not None
        defines.append({n.strip() for n in (m.group(1) or m.group(2)).split(",")})
    wanted = _names_used(script)
    for i in reversed(range(len(chunks))):  # a local only uses those defined before it
        if defines[i] & wanted:
            wanted |= _names_used(chunks[i])
    return header + "".join(c for c, d in zip(chunks, defines, strict=True) if d & wanted)


@functools.cache
def sources() -> dict[str, str]:
    """name -> full source sent to Redis (the shared helpers it uses, then the script)."""
    folder = lua_dir()
    lib = (folder / f"{LIB}.lua").read_text(encoding="utf-8")
    out = {}
    for name in NAMES:
        script = (folder / f"{name}.lua").read_text(encoding="utf-8")
        out[name] = lib_for(lib, script) + "\n" + script
    return out


class Scripts:
    """The scripts registered on one client (sync or asyncio): ``scripts["dispatch"]`` is callable."""

    def __init__(self, client: Any) -> None:
        self._by_name = {name: client.register_script(src) for name, src in sources().items()}

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]
