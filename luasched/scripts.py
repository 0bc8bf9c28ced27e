"""The one place that reads lua/*.lua and registers the scripts on a client.

Each script is sent as ``_lib.lua`` followed by the script's own file. redis-py's
``register_script`` does the rest: EVALSHA, and on NOSCRIPT (a restarted or new server, a
replica, a cluster node that never saw it) it loads the script and retries once.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

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

#: Scripts that write nothing and may run on a replica.
READ_ONLY = frozenset({"counts", "audit", "processors"})


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
def sources() -> dict[str, str]:
    """name -> full source sent to Redis (the shared helpers, then the script)."""
    folder = lua_dir()
    lib = (folder / f"{LIB}.lua").read_text(encoding="utf-8")
    return {name: lib + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8") for name in NAMES}


class Scripts:
    """The scripts registered on one client (sync or asyncio): ``scripts["dispatch"]`` is callable."""

    def __init__(self, client: Any) -> None:
        self._by_name = {name: client.register_script(src) for name, src in sources().items()}

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]
