"""Processor labels and kinds: what a processor says it is, and the registry that keeps it.

A processor registers the names of the tasks it can run and its labels (``gpu="a100"``,
``vram_gb=80``). Processors with the same names and the same labels are of one **kind**: its id
is a hash of that definition, so every process computes the same id without asking Redis. The
register, relabel, deregister and reap scripts keep three derived markers in step with the
processors' lifecycle, and ``audit()`` recounts them from the processors' records:

- ``kinds`` HASH kind -> its definition (JSON ``{"l": labels, "n": [task names]}``);
- ``kindn`` HASH kind -> how many registered processors are of it (field gone at 0, and then
  the kind's definition too);
- ``qk:<queue>`` HASH kind -> how many registered processors of it serve the queue.

Placement reads them to choose among the processors able to run a task; ``processors()`` and
status show them.

A task's ``requires`` says which labels a processor must have to run it (``check_requires``,
``satisfies``); lua/lib/routing.lua is its twin in the scripts, and the two agree on every input.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: A label's value: a string or a finite number (a bool is neither).
Label = str | int | float

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]{0,62}")
MAX_LABELS = 64
MAX_VALUE = 256
#: A number label or condition lies within +-MAX_NUMBER: every int there is exact in a Lua double.
MAX_NUMBER = 2**53


def _value(what: str, value: object) -> Label:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"{what} must be a str, an int or a float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    if isinstance(value, str) and (len(value) > MAX_VALUE or not value.isprintable()):
        raise ValueError(f"{what} must be at most {MAX_VALUE} printable characters")
    if not isinstance(value, str) and not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise ValueError(f"{what} must be a number within -2**53..2**53 (exact in a Lua double), not {value!r}")
    return value


def check_label_value(key: str, value: object) -> Label:
    """A label's value: a str (printable, at most 256 characters), an int or a finite float
    within -2**53..2**53 (the scripts read numbers as Lua doubles)."""
    return _value(f"label {key!r}", value)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"label name {key!r} must be a letter or '_', then up to 62 letters, digits or '_.-/'")
    return key


def check_labels(labels: object) -> dict[str, Label]:
    """``labels`` checked: a mapping of at most MAX_LABELS names (a letter or ``_``, then up to 62
    letters, digits or ``_.-/``) to a str (printable, at most 256 characters), an int or a finite
    float within -2**53..2**53. Returned as a new dict, sorted by name."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of label name to value, not {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"a processor has at most {MAX_LABELS} labels, not {len(labels)}")
    out: dict[str, Label] = {}
    for key in sorted(labels, key=str):
        out[_check_key(key)] = check_label_value(key, labels[key])
    return out


def parse_number(text: str) -> Label:
    """``text`` as an int or a finite float when it reads as one, else the text itself (the
    CLI's ``--label vram_gb=80`` is the number 80, ``--label gpu=a100`` the string "a100")."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if isinstance(value, int) or math.isfinite(value):
            return value
    return text


def parse_label(text: str) -> tuple[str, Label]:
    """One ``NAME=VALUE`` of the command line (``gpu=a100``, ``vram_gb=80``)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"a label is NAME=VALUE, not {text!r}")
    key = key.strip()
    checked = check_labels({key: parse_number(value.strip())})
    return key, checked[key]


# --- requires: the labels a task asks of the processor that runs it ------------------------------

#: One checked condition: (label, op, value), op ``exists`` (value None) for True.
Condition = tuple[str, str, Label | None]
MAX_REQUIRES = 64
EXISTS = "exists"
#: The operators of a ``(op, value)`` condition; those of _ORDER compare numbers only.
OPS = ("==", "!=", ">=", ">", "<=", "<")
_ORDER: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, ">": operator.gt, "<=": operator.le,
                                                     "<": operator.lt}
_ALLOWED = ("a str, an int or a float (equal), True (present) or a tuple (op, value) with op one of "
            "==, !=, >=, >, <=, < (the ordering ones with a number)")
# NAME OP VALUE, the operator matched longest first (>= before >, == and != before =)
_REQUIREMENT = re.compile(r"(?P<key>[^=!<>]*)(?P<op>==|!=|>=|<=|=|>|<)(?P<value>.*)", re.S)


