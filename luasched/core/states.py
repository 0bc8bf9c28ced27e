"""Task states and the table of allowed transitions (the property tests use it as their model)."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    """Where a task is in its life: not yet placeable (waiting: for other tasks), waiting for a
    processor (queued, delayed), given to one (assigned, running), or finished (done, failed,
    cancelled). ``TaskHandle.state`` answers one of these."""

    WAITING = "waiting"
    QUEUED = "queued"
    DELAYED = "delayed"
    ASSIGNED = "assigned"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


FINISHED = frozenset({State.DONE, State.FAILED, State.CANCELLED})

#: (state before, event) -> states possible after. The scripts named in the events are in lua/.
TRANSITIONS: dict[tuple[State | None, str], frozenset[State]] = {
    (None, "submit"): frozenset({State.QUEUED, State.DELAYED}),
    # a task that waits for others (then, _after): waiting until the last of them ends, then
    # queued, or (one did not end done) failed with DependencyFailed or cancelled, by _on_failure
    (None, "submit_after"): frozenset({State.WAITING, State.QUEUED, State.FAILED, State.CANCELLED}),
    (State.WAITING, "parents_end"): frozenset({State.QUEUED, State.FAILED, State.CANCELLED}),
    (State.WAITING, "cancel"): frozenset({State.CANCELLED}),
    (State.WAITING, "expire"): frozenset({State.FAILED}),
    (None, "submit_dispatch"): frozenset({State.QUEUED, State.DELAYED, State.ASSIGNED}),
    (State.DELAYED, "dispatch"): frozenset({State.QUEUED, State.ASSIGNED}),
    (State.QUEUED, "dispatch"): frozenset({State.ASSIGNED}),
    (State.QUEUED, "take"): frozenset({State.RUNNING}),
    (State.ASSIGNED, "start"): frozenset({State.RUNNING}),
    (State.RUNNING, "complete"): frozenset({State.DONE}),
    (State.RUNNING, "error"): frozenset({State.DELAYED, State.FAILED}),
    (State.RUNNING, "timeout"): frozenset({State.DELAYED, State.FAILED}),
    (State.RUNNING, "lease_lost"): frozenset({State.QUEUED, State.FAILED}),
    (State.ASSIGNED, "lease_lost"): frozenset({State.QUEUED}),
    (State.RUNNING, "deregister"): frozenset({State.QUEUED, State.FAILED}),
    (State.ASSIGNED, "deregister"): frozenset({State.QUEUED}),
    (State.QUEUED, "cancel"): frozenset({State.CANCELLED}),
    (State.DELAYED, "cancel"): frozenset({State.CANCELLED}),
    (State.ASSIGNED, "cancel"): frozenset({State.CANCELLED}),
    # its deadline (``expires``) came before it started: placing, start and reap end it
    (State.QUEUED, "expire"): frozenset({State.FAILED}),
    (State.DELAYED, "expire"): frozenset({State.FAILED}),
    (State.ASSIGNED, "expire"): frozenset({State.FAILED}),
}


def allowed(before: State | None, event: str, after: State) -> bool:
    """True when ``event`` may take a task from ``before`` to ``after``."""
    return after in TRANSITIONS.get((before, event), frozenset())


#: Where a task in each unfinished state is kept (the places of the conservation invariant).
PLACE = {
    State.WAITING: "zset waiting",
    State.QUEUED: "queue list q:<queue>",
    State.DELAYED: "zset delayed",
    State.ASSIGNED: "inbox list p:<pid>:i",
    State.RUNNING: "inbox set p:<pid>:r and zset running",
    State.FAILED: "zset failed (dead letters)",
}
