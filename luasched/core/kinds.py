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
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: A label's value: a string or a finite number (a bool is neither).
Label = str | int | float

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]{0,62}")
MAX_LABELS = 64
MAX_VALUE = 256


def check_label_value(key: str, value: object) -> Label:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"label {key!r} must be a str, an int or a float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"label {key!r} must be a finite number, not {value!r}")
    if isinstance(value, str) and (len(value) > MAX_VALUE or not value.isprintable()):
        raise ValueError(f"label {key!r} must be at most {MAX_VALUE} printable characters")
    return value


def check_labels(labels: object) -> dict[str, Label]:
    """``labels`` checked: a mapping of at most MAX_LABELS names (a letter or ``_``, then up to 62
    letters, digits or ``_.-/``) to a str (printable, at most 256 characters), an int or a finite
    float. Returned as a new dict, sorted by name."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of label name to value, not {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"a processor has at most {MAX_LABELS} labels, not {len(labels)}")
    out: dict[str, Label] = {}
    for key in sorted(labels, key=str):
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"label name {key!r} must be a letter or '_', then up to 62 letters, digits or '_.-/'")
        out[key] = check_label_value(key, labels[key])
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
                kinds: Mapping[str, str], kindn: Mapping[str, str], per_queue: Mapping[str, Mapping[str, str]]) -> None:
    """The audit's check of the kind registry against the processors' records: ``kind_by_pid``
    maps each registered processor to its record's kind ('' for none) and queues (comma-joined)."""
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
    for q in sorted(set(per_queue) | set(want_q)):
        got = {k: int(v) for k, v in per_queue.get(q, {}).items()}
        if got != want_q.get(q, {}):
            problem(f"the processors serving queue {q} per kind (qk) are {got}, the records say {want_q.get(q, {})}")
