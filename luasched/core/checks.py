"""The checks of what names a task and what it asks for: its id and name, its key, its
limiters, its ``requires`` and its uniqueness (core/unique). Pure validators, no options:
``options`` re-exports them, and a bad value raises at the call, before anything is written."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from .kinds import check_requires, encode_requires

#: The longest task key and limiter name, in characters; the most limiters one task names.
MAX_KEY, MAX_LIMITER, MAX_TASK_LIMITS = 256, 200, 16

# Matched with fullmatch: "$" would also match before a final newline.
_TASK_ID = re.compile(r"[A-Za-z0-9_.:@\-]{1,128}")


def check_task_id(task_id: object, what: str = "task id") -> str:
    if not isinstance(task_id, str):
        raise TypeError(f"{what} must be a str, not {type(task_id).__name__}")
    if not _TASK_ID.fullmatch(task_id):
        raise ValueError(f"{what} {task_id!r} must be 1-128 characters of letters, digits, '_.:@-'")
    return task_id


def check_task_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValueError(f"task name must be a non-empty str of at most 200 characters, not {name!r}")
    return utf8(name, "task name")


def utf8(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} {value!r} cannot be written as UTF-8 (a lone surrogate at "
                         f"position {exc.start}): use only characters UTF-8 can carry") from None
    return value


def check_key(key: object, what: str = "key") -> str:
    """A task key (a tenant, an entity): a non-empty str of at most MAX_KEY characters."""
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    if not 0 < len(key) <= MAX_KEY:
        raise ValueError(f"{what} must be a non-empty str of at most {MAX_KEY} characters, not {key!r}")
    return utf8(key, what)


def check_limiter_name(name: object, *, pattern: bool = False) -> str:
    """A limiter's name: 1 to MAX_LIMITER characters, no comma, no whitespace; with ``pattern``
    (``Scheduler.limit``) a final ``*`` makes it the default of every name with that prefix. A
    task names a concrete limiter: no ``*`` at all."""
    if not isinstance(name, str):
        raise TypeError(f"limiter name must be a str, not {type(name).__name__}")
    if not 0 < len(name) <= MAX_LIMITER or "," in name or any(c.isspace() for c in name):
        raise ValueError(f"limiter name {name!r} must be 1-{MAX_LIMITER} characters, no ',' and no whitespace")
    if "*" in (name[:-1] if pattern else name):
        where = ("only as its last character (a pattern 'prefix*')" if pattern
                 else "nowhere in a task's limits (a task names a concrete limiter, not a pattern)")
        raise ValueError(f"limiter name {name!r}: '*' may appear {where}")
    return utf8(name, "limiter name")


def check_limits(limits: object) -> tuple[str, ...]:
    """A task's limiters: a tuple (or list) of limiter names, repeats dropped, first kept."""
    if isinstance(limits, (str, bytes)) or not isinstance(limits, Sequence):
        raise TypeError(f"limits must be a tuple of limiter names, not a {type(limits).__name__} "
                        f"(one limiter: limits=('name',))")
    names = tuple(dict.fromkeys(check_limiter_name(n) for n in limits))
    if len(names) > MAX_TASK_LIMITS:
        raise ValueError(f"a task names at most {MAX_TASK_LIMITS} limiters, not {len(names)}")
    return names


def requires_text(requires: Mapping[str, object] | None) -> str:
    """A task's ``requires`` (label -> condition, ``kinds.check_requires``) checked and encoded
    once, as ``TaskOptions.requires`` keeps it and submit sends it: '' for None or none."""
    return encode_requires(check_requires(requires))


#: The longest unique key a user gives (or a ``unique`` callable returns), in characters.
MAX_UNIQUE_KEY = 256
#: When a task frees its unique key: as it finishes (the default) or as it starts.
UNTIL = ("finished", "started")

#: What a task's ``unique`` option may be: off, its name and arguments, or a callable of them.
Unique = bool | Callable[..., str] | None


def check_unique_key(key: object, what: str = "_unique_key") -> str:
    """A unique key as given: a non-empty str of at most MAX_UNIQUE_KEY characters."""
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    if not 0 < len(key) <= MAX_UNIQUE_KEY:
        raise ValueError(f"{what} must be a non-empty str of at most {MAX_UNIQUE_KEY} characters, "
                         f"not one of {len(key)}")
    return utf8(key, what)


def check_unique(value: object) -> Unique:
    """A task's ``unique`` option: False/None (off), True (its name and arguments) or a callable
    taking the task's arguments and returning the key."""
    if value is None or isinstance(value, bool) or callable(value):
        return value
    raise TypeError(f"unique must be True, False or a callable of the task's arguments returning a str, "
                    f"not {type(value).__name__}")


def check_until(value: object) -> str:
    if value not in UNTIL:
        raise ValueError(f"unique_until must be one of {', '.join(map(repr, UNTIL))}, not {value!r}")
    return str(value)