def _condition(key: str, cond: object) -> Condition:
    what = f"requires {key!r}"
    if cond is True:
        return key, EXISTS, None
    if isinstance(cond, tuple):
        if len(cond) != 2 or cond[0] not in OPS:
            raise ValueError(f"{what}: {cond!r} is no condition; a condition is {_ALLOWED}")
        op, value = cond
        value = _value(f"the value of {what} {op}", value)
        if op in _ORDER and isinstance(value, str):
            raise ValueError(f"{what}: {op} compares numbers, not the str {value!r}; use == or != for a str")
        return key, op, value
    if isinstance(cond, (str, int, float)) and not isinstance(cond, bool):
        return key, "==", _value(what, cond)
    got = repr(cond) if cond is None or isinstance(cond, bool) else type(cond).__name__
    raise TypeError(f"{what} must be {_ALLOWED}, not {got}")


def check_requires(requires: object) -> tuple[Condition, ...]:
    """``requires`` checked: a mapping of at most MAX_REQUIRES label names (named as labels are)
    to a condition. A str, int or float means equal; True means the label is present; a tuple
    ``(op, value)`` compares, op one of ``==``, ``!=``, ``>=``, ``>``, ``<=``, ``<``. A value is
    what a label's value may be (``check_label_value``); the ordering ops take a number only.
    Returned normalised, sorted by label: ``(label, op, value)``, a plain value as ``==`` and True
    as ``exists`` with value None. ``satisfies`` says what each condition matches."""
    if requires is None:
        return ()
    if not isinstance(requires, Mapping):
        raise TypeError(f"requires must be a mapping of label name to condition, not {type(requires).__name__}")
    if len(requires) > MAX_REQUIRES:
        raise ValueError(f"a task requires at most {MAX_REQUIRES} labels, not {len(requires)}")
    return tuple(_condition(_check_key(key), requires[key]) for key in sorted(requires, key=str))


def encode_requires(conds: Iterable[Condition]) -> str:
    """Checked conditions as stored and sent to the scripts: compact JSON, one ``[label, op,
    value]`` each (``[["gpu","==","a100"],["ssd","exists",null],["vram_gb",">=",40]]``), '' for none.
    Conditions from ``check_requires`` (sorted) give one text for one requirement."""
    rows = [list(cond) for cond in conds]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False) if rows else ""


def decode_requires(text: str | None) -> tuple[Condition, ...]:
    """The conditions of an ``encode_requires`` text, checked again; nothing for '' or None."""
    if not text:
        return ()
    rows: Any = json.loads(text)
    return check_requires({key: True if op == EXISTS else (op, value) for key, op, value in rows})


def _met(have: Label | None, op: str, want: Label | None) -> bool:
    if op == EXISTS:
        return have is not None
    same = have is not None and isinstance(have, str) == isinstance(want, str) and have == want
    if op in ("==", "!="):
        return same == (op == "==")
    order = _ORDER.get(op)
    if order is None or have is None or want is None or isinstance(have, str) or isinstance(want, str):
        return False
    return order(have, want)


def satisfies(labels: Mapping[str, Label], conds: Iterable[Condition]) -> bool:
    """Whether a processor with ``labels`` meets every condition (none: it does), as Kubernetes
    node selectors and Hatchet worker labels match:

    - ``exists`` (True): the label is present, whatever its value;
    - ``==``: the label is present and equal; a number never equals a str (80 is not "80"), an
      int equals the float of the same value (80 is 80.0);
    - ``!=``: the label is absent, or present and not equal (as ``==`` says);
    - ``>=``, ``>``, ``<=``, ``<``: the label is present and both it and the value are numbers,
      compared as numbers; a str on either side does not match (it is no error);
    - an unknown op matches nothing.

    lua/lib/routing.lua's requires_met is its twin in the scripts: the two agree on every input."""
    return all(_met(labels.get(key), op, want) for key, op, want in conds)


def parse_requirement(text: str) -> tuple[str, object]:
    """One ``--requires`` of the command line, as (label, condition) in the form check_requires
    takes: ``gpu`` (present: True), ``gpu=a100`` (the value), ``gpu==a100``, ``gpu!=t4``,
    ``vram_gb>=40`` ((op, value)). A value that reads as a number is one, as for labels."""
    m = _REQUIREMENT.fullmatch(text)
    cond: object
    if m is None:
        key, cond = text.strip(), True
    else:
        key, op, raw = m["key"].strip(), m["op"], m["value"].strip()
        if raw.startswith(("=", "!", "<", ">")):
            raise ValueError(f"a requirement is NAME, NAME=VALUE or NAME OP VALUE with OP one of "
                             f"{', '.join(OPS)}, not {text!r}")
        value = parse_number(raw)
        cond = value if op == "=" else (op, value)
    check_requires({key: cond})
    return key, cond


