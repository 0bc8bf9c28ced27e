"""Placement policies (lua/policy.lua, lua/limits.lua): limiters, fairness weights and a queue's
priority aging. Their settings and checks, the calls that change them, and what ``limits``
answers (sans I/O: a bad setting raises here, before anything is sent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .ops import Call, Namespace, _now, text
from .options import check_int, check_key, check_limiter_name, check_queue, seconds, to_ms
from .replies import LimitInfo

#: The largest burst, max_running and fairness weight a policy takes.
MAX_BURST = MAX_RUNNING = 1_000_000_000
MAX_WEIGHT = 1e6


def _positive(value: object, what: str, high: float = math.inf) -> float:
    """A finite number > 0 (at most ``high``), as a float; a bool is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or not 0 < value <= high:
        bound = "" if high == math.inf else f" and at most {high:g}"
        raise ValueError(f"{what} must be a finite number > 0{bound}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Limiter:
    """A limiter's settings, checked (``Scheduler.limit``). ``rate`` placements per ``per_s``
    seconds with a burst of ``burst`` (GCRA: at most ``burst + rate * t / per_s`` placements in
    any window of t seconds); at most ``max_running`` of its tasks assigned or running at once.
    None for either: that bound is not set; one at least must be. A ``name`` ending in ``*`` is a
    pattern: the limiter of every name with that prefix that has none of its own."""

    name: str
    rate: float | None = None
    per_s: float = 1.0
    burst: int = 1
    max_running: int | None = None

    def __post_init__(self) -> None:
        check_limiter_name(self.name, pattern=True)
        if self.rate is not None:
            object.__setattr__(self, "rate", _positive(self.rate, "rate"))
        per = seconds(self.per_s, "per", minimum=0.001)  # whole ms for the scripts: 1 ms at least
        object.__setattr__(self, "per_s", per)
        check_int(self.burst, "burst", 1, MAX_BURST)
        if self.max_running is not None:
            check_int(self.max_running, "max_running", 1, MAX_RUNNING)
        if self.rate is None and self.max_running is None:
            raise ValueError(f"limit {self.name!r}: give rate=, max_running= or both (a limiter that "
                             f"limits nothing is not made; remove_limit removes one)")

    @property
    def pattern(self) -> bool:
        return self.name.endswith("*")


def limit(ns: Namespace, now_ms: int | None, limiter: Limiter) -> Call:
    """Create or update a limiter."""
    lim = limiter
    return ns.call("policy", ns.prefix, _now(now_ms), "limit", lim.name, "" if lim.rate is None else repr(lim.rate),
                   to_ms(lim.per_s), lim.burst, "" if lim.max_running is None else lim.max_running)


def decode_limit(reply: Any) -> bool:
    """True when the limiter was created, False when one of that name was updated."""
    got = text(reply)
    if got not in ("created", "updated"):
        raise ValueError(f"policy limit: unexpected reply {got!r}")
    return bool(got == "created")


def unlimit(ns: Namespace, now_ms: int | None, name: str) -> Call:
    """Remove a limiter (a pattern's name removes the pattern)."""
    return ns.call("policy", ns.prefix, _now(now_ms), "unlimit", check_limiter_name(name, pattern=True))


def check_weight(weight: object) -> float:
    return _positive(weight, "weight", MAX_WEIGHT)


def weight(ns: Namespace, now_ms: int | None, key: str, value: float) -> Call:
    """Set a task key's fairness weight (in every queue)."""
    return ns.call("policy", ns.prefix, _now(now_ms), "weight", check_key(key), repr(check_weight(value)))


class Keep:
    """The value of a ``set_queue`` option that was not given: the queue keeps its setting."""

    def __repr__(self) -> str:
        return "KEEP"


#: ``set_queue``'s default for each option: leave it as it is.
KEEP: Any = Keep()
#: The largest max_pending a queue takes.
MAX_PENDING = 1_000_000_000


def queue_policy(ns: Namespace, now_ms: int | None, queue: str, aging_s: float | timedelta | None | Keep = KEEP,
                 max_pending: int | None | Keep = KEEP) -> Call:
    """Set a queue's priority aging (a waiting task counts one level more urgent every
    ``aging_s`` seconds; None: strict priorities) and its max_pending (None: no cap); an option
    left at KEEP is not changed."""
    check_queue(queue)
    if isinstance(aging_s, Keep) and isinstance(max_pending, Keep):
        raise TypeError("set_queue: give priority_aging=, max_pending= or both")
    aging = "="
    if not isinstance(aging_s, Keep):
        secs = seconds(aging_s, "priority_aging", allow_none=True, minimum=0.001)
        aging = "" if secs is None else str(to_ms(secs))
    cap = "="
    if not isinstance(max_pending, Keep):
        cap = "" if max_pending is None else str(check_int(max_pending, "max_pending", 0, MAX_PENDING))
    return ns.call("policy", ns.prefix, _now(now_ms), "queue", queue, aging, cap)


def limits(ns: Namespace, now_ms: int | None) -> Call:
    """Read every limiter and its state (read-only)."""
    return ns.call("limits", ns.prefix, _now(now_ms))


def decode_limits(reply: Any) -> list[LimitInfo]:
    """``{now_ms, {{name, of, rate, per_ms, burst, max_running, running, waiting}, ...}}``, ''
    meaning none, as LimitInfo sorted by name."""
    _, rows = text(reply)
    return sorted((LimitInfo(name, float(rate) if rate else None, int(per_ms) / 1000, int(burst),
                             int(cap) if cap else None, int(running or 0), int(waiting or 0), of or None)
                   for name, of, rate, per_ms, burst, cap, running, waiting in rows), key=lambda x: x.name)
