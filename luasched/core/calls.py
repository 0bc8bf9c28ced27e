"""What a script call is: its name, KEYS and ARGV, and the namespace that makes them; a plain
command; a reply's bytes as str. The vocabulary ``ops`` and the other builders of calls share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .keys import Keys


@dataclass(frozen=True)
class Call:
    """One script call: the script's name, its KEYS and its ARGV."""

    script: str
    keys: tuple[str, ...]
    args: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """One plain Redis command, e.g. ``Command("blpop", (key, 5))``."""

    name: str
    args: tuple[Any, ...]


Request = Call | Command


def text(value: Any) -> Any:
    """A reply with every bytes turned into str (clients made with or without decode_responses).
    Replies are lists of many short strings (a batch's tasks): a flat list costs no call per item."""
    kind = type(value)
    if kind is list:
        return [v.decode() if type(v) is bytes else text(v) if type(v) is list else v for v in value]
    if kind is bytes:
        return value.decode()
    return value


def _now(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


@dataclass(frozen=True)
class Namespace:
    """What every call of one namespace needs: its key names and how long to keep records."""

    keys: Keys
    keep_s: int = 86400

    @property
    def prefix(self) -> str:
        return self.keys.prefix

    def call(self, script: str, *args: object) -> Call:
        return Call(script, self.keys.fixed, tuple(a if type(a) is str else str(a) for a in args))
