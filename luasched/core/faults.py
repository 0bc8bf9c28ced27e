"""Faults that pass, told once: a loop that must not stop (a processor's slots and heartbeat, a
scheduler loop, a wait for Redis at start) rides out a lost connection or a refusal (OOM, BUSY,
MISCONF, LOADING, READONLY: ``errors.TRANSIENT``) by sending the same request again, and logs
the episode twice: one WARNING when it starts, saying what Redis answered and what is being
done, and one INFO line when Redis answers again, with how long it lasted. No I/O here."""

from __future__ import annotations

import logging
import time

from ..errors import LuaschedError
from .words import counted


def permanent(exc: LuaschedError) -> bool:
    """True when waiting cannot help: a wrong password or user, a certificate the client does not
    trust. redis-py raises these as connection errors; they are not."""
    cause = exc.__cause__
    names = {type(cause).__name__} if cause is not None else set()
    if names & {"AuthenticationError", "AuthorizationError", "AuthenticationWrongNumberOfArgsError"}:
        return True
    text = str(exc)
    return "certificate verify failed" in text or "WRONGPASS" in text or "NOAUTH" in text


class Episode:
    """One fault at a time, per process part (a processor, a scheduler loop): the first failure
    of an episode logs at WARNING, later ones stay quiet, and the first success after them logs
    the recovery at INFO. Safe to share between the slots of a processor: the worst a race does
    is to log a line twice."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        #: time.monotonic() when the episode began; None while Redis answers
        self.since: float | None = None
        self.failures = 0
        self.cause: BaseException | None = None  # the episode's latest failure

    def failed(self, who: str, exc: BaseException, doing: str = "retrying with backoff until it goes through") -> None:
        self.failures += 1
        self.cause = exc
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: %s; %s", who, exc, doing)

    def recovered(self, who: str, immune: str | None = None) -> None:
        """A call went through. ``immune``: the refusal the call could not have met (the reason of
        ``errors.ServerRefused``: "oom" for a script that runs out of memory, as the heartbeat
        does): while the episode's latest failure is that refusal, its success shows nothing, and
        the episode goes on (else every heartbeat between two refused calls would end one, and
        the next refusal begin another, with its line)."""
        since = self.since
        if since is None or (immune is not None and getattr(self.cause, "reason", None) == immune):
            return
        self.since = None
        failures, self.failures = self.failures, 0
        self.log.info("%s: Redis answers again after %.1f s (%s); carrying on", who,
                      time.monotonic() - since, counted(failures, "failed call"))


class Patience:
    """Waiting for Redis at start (a process started before Redis, as in a compose file, or
    while it loads its data after a restart): capped backoff between tries, one WARNING when the
    wait begins and one INFO line when Redis answers, until ``timeout_s`` (None: as long as it
    takes). Waiting stops at once when it cannot help (``permanent``)."""

    def __init__(self, log: logging.Logger, who: str, timeout_s: float | None) -> None:
        self.who = who
        self.timeout_s = timeout_s
        self._episode = Episode(log)
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._retry = Backoff()

    def pause(self, exc: LuaschedError) -> float | None:
        """How long to sleep before the next try; None: give up (raise ``exc``)."""
        left = None if self._deadline is None else self._deadline - time.monotonic()
        if permanent(exc) or (left is not None and left <= 0):
            return None
        limit = "as long as it takes" if self.timeout_s is None else f"at most {self.timeout_s:g} s"
        self._episode.failed(self.who, exc, f"waiting for Redis ({limit})")
        pause = self._retry.next()
        return pause if left is None else min(pause, left)

    def done(self) -> None:
        self._episode.recovered(self.who)


#: How a loop that lost Redis tries again: after RETRY_FIRST_S, then twice as long each time, at
#: most RETRY_MAX_S (the scheduler loop, and a processor's slots and heartbeats, on both front ends).
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0


class Backoff:
    """The pauses between tries of a call that lost Redis: RETRY_FIRST_S, doubling, capped."""

    def __init__(self, first_s: float = RETRY_FIRST_S, max_s: float = RETRY_MAX_S) -> None:
        self._first, self._max = first_s, max_s
        self._next = first_s

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._max)
        return pause

    def reset(self) -> None:
        self._next = self._first
