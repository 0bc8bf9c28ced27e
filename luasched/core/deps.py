"""Tasks that wait for others: ``TaskHandle.then`` (a chain), ``Group.then`` (a chord) and
``submit(..., _after=[...])``. Pure: what submit sends for such a task (its deps field, which
lua/submit.lua reads), checked before anything is written.

A waiting task is created at once, in the ``waiting`` place. The script that finishes the last
of what it waits for (ack, reap to failed, cancel, expiry: lib/lifecycle ``finish``) moves it on,
atomically: queued, with the results spliced in as its first argument when it is fed (``then``);
or, when one of them ended failed or cancelled, as ``_on_failure`` says. Parents exist before the
child is created, so a cycle cannot be built."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .checks import check_task_id

#: What a waiting task does when something it waits for ended failed or cancelled: ``fail`` (it
#: ends failed with DependencyFailed, without running), ``run`` (it runs; a fed failed member
#: appears as ``{"error": message, "type": type}``) or ``skip`` (it ends cancelled).
ON_FAILURE = ("fail", "run", "skip")

#: The most tasks and groups one task may wait for.
MAX_PARENTS = 1000


def check_on_failure(value: object) -> str:
    if value not in ON_FAILURE:
        raise ValueError(f"_on_failure must be one of {', '.join(map(repr, ON_FAILURE))}, not {value!r}")
    return str(value)


def ref_of(parent: Any, namespace: str) -> str:
    """'t:<id>' for a TaskHandle or a task id, 'g:<gid>' for a Group (of ``namespace``)."""
    if isinstance(parent, str):
        return "t:" + check_task_id(parent, "_after (a task id)")
    group_ids = getattr(parent, "ids", None)
    parent_id = getattr(parent, "id", None)
    if not isinstance(parent_id, str) or not hasattr(parent, "namespace"):
        raise TypeError(f"_after takes TaskHandles, Groups or task ids, not {type(parent).__name__}")
    if parent.namespace != namespace:
        raise ValueError(f"{'group' if group_ids is not None else 'task'} {parent_id} belongs to namespace "
                         f"{parent.namespace!r}, not {namespace!r}: a task waits only within its namespace")
    return ("g:" if group_ids is not None else "t:") + parent_id


def deps_field(parents: Iterable[Any], namespace: str, on_failure: object, *, feed: bool) -> str:
    """The deps field of a task that waits for ``parents`` (lua/submit.lua's header)."""
    if isinstance(parents, (str, bytes)) or not isinstance(parents, Iterable):
        raise TypeError("_after must be a list of TaskHandles, Groups or task ids")
    refs = list(dict.fromkeys(ref_of(p, namespace) for p in parents))
    if not refs:
        raise ValueError("_after is empty: name at least one task or group to wait for")
    if len(refs) > MAX_PARENTS:
        raise ValueError(f"_after names {len(refs)} tasks and groups, more than {MAX_PARENTS}")
    return f"{check_on_failure(on_failure)}\n{'1' if feed else '0'}\n{','.join(refs)}"
