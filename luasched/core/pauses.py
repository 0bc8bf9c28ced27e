"""Pauses (lua/pause.lua): the call that pauses or resumes a scope (the whole namespace, a queue,
a task key in every queue, or a key in one queue), and what the pauses HASH reads as. Every
placing script skips what a pause covers (lua/lib/util pauses)."""

from __future__ import annotations

from typing import Any

from .ops import Call, Namespace, _now, fields_of
from .options import check_key, check_queue
from .replies import Paused

#: What pause.lua names the whole namespace.
WHOLE_NAMESPACE = "*"


def pause(ns: Namespace, now_ms: int | None, action: str, queue: str | None, key: str | None = None) -> Call:
    """Pause (``action`` "pause") or resume ("resume") ``queue``, or every queue (None); only the
    tasks of ``key`` in it when a key is given."""
    if action not in ("pause", "resume"):
        raise ValueError(f"pause: action must be 'pause' or 'resume', not {action!r}")
    scope = WHOLE_NAMESPACE if queue is None else check_queue(queue)
    return ns.call("pause", ns.prefix, _now(now_ms), action, scope, "" if key is None else check_key(key))


def scope_of(field: str) -> tuple[str | None, str | None] | None:
    """(queue, key) a field of the pauses HASH names (None: every queue, or no key): ``*``,
    ``q:<queue>``, ``k:<key>``, ``qk:<bytes of queue>:<queue>:<key>``; None when it is malformed."""
    if field == WHOLE_NAMESPACE:
        return None, None
    kind, _, rest = field.partition(":")
    if kind == "q" and rest:
        return rest, None
    if kind == "k" and rest:
        return None, rest
    if kind == "qk":
        size, _, tail = rest.partition(":")
        if size.isdigit():
            raw, n = tail.encode(), int(size)
            queue, sep, key = raw[:n], raw[n:n + 1], raw[n + 1:]
            if queue.isascii() and queue and sep == b":" and key:  # queue names are ASCII
                return queue.decode(), key.decode()
    return None


def decode_paused(flat: Any) -> list[Paused]:
    """The pauses HASH (HGETALL) as Paused entries: the whole namespace first, then the queues,
    then the keys of every queue, then the keys of one queue (each sorted by name)."""
    out = []
    for field, since in fields_of(flat).items():
        scope = scope_of(field)
        if scope is not None:
            out.append(Paused(scope[0], int(since), scope[1]))
    return sorted(out, key=lambda p: (p.key is not None, p.queue is not None, p.queue or "", p.key or ""))
