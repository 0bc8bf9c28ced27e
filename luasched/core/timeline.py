"""A task's history: its attempt log decoded, its timeline of places and attempts, and what held
it longest before an attempt started (the one place that reads the log lua/lib/lifecycle writes)."""

from __future__ import annotations

from dataclasses import dataclass

#: How many ended attempts a task's record keeps, its latest (lua/lib/lifecycle logged_attempt).
ATTEMPTS_KEPT = 20

#: How an attempt that did not finish its task ended, as the log stores it -> as a person reads it.
ENDINGS = {"error": "error, retried", "timeout": "timed out, retried", "lease": "lease lapsed, retried",
           "deregistered": "processor deregistered, retried", "failed": "failed, revived later"}

#: The phases a task waits in before an attempt starts, in the order they come.
PHASES = ("dependencies", "delay", "queue", "inbox")


@dataclass(frozen=True)
class Attempt:
    """One attempt that ended without finishing its task, from the record's attempt log. Times in
    ms (server time; 0: unknown). ``ended`` says how: ``error`` (the task raised; retried),
    ``timeout`` (it ran past its timeout; retried), ``lease`` (its processor's lease lapsed:
    it crashed or hung; retried), ``deregistered`` (its processor left while it ran; retried),
    ``failed`` (its last attempt: the task failed, then was revived from the dead letters).
    ``due_ms``: when its retry was due (0: queued again at once); for ``failed``, when it was
    revived. ``error_type`` and ``error_message`` (at most 200 bytes) name its error, if any."""

    attempt: int
    placed_ms: int
    started_ms: int
    ended_ms: int
    processor: str
    ended: str
    due_ms: int
    error_type: str
    error_message: str


@dataclass(frozen=True)
class Event:
    """One line of a task's timeline: when (ms, server time), what happened (``created``,
    ``ready``, ``placed``, ``started``, ``ended``, ``retry due``, ``revived``, ``finished``), on
    which processor (``""``: none) and what else is known (the attempt, the error, ...)."""

    at_ms: int
    event: str
    processor: str = ""
    detail: str = ""


def _int(s: str) -> int:
    return int(s) if s else 0


def decode_attempts(raw: str | None) -> tuple[Attempt, ...]:
    """The attempt log as lua/lib/lifecycle writes it (entries split by byte 30, fields by byte 31),
    oldest first; () for none. An entry of another shape is left out."""
    out = []
    for entry in (raw or "").split("\x1e") if raw else ():
        f = entry.split("\x1f")
        if len(f) == 9:
            out.append(Attempt(_int(f[0]), _int(f[1]), _int(f[2]), _int(f[3]), f[4], f[5], _int(f[6]), f[7], f[8]))
    return tuple(out)


def _error_text(error_type: str, message: str) -> str:
    return f"{error_type}: {message}" if error_type else message


@dataclass(frozen=True)
class Facts:
    """What a timeline and a wait are made of, from a task's record (times in ms, 0: none)."""

    state: str
    attempts: int
    created_ms: int
    ready_ms: int
    placed_ms: int
    started_ms: int
    finished_ms: int
    processor: str
    last_processor: str
    parents: str
    history: tuple[Attempt, ...]
    error: dict[str, str] | None = None


def _current_logged(f: Facts) -> bool:
    """Whether the record's latest attempt is the last one in the log (it ended, not finishing)."""
    last = f.history[-1] if f.history else None
    return last is not None and last.attempt == f.attempts and last.started_ms == f.started_ms


def timeline(f: Facts) -> list[Event]:
    """Every event the record knows of, in time order (ties: the order they happen in)."""
    events = [Event(f.created_ms, "created", "", f"waits for {f.parents}" if f.parents else "")]
    revived = {a.due_ms for a in f.history if a.ended == "failed"}
    for a in f.history:
        if a.placed_ms:
            events.append(Event(a.placed_ms, "placed", a.processor, f"attempt {a.attempt}"))
        events.append(Event(a.started_ms, "started", a.processor, f"attempt {a.attempt}"))
        ended = ENDINGS.get(a.ended, a.ended)
        events.append(Event(a.ended_ms, "ended", a.processor,
                            f"attempt {a.attempt} {ended}" + (f" ({_error_text(a.error_type, a.error_message)})"
                                                              if a.error_type or a.error_message else "")))
        if a.ended == "failed":
            events.append(Event(a.due_ms, "revived", "", "queued again with a fresh set of attempts"))
        elif a.due_ms:
            events.append(Event(a.due_ms, "retry due", "", f"attempt {a.attempt + 1} may start"))
    if f.ready_ms and f.ready_ms not in revived:
        events.append(Event(f.ready_ms, "ready", "", "its dependencies settled" if f.parents else "its delay ended"))
    holder = f.processor or f.last_processor
    if f.placed_ms:
        upcoming = f.placed_ms > f.started_ms  # placed for the attempt after the latest started
        events.append(Event(f.placed_ms, "placed", holder, f"attempt {f.attempts + upcoming}"))
    if f.attempts and f.started_ms and not _current_logged(f):
        events.append(Event(f.started_ms, "started", holder, f"attempt {f.attempts}"))
    if f.finished_ms and f.state in ("done", "failed", "cancelled"):
        detail = f.state
        if f.error is not None and f.state == "failed":
            kind = "expired" if f.error.get("type") == "TaskExpired" else "failed"
            detail = f"{kind} ({_error_text(f.error.get('type', ''), f.error.get('message', ''))})"
        ran = f.attempts and f.started_ms and not _current_logged(f)
        events.append(Event(f.finished_ms, "finished", f.last_processor if ran else "", detail))
    order = {id(e): i for i, e in enumerate(events)}
    return sorted((e for e in events if e.at_ms), key=lambda e: (e.at_ms, order[id(e)]))


@dataclass(frozen=True)
class Wait:
    """How long one attempt waited before it started, by phase (ms): ``dependencies`` (created ->
    ready, when it had parents), ``delay`` (submitted with a delay, or a retry's backoff: ->
    ready), ``queue`` (ready -> placed: no free processor, or held by a policy), ``inbox`` (placed
    -> started). ``reason`` is the phase that held it longest (``none``: it waited 0 ms)."""

    phases: dict[str, int]
    reason: str


def wait_of(f: Facts) -> Wait | None:
    """The wait before the record's latest attempt (started at ``f.started_ms``); None when the
    record does not say when it started."""
    if not f.started_ms:
        return None
    phases: dict[str, int] = {}
    previous = f.history[-1] if f.history and f.history[-1].started_ms != f.started_ms else None
    if previous is not None and previous.ended == "failed":  # revived from the dead letters
        ready = previous.due_ms
    elif previous is not None:  # a retry: its backoff, if any, then its queue
        ready = max(previous.due_ms, previous.ended_ms)
        if previous.due_ms:
            phases["delay"] = ready - previous.ended_ms
    else:
        ready = f.ready_ms or f.created_ms
        if f.ready_ms:
            phases["dependencies" if f.parents else "delay"] = f.ready_ms - f.created_ms
    placed = f.placed_ms if ready <= f.placed_ms <= f.started_ms else f.started_ms
    phases["queue"] = placed - ready
    if placed != f.started_ms or f.placed_ms == f.started_ms:
        phases["inbox"] = f.started_ms - placed
    phases = {k: max(0, phases[k]) for k in PHASES if k in phases}
    longest = max(phases.values(), default=0)
    reason = next((k for k in PHASES if phases.get(k) == longest), "none") if longest > 0 else "none"
    return Wait(phases, reason)