def _shown(value: Label | None) -> str:
    if isinstance(value, str) and (not value or value != value.strip() or "," in value
                                   or not isinstance(parse_number(value), str)):
        return json.dumps(value, ensure_ascii=False)  # "80" (a str), "" and " x" quoted
    return str(value)


def describe_requires(conds: Iterable[Condition]) -> str:
    """Conditions in words, for messages: ``gpu == a100, vram_gb >= 40, ssd present`` ('' for
    none; a str that reads as a number is quoted: ``zone == "80"``)."""
    return ", ".join(f"{key} present" if op == EXISTS else f"{key} {op} {_shown(value)}" for key, op, value in conds)


def definition(names: Iterable[str], labels: Mapping[str, Label]) -> str:
    """The kind's definition as stored in ``kinds``: canonical JSON, so equal kinds are equal text."""
    return json.dumps({"l": dict(labels), "n": sorted(set(names))}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def kind_of(names: Iterable[str], labels: Mapping[str, Label]) -> tuple[str, str]:
    """(kind id, definition) of a processor with these task names and (checked) labels."""
    text = definition(names, labels)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16], text


def labels_and_tasks(text: str | None) -> tuple[dict[str, Label], tuple[str, ...]]:
    """(labels, task names) of a stored definition; nothing for a missing one."""
    if not text:
        return {}, ()
    data: Any = json.loads(text)
    return dict(data.get("l", {})), tuple(data.get("n", ()))


def check_kinds(problem: Callable[[str], None], kind_by_pid: Mapping[str, tuple[str, str]],
                kinds: Mapping[str, str], kindn: Mapping[str, str], per_queue: Mapping[str, Mapping[str, str]],
                names: Mapping[str, set[str]]) -> None:
    """The audit's check of the kind registry against the processors' records: ``kind_by_pid``
    maps each registered processor to its record's kind ('' for none) and queues (comma-joined);
    ``names`` each kind's task names as placement asks them (kn:<kind>)."""
    want_n: dict[str, int] = {}
    want_q: dict[str, dict[str, int]] = {}
    for pid, (kind, queues) in sorted(kind_by_pid.items()):
        if not kind:
            continue
        want_n[kind] = want_n.get(kind, 0) + 1
        for q in filter(None, queues.split(",")):
            want_q.setdefault(q, {})[kind] = want_q.setdefault(q, {}).get(kind, 0) + 1
        if kind not in kinds:
            problem(f"processor {pid} is of kind {kind}, which has no definition")
    got_n = {k: int(v) for k, v in kindn.items()}
    if got_n != want_n:
        problem(f"the processors counted per kind (kindn) are {got_n}, the records say {want_n}")
    for kind in sorted(set(kinds) - set(want_n)):
        problem(f"kind {kind} has a definition but no registered processor")
    for kind in sorted(kinds):  # the task names placement asks (kn:<kind>); '' alone: it knows none
        want = set(labels_and_tasks(kinds[kind])[1]) or {""}
        if names.get(kind, set()) != want:
            problem(f"kind {kind}'s task names (kn) are {sorted(names.get(kind, set()))}, its definition says "
                    f"{sorted(want)}")
    for q in sorted(set(per_queue) | set(want_q)):
        got = {k: int(v) for k, v in per_queue.get(q, {}).items()}
        if got != want_q.get(q, {}):
            problem(f"the processors serving queue {q} per kind (qk) are {got}, the records say {want_q.get(q, {})}")


def check_routing_flags(problem: Callable[[str], None], queues: Iterable[tuple[str, Mapping[str, str], set[str], int]],
                        names: Mapping[str, set[str]]) -> None:
    """The audit's check of each queue's routing flag (qr: some kind serving it lacks a task name
    submitted to it, qn) against the kinds (qk) and their task names (kn; '' alone: any name)."""
    for q, kinds_of_q, submitted, flag in queues:
        mixed = any("" not in names.get(k, set()) and not submitted <= names.get(k, set()) for k in kinds_of_q)
        if mixed != bool(flag):
            problem(f"queue {q}'s routing flag (qr) is {flag}, but its kinds {sorted(kinds_of_q)} "
                    f"{'lack' if mixed else 'have'} every task name submitted to it {sorted(submitted)}")
