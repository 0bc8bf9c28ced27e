# Generated from luasched/_async/transport.py by tools/unasync.py: edit that file, then run the tool.
"""How a Scheduler talks to Redis: one script call, several in one round trip, a blocking wait
with a call behind it, plain commands, and the flows of ``core.flows``, routed to the primary,
a replica or a cluster's node, with NOSCRIPT, MOVED and WAIT handled here and nowhere else.

Written once for asyncio; ``tools/unasync.py`` generates the threaded twin in ``luasched/_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis.exceptions

from .._backends import threads as backend
from ..connection import (
    check_target,
    default_target,
    is_embedded,
    is_embedded_target,
    make_client,
    owns,
    read_targets,
)
from ..core import logs
from ..core.faults import Patience
from ..core.flows import Flow
from ..core.ops import Call, Request
from ..core.options import READ_ONLY, Durability
from ..errors import TRANSIENT, LuaschedError, UnsupportedServer
from ..routing import MOVED, Reads, block_slice_s, is_cluster, translated
from ..scripts import Scripts

#: The eviction warning is the Scheduler's to say (its first submit, loop or processor start).
#: What ``call_prebuilt`` answers for a command the server refused without running it.
NOT_SENT = object()

log = logging.getLogger("luasched.scheduler")


class Transport:
    """The clients of one Scheduler and every way it sends to them."""

    client: Any
    reads: Reads
    scripts: Scripts
    durability: Durability
    block_s: float

    def _connect(self, redis: object, read_redis: object, service_name: str | None,
                 durability: Durability) -> None:
        """Make the clients: ``redis`` (None: ``LUASCHED_REDIS_URL``, else the embedded server) for
        every write and wait, ``read_redis`` for the reads. Every target is checked before any
        client is made, so a refusal leaves none open."""
        redis = default_target(redis)
        targets = read_targets(read_redis)
        check_target(redis, backend.CLIENTS)
        for target in targets:
            check_target(target, backend.CLIENTS, "read_redis")
        if durability.replicas and is_embedded_target(redis):
            raise ValueError("durability needs a real Redis with replicas: the embedded server has none")
        self.durability = durability
        # what a twin on the other front end (the CLI's, for an asyncio APP) would connect to
        self.target = redis if isinstance(redis, str) else None
        self.client = make_client(redis, backend.CLIENTS, service_name=service_name)
        #: True when this Scheduler runs on the in-process server: no other process reaches it
        self.embedded = is_embedded(self.client)
        self._owned = [(self.client, redis)] if owns(redis) else []
        replicas = []
        for target in targets:
            replicas.append(make_client(target, backend.CLIENTS, replica=True, service_name=service_name))
            if owns(target):
                self._owned.append((replicas[-1], target))
        self.reads = Reads(self.client, replicas)
        # the embedded server cannot read a shebang, nor is it sent functions; any other learns so at
        # its first refusal. A cluster's calls go as scripts: redis-py routes FCALL by asking a node.
        self.scripts = Scripts(self.client, flagged=not self.embedded,
                               functions=not self.embedded and not is_cluster(self.client))
        self.block_s = block_slice_s(self.client)
        self._wire = backend.Wire(self.client)
        self._ridden: set[str] = set()  # scripts already sent ahead of a BLPOP (see _ride_alone)
        self._eviction_checked = False
        self._server_checked = False

    def close(self) -> None:
        """Close the clients this Scheduler made (a client you passed in stays open) and the
        connections its threads hold."""
        self._wire.close()
        for client, target in self._owned:
            backend.close_client(client, target)
        self._owned = []

    def call(self, call: Call) -> Any:
        """Run one script: on the primary, or on a replica for a read-only one (``read_redis``).
        With ``durability``, a script that writes is followed by WAIT in the same round trip."""
        if self.durability.applies(call.script):
            return (self.call_many([call]))[0]
        client = self.reads.for_script(call.script)
        tries = 4  # NOSCRIPT or no function; no functions here; a server that cannot read a shebang
        with translated(call.script):
            while True:
                try:
                    return self._wire.script(client, self.scripts.command(call.script, call.keys, call.args))
                except redis.exceptions.ResponseError as exc:
                    tries -= 1
                    if not tries or not self._unsent(exc):
                        raise
                self._load(client, [call.script])

    def call_prebuilt(self, script: str, command: tuple[Any, ...]) -> Any:
        """``command`` (``scripts.command`` of one call to ``script``, made earlier and kept) on the
        primary, in one try; ``NOT_SENT`` when the server refused it unsent (NOSCRIPT, a function
        not loaded, no functions here, a shebang it cannot read): the caller then makes the call
        anew and sends it with ``call``, which loads what is missing."""
        with translated(script):
            try:
                return self._wire.script(self.reads.for_script(script), command)
            except redis.exceptions.ResponseError as exc:
                if not self._unsent(exc):
                    raise
        return NOT_SENT

    def _unsent(self, reply: object) -> bool:
        """Whether the error reply of a script or function call means it never ran and is to be
        loaded and sent again: NOSCRIPT or a function not found (a new or restarted server, a
        replica, a cluster node that never saw it), a server without functions (``Scripts.refused``:
        from now on scripts are sent), or a server that cannot read a shebang (``Scripts.unflag``:
        from now on the plain sources are sent)."""
        return (isinstance(reply, redis.exceptions.NoScriptError) or self.scripts.refused(reply)
                or self.scripts.unflag(reply))

    def _load(self, client: Any, names: Iterable[str]) -> None:
        """Load the scripts ``names`` on ``client``, as this Scheduler sends them (``Scripts``): a
        function's library (one already there, loaded by another client, is as good), else the
        script; a server that refuses to compile a shebang gets the plain source."""
        for name in sorted(set(names)):
            library = self.scripts.library(name)
            if library is not None:
                try:
                    self._wire.load_library(client, library)
                    continue
                except redis.exceptions.ResponseError as exc:
                    if not ("already exists" in str(exc) or self.scripts.refused(exc)):
                        raise
                    if self.scripts.functions:
                        continue
            try:
                self._wire.load(client, self.scripts[name].script)
            except redis.exceptions.ResponseError as exc:
                if not self.scripts.unflag(exc):
                    raise
                self._wire.load(client, self.scripts[name].script)

    def call_many(self, calls: Sequence[Call]) -> list[Any]:
        """Several script calls in one round trip (a pipeline). Every script is replay-safe, so one
        refused with NOSCRIPT is simply sent again after loading. With ``durability``, WAIT ends
        the pipeline (and each resend), on the same connection as the writes."""
        if not calls:
            return []
        wait = any(self.durability.applies(c.script) for c in calls)
        if len(calls) == 1 and not wait:
            return [self.call(calls[0])]
        operation = calls[0].script
        with translated(operation):
            replies, client = self._pipeline_routed(calls, wait, operation)
            for _ in range(3):  # NOSCRIPT or no function; no functions here; a server that cannot read a shebang
                refused = [i for i, r in enumerate(replies) if self._unsent(r)]
                if not refused:
                    break
                self._load(client, [calls[i].script for i in refused])
                again = self._pipeline(client, [calls[i] for i in refused], wait, operation)
                for i, reply in zip(refused, again, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

    def _pipeline_routed(self, calls: Sequence[Call], wait: bool, operation: str) -> tuple[list[Any], Any]:
        """The pipeline sent where it belongs: a replica when every call only reads; on a cluster
        the node that holds the namespace (RedisCluster refuses EVALSHA in its pipelines, and would
        send a WAIT to every primary), sent once more through a fresh slot map when the slot moved
        or the node was lost (replay-safe)."""
        if not is_cluster(self.client):
            read_only = not wait and all(c.script in READ_ONLY for c in calls)
            client = self.reads.reader() if read_only else self.client
            return self._pipeline(client, calls, wait, operation), client
        for attempt in (1, 2):
            client = self._wire.node(calls[0].keys[0])
            try:
                replies = self._pipeline(client, calls, wait, operation)
            except redis.exceptions.ConnectionError:
                self._wire.refresh()
                if attempt == 2:
                    raise
                continue
            if attempt == 2 or not any(isinstance(r, MOVED) for r in replies):
                break
            self._wire.refresh()
        return replies, client

    def _pipeline(self, client: Any, calls: Sequence[Call], wait: bool, operation: str) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for c in calls:
            pipe.execute_command(*self.scripts.command(c.script, c.keys, c.args))
        if wait:
            pipe.execute_command(*self.durability.command())
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if wait:
            self.durability.check(replies.pop(), operation)
        return replies

    def call_after_wake(self, key: str, timeout_s: float, call: Call, before: Call | None = None) -> Any:
        """BLPOP ``key`` (at most ``timeout_s``), then ``call``, in ONE round trip: pipelined, so the
        server runs the script the moment the BLPOP returns, with no client round trip between.
        Returns the script's reply; with ``before`` (a script sent ahead of the BLPOP, in the same
        round trip) the pair of replies ``(before's, call's)``."""
        if self._ride_alone(before):
            assert before is not None
            return self.call(before), self.call_after_wake(key, timeout_s, call)
        calls = [before, call] if before is not None else [call]
        evals = [self.scripts.command(c.script, c.keys, c.args) for c in calls]
        commands = [*evals[:-1], ("BLPOP", key, timeout_s), evals[-1]]
        waits = any(self.durability.applies(c.script) for c in calls)
        if waits:
            commands.append(self.durability.command())
        client = self._wire.node(call.keys[0])
        with translated(call.script):
            replies = self._wire.commands(client, commands)
            if waits:
                self.durability.check(replies.pop(), calls[-1].script)
            del replies[-2]  # the BLPOP's
        for i, (c, r) in enumerate(zip(calls, replies, strict=True)):
            if not isinstance(r, Exception):
                continue
            if self._unsent(r):  # refused, so it never ran
                replies[i] = self.call(c)
            else:
                with translated(c.script):
                    raise r
        return tuple(replies) if len(calls) == 2 else replies[0]

    def _ride_alone(self, before: Call | None) -> bool:
        """Whether ``before`` must be sent on its own rather than ahead of a BLPOP: when it must
        wait for replicas (its WAIT would queue behind the BLPOP), and the first time its script
        rides (so that the server's NOSCRIPT, if not loaded there yet, is answered now, not after
        the wait)."""
        if before is None:
            return False
        if self.durability.applies(before.script) or before.script not in self._ridden:
            self._ridden.add(before.script)
            return True
        return False

    def execute(self, request: Request) -> Any:
        """Send a script call or a plain command (to the primary) and return its reply."""
        return self._send(request, self.client)

    def _send(self, request: Request, client: Any) -> Any:
        if isinstance(request, Call):
            return self.call(request)
        with translated(request.name):
            if request.name == "pipeline":
                pipe = client.pipeline(transaction=False)
                for name, args in request.args:
                    getattr(pipe, name)(*args)
                return pipe.execute()
            return getattr(client, request.name)(*request.args)

    def eviction_policy(self) -> str | None:
        """Redis's ``maxmemory-policy``, read from INFO memory (which managed services allow
        where they refuse CONFIG): "noeviction" is the only safe one (any other lets Redis delete
        tasks, results and counters under memory pressure, without a word). None where it cannot
        be read: INFO refused, or the embedded server."""
        try:
            with translated("info"):
                got = self.client.info("memory")
        except TRANSIENT:
            raise
        except LuaschedError:
            return None
        value = got.get("maxmemory_policy") if isinstance(got, dict) else None
        return value.decode() if isinstance(value, bytes) else value

    def check_eviction(self, who: str) -> None:
        """Say once per Scheduler, at its first submit, loop or processor start, when Redis may
        evict luasched's keys (a WARNING naming the policy), or that it could not be checked
        (INFO refused). Asked again next time when Redis does not answer now."""
        if self._eviction_checked or self.embedded:
            return
        self._eviction_checked = True
        try:
            policy = self.eviction_policy()
        except TRANSIENT:
            self._eviction_checked = False
            return
        logs.eviction(policy, who, log)

    def check_server(self, who: str) -> None:
        """Refuse a server luasched cannot run on, before a processor or a scheduler loop starts:
        KeyDB (its INFO has a "keydb" section) does not run a command sent right behind a BLPOP,
        in the same write, when the BLPOP returns, and the slots and loops pipeline the two, so
        their calls would time out and their leases lapse. Checked once per Scheduler; where INFO
        is refused, not checked; asked again next time when Redis does not answer now."""
        if self._server_checked or self.embedded:
            return
        try:
            with translated("info"):
                got = self.client.info("keydb")
        except TRANSIENT:
            return
        except LuaschedError:
            got = None
        if isinstance(got, dict) and got:  # refused each time it is asked
            raise UnsupportedServer(f"{who}: the server is KeyDB, which luasched does not support: it does not "
                                    f"run a command sent behind a BLPOP when the BLPOP returns, which processors "
                                    f"and scheduler loops rely on (see the docs' Servers and clients page)")
        self._server_checked = True

    def patiently(self, logger: logging.Logger, who: str, timeout_s: float | None,
                        attempt: Callable[[], Any]) -> Any:
        """``attempt()`` until Redis lets it through, waiting while Redis refuses
        connections, is loading or refuses for now (``errors.TRANSIENT``), with capped backoff,
        at most ``timeout_s`` (None: as long as it takes); then raise the last error. A wrong
        password or an untrusted certificate raises at once. Logged to ``logger`` as
        ``core.faults.Patience`` says, under ``who``."""
        patience = Patience(logger, who, timeout_s)
        while True:
            try:
                got = attempt()
            except TRANSIENT as exc:
                pause = patience.pause(exc)
                if pause is None:
                    raise
                backend.sleep(pause)
                continue
            patience.done()
            return got

    def drive(self, flow: Flow) -> Any:
        """Run a flow of ``core.flows``: send each request it yields, feed it the reply."""
        reply = None
        while True:
            try:
                request = flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = self.execute(request)
