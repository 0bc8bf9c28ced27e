"""Unique tasks and debounce: the key a submit asks to hold, and the checks of what asks for one
(pure; lua/submit.lua and lua/lib/unique.lua keep the index).

A task submitted with a unique key creates nothing while a live task holds that key: the submit
answers a handle to that task (``created`` False). The key is held from the submit that created
its task until that task finishes (``unique_until="finished"``, the default) or starts
(``"started"``); the script that moves the task there frees it, nothing else does. A debounced
submit (``_debounce``) whose key is held by a task of the same name that never started gives it
its arguments and, when that task is delayed, moves its start to now + debounce.

Scope. The index is one per namespace. A key the user gives (``_unique_key``) is taken as given:
two task names may share it on purpose. A key the task makes (``unique=True``: its name and a
SHA-1 of its arguments' canonical JSON; ``unique=callable``: its name and what the callable
returns for the arguments) starts with the task name, so two tasks never collide by accident. The
queue is not part of any key: the same work routed elsewhere is still the same work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import UniqueKeyError
from .checks import Unique, check_unique_key
from .options import seconds


@dataclass(frozen=True)
class UniqueAsk:
    """What one submit (or every item of a batch) asks of uniqueness: the key given as is
    (``_unique_key``, None: the task's own ``unique`` decides) and the debounce in seconds."""

    key: str | None = None
    debounce_s: float | None = None


NO_ASK = UniqueAsk()


def ask(key: object, debounce: float | timedelta | None, unique: Unique, delay_s: float) -> UniqueAsk:
    """The checked ``_unique_key`` and ``_debounce`` of a submit, given the task's ``unique``
    option and the submit's delay: a debounce needs a unique key and sets the delay itself."""
    if key is None and debounce is None:
        return NO_ASK
    checked = None if key is None else check_unique_key(key)
    debounce_s = seconds(debounce, "_debounce", allow_none=True, minimum=0.001)
    if debounce_s is not None:
        if key is None and not unique:
            raise ValueError("_debounce needs a unique key: give _unique_key, or register the task "
                             "with unique=True or unique=<callable>")
        if delay_s:
            raise ValueError("_debounce and _delay exclude each other: a debounced task's first "
                             "submit is delayed by the debounce")
    return UniqueAsk(checked, debounce_s)


def canonical(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Arguments as one JSON text whatever the order of the keyword arguments (or of any dict's
    keys): the same call gives the same text. Positional and keyword forms differ."""
    return json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def key_for(name: str, unique: Unique, asked: UniqueAsk, args: Sequence[Any],
            kwargs: Mapping[str, Any]) -> str | None:
    """The key a submit of task ``name`` holds: the one given, or the one the task's ``unique``
    makes (``<name>:<sha1 hex>`` or ``<name>:<what the callable returned>``); None: none."""
    if asked.key is not None:
        return asked.key
    if not unique:
        return None
    if unique is True:
        return f"{name}:{hashlib.sha1(canonical(args, kwargs).encode()).hexdigest()}"
    try:
        made = unique(*args, **kwargs)
    except Exception as exc:
        raise UniqueKeyError(f"the unique key of task {name!r} could not be made: its unique callable "
                             f"raised {type(exc).__name__}: {exc}") from exc
    try:
        return f"{name}:{check_unique_key(made, f'the unique key made for task {name!r}')}"
    except (TypeError, ValueError) as exc:
        raise UniqueKeyError(str(exc)) from None


# --- what audit checks (core/audit.py calls these on the frame and on each row of a task) ------

#: The states of a task that may hold a unique key, by when it frees it.
HOLDING = {"finished": ("waiting", "queued", "delayed", "assigned", "running"),
           "started": ("waiting", "queued", "delayed", "assigned")}


def check_row(problem: Callable[[str], None], task_id: str, state: str, until: str, key: str, holder: str) -> None:
    """A task read with its record (lib/snapshot record_rows): a key it names it holds in the
    index, and only in a state before its ``unique_until`` point."""
    if not until:
        return
    if until not in HOLDING:
        problem(f"task {task_id} names its unique key {key!r} as held until finished and until started")
    elif state not in HOLDING[until]:
        problem(f"task {task_id} is {state or 'gone'} but holds unique key {key!r} until {until}")
    if holder != task_id:
        problem(f"task {task_id} holds unique key {key!r}, which the index gives to {holder or 'no task'}")


def check_index(problem: Callable[[str], None], size: int, entries: Sequence[Sequence[str]]) -> None:
    """The unique index read whole (when small: lua/audit.lua): each key names a live task whose
    record names that key, in a state before its ``unique_until`` point."""
    if entries and len(entries) != size:
        problem(f"the unique index holds {size} keys, {len(entries)} were read")
    for key, task_id, state, u, us in entries:
        named = u or us
        if not state:
            problem(f"unique key {key!r} names task {task_id}, which has no record")
        elif named != key:
            problem(f"unique key {key!r} names task {task_id}, whose record holds {named or 'no key'}")
        elif state not in HOLDING["finished" if u else "started"]:
            problem(f"unique key {key!r} is held by task {task_id}, which is {state}")
