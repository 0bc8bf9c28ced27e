"""The plain reads whose reply shape depends on the client, brought to one shape: a client you
give luasched may speak RESP2 or RESP3 (``protocol=3``), and redis-py shapes some RESP3 replies
its own way (its "legacy" RESP3 shapes, and redis-py 8's ``legacy_responses=False``). The
clients luasched makes speak RESP2; a client you pass in is used as it is, so every decoder of
such a read goes through here. Script replies (EVALSHA) have the same shape on both protocols:
luasched's scripts return strings, integers and arrays, never Lua booleans or doubles."""

from __future__ import annotations

from typing import Any

from .ops import fields_of, text


def stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREAD reply, every stream's in order, as (entry id, fields). Accepts
    RESP2's ``[[stream, entries]]``, redis-py's RESP3 ``{stream: [entries]}`` and its unified
    ``{stream: entries}``; each entry ``(id, fields)`` with fields a dict or a flat list."""
    if not reply:
        return []
    if isinstance(reply, dict):
        per_stream = [_unwrapped(v) for v in reply.values()]
    else:
        per_stream = [pair[1] for pair in reply]
    out = []
    for entries in per_stream:
        for entry_id, fields in entries or ():
            if entry_id is not None:  # an entry deleted since (XCLAIM's shape); never in a group's stream
                out.append((text(entry_id), fields_of(fields)))
    return out


def _unwrapped(entries: Any) -> Any:
    """redis-py's RESP3 XREAD wraps each stream's entries in a list of one; its unified shape
    does not: an entry's first item is its id, a wrapper's first item is an entry."""
    if entries and (not entries[0] or isinstance(entries[0][0], (list, tuple))):
        return entries[0]
    return entries


def scored(reply: Any) -> list[tuple[str, float]]:
    """A ZRANGE ... WITHSCORES reply as (member, score) pairs: RESP2's ``[(member, score)]``,
    RESP3's ``[[member, score]]``, or a flat ``[member, score, ...]`` (no reply callback)."""
    if not reply:
        return []
    if isinstance(reply[0], (list, tuple)):
        return [(text(member), float(score)) for member, score in reply]
    flat = text(list(reply))
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
