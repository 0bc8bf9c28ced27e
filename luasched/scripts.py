"""The one place that reads lua/*.lua and registers the scripts on a client.

What is sent for a script is assembled by ``luatree``: the libraries its header includes (only
the helpers it uses), then the script. The Scheduler sends EVALSHA, and on NOSCRIPT (a restarted
or new server, a replica, a cluster node that never saw it) loads the script and sends it again.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from .core.options import READ_ONLY
from .luatree import CONTEXT, FIELDS, LIB_DIR, LuaTree, ScriptSourceError, declared_includes, free_names, tokens

__all__ = ["CONTEXT", "FIELDS", "LIB_DIR", "NAMES", "READ_ONLY", "LuaTree", "ScriptSourceError", "Scripts",
           "build", "declared_includes", "free_names", "lua_dir", "sources", "tokens"]

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
    "audit_slice",
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


class Scripts:
    """The scripts registered on one client (sync or asyncio): ``scripts["dispatch"]`` is callable."""

    def __init__(self, client: Any) -> None:
        self._by_name = {name: client.register_script(src) for name, src in sources().items()}

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]
