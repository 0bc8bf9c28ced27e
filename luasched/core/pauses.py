"""Pauses (lua/pause.lua): the call that pauses or resumes a queue or the whole namespace, and
what the pauses HASH reads as. Every placing script skips a paused queue (lua/lib/util pauses)."""

from __future__ import annotations

from typing import Any

from .ops import Call, Namespace, _now, fields_of
from .options import check_queue
from .replies import Paused

#: What pause.lua names the whole namespace.
WHOLE_NAMESPACE = "*"


def pause(ns: Namespace, now_ms: int | None, action: str, queue: str | None) -> Call:
    """Pause (``action`` "pause") or resume ("resume") ``queue``, or the whole namespace (None)."""
    if action not in ("pause", "resume"):
        raise ValueError(f"pause: action must be 'pause' or 'resume', not {action!r}")
    return ns.call("pause", ns.prefix, _now(now_ms), action, WHOLE_NAMESPACE if queue is None else check_queue(queue))


def decode_paused(flat: Any) -> list[Paused]:
    """The pauses HASH (HGETALL) as Paused entries: the whole namespace first, then by queue."""
    out = []
    for scope, since in sorted(fields_of(flat).items()):
        if scope == WHOLE_NAMESPACE:
            out.append(Paused(None, int(since)))
        elif scope.startswith("q:"):
            out.append(Paused(scope[2:], int(since)))
    return sorted(out, key=lambda p: (p.queue is not None, p.queue or ""))
