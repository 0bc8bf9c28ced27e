"""Where a call goes and how its errors come back, for both front ends: which client serves a
read (``Reads``), the node of a cluster that holds a namespace, the replies that mean the slot
moved, how long one blocking call may wait, and the one boundary where redis-py's exceptions
become luasched's (``translated``). No I/O of its own but a cluster's slot map refresh."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import redis
import redis.asyncio
import redis.exceptions

from .core.options import READ_ONLY
from .errors import ConnectionLost, GroupNotFound, QueueFull, ScriptError, ServerRefused, TaskNotFound, UnknownLimiter

#: The longest a single blocking call (BLPOP, XREAD BLOCK) waits: below redis-py 8's default
#: socket timeout of 5 s, which a client made from a URL does not show in its connection kwargs.
MAX_BLOCK_S = 4.0


def block_slice_s(client: Any) -> float:
    """How long one blocking call may wait on this client: below its socket timeout (redis-py 8
    defaults to 5 s), else a blocked call would end in a timeout error instead of an empty reply.
    Longer waits are made of several such slices."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    timeout = kwargs.get("socket_timeout")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        return MAX_BLOCK_S
    return min(MAX_BLOCK_S, timeout - 1.0 if timeout > 2.0 else timeout / 2)


def is_cluster(client: object) -> bool:
    return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))


class Reads:
    """Which client serves what: every script that writes and every write goes to the primary;
    read-only scripts (``scripts.READ_ONLY``) and the plain reads a caller marks as such go to
    the replicas, each in turn, or to the primary when there are none. No I/O here: the
    clients are opaque, sync or asyncio alike."""

    def __init__(self, primary: Any, replicas: Sequence[Any] = ()) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self._turn = itertools.count()

    @property
    def split(self) -> bool:
        """True when reads go to replicas."""
        return bool(self.replicas)

    def reader(self) -> Any:
        """The client for the next read: the replicas in turn, else the primary."""
        if not self.replicas:
            return self.primary
        return self.replicas[next(self._turn) % len(self.replicas)]

    def for_script(self, name: str) -> Any:
        """The client a script runs on: a replica for a read-only script, else the primary."""
        return self.reader() if name in READ_ONLY else self.primary


def slot_client(client: Any, key: str) -> Any:
    """The client a pipeline of script calls on ``key``'s namespace goes through. On a cluster
    that is the own client of the node holding the key's slot: RedisCluster refuses EVALSHA in
    its pipelines, and would send a WAIT to every primary instead of after the write. Every key
    of a namespace is on that one slot, so the whole pipeline belongs to that node."""
    if isinstance(client, redis.RedisCluster):
        return client.get_redis_connection(client.get_node_from_key(key))  # type: ignore[no-untyped-call]
    return client


class NodeClients:
    """asyncio: the own client of each cluster node that holds a namespace's slot (what
    ``slot_client`` is for the sync client: redis.asyncio's cluster pipelines refuse EVALSHA
    too). Made on first use from the node's connection settings, closed with ``aclose``."""

    def __init__(self) -> None:
        self._by_node: dict[str, Any] = {}

    async def for_key(self, client: Any, key: str) -> Any:
        if not isinstance(client, redis.asyncio.RedisCluster):
            return client
        await client.initialize()  # reads the slot map once (a no-op after that)
        node = client.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.ConnectionError(f"no cluster node holds the slot of {key!r}")
        found = self._by_node.get(node.name)
        if found is None:
            pool = redis.asyncio.ConnectionPool(connection_class=node.connection_class,
                                                **node.connection_kwargs)
            found = self._by_node[node.name] = redis.asyncio.Redis(connection_pool=pool)
        return found

    async def aclose(self) -> None:
        for client in self._by_node.values():
            await client.aclose(close_connection_pool=True)  # the pool was made here, not by Redis()
        self._by_node.clear()


async def arefresh_slots(client: Any) -> None:
    """The asyncio counterpart of ``refresh_slots``."""
    if isinstance(client, redis.asyncio.RedisCluster):
        try:
            await client.nodes_manager.initialize()
        except redis.exceptions.RedisError:
            pass


#: Replies that mean a cluster moved the slot (resharding, failover): refresh the map, resend.
MOVED = (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError)


def refresh_slots(client: Any) -> None:
    """After MOVED or a lost node: make a cluster client read the slot map again (best effort;
    the next call finds out whether it worked)."""
    if isinstance(client, redis.RedisCluster):
        try:
            client.nodes_manager.initialize()
        except redis.exceptions.RedisError:
            pass


#: What each operation does, in a user's words: an error says "could not <this>: <why>".
ACTIONS = {
    "submit": "submit the task", "dispatch": "place queued tasks", "reap": "take back tasks from lapsed processors",
    "register": "register the processor", "heartbeat": "renew the processor's lease",
    "deregister": "deregister the processor", "start": "start the next task", "ack": "report a finished task",
    "cancel": "cancel the task", "result": "read the task's result", "counts": "read the counts",
    "processors": "list the processors", "audit": "audit the namespace", "retry_failed": "retry the failed tasks",
    "failed": "list the failed tasks", "purge": "purge the namespace",
    "purge_finished": "delete the dead letters", "group": "read the group",
    "group progress": "read the group's progress", "wake": "wake the scheduler loops",
    "run": "wait for work (scheduler loop)", "info": "read Redis's settings", "task_record": "read the task's record",
    "policy": "change a placement policy", "limits": "read the limiters", "pause": "pause or resume placing",
    "paused": "read the pauses", "metrics": "read the metrics",
}


def _action(operation: str) -> str:
    return ACTIONS.get(operation, f"send {operation.upper()}")


#: The first word of a refusal that passes, its reason (``ServerRefused.reason``), and what it means.
REFUSALS = {
    "OOM": ("oom", "Redis is out of memory (maxmemory) and refuses what would grow it"),
    "BUSY": ("busy", "Redis is busy running a long script"),
    "MISCONF": ("misconf", "Redis cannot save its data and refuses writes (MISCONF)"),
    "LOADING": ("loading", "Redis is loading its data set"),
    "READONLY": ("readonly", "the server is a read-only replica, and that writes: writes go to the primary "
                             "(redis=...; a failover may be under way); replicas only serve reads (read_redis=...)"),
    "NOREPLICAS": ("noreplicas", "Redis has fewer replicas than min-replicas-to-write"),
    "MASTERDOWN": ("noreplicas", "the replica has lost its primary"),
}


#: How Redis before 7.0 answers a refusal met by a ``redis.call`` inside a script: the generic
#: ``ERR`` code (which redis-py strips), then the refusal behind one or two script positions,
#: e.g. ``Error running script (call to f_<sha>): @user_script:12: @user_script: 12: -READONLY
#: You can't write against a read only replica.`` (Redis 6.2's scripting.c: its error handler
#: and ``luaPushError`` each add a position; a refusal keeps its ``-``, a command's error loses it).
_WRAPPED = re.compile(r"Error running script \(call to f_[0-9a-fA-F]+\): (?:@?[\w.]+: ?\d+: )*-?([A-Z]+) ")


def refusal(exc: BaseException) -> tuple[str, str] | None:
    """(reason, meaning) when ``exc`` is a refusal that passes (``REFUSALS``), else None. Matched
    on the reply's first word, which is the same from a command and from inside a script on
    Redis 7.0 and later; before 7.0 a refusal inside a script comes wrapped (``_WRAPPED``)."""
    if not isinstance(exc, redis.exceptions.RedisError):
        return None
    if isinstance(exc, redis.exceptions.BusyLoadingError):
        return REFUSALS["LOADING"]
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return REFUSALS["READONLY"]
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return REFUSALS["OOM"]
    if isinstance(exc, redis.exceptions.ResponseError):
        text = str(exc)
        found = REFUSALS.get(text.split(" ", 1)[0])
        if found is None and (wrapped := _WRAPPED.search(text)) is not None:
            found = REFUSALS.get(wrapped[1])
        return found
    return None


def translate(operation: str, exc: redis.exceptions.RedisError) -> Exception:
    """The luasched exception a redis-py one raised while doing ``operation`` means, saying what
    could not be done (``ACTIONS``) and why; an exception it does not know is returned as it is."""
    refused = refusal(exc)
    if refused is not None:
        reason, meaning = refused
        return ServerRefused(f"could not {_action(operation)}: {meaning}: {exc}", reason=reason, answer=str(exc))
    if isinstance(exc, redis.exceptions.ConnectionError):
        return ConnectionLost(f"could not {_action(operation)}: cannot reach Redis: {exc}")
    if isinstance(exc, redis.exceptions.TimeoutError):
        return ConnectionLost(f"could not {_action(operation)}: Redis did not answer in time: {exc}")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return ScriptError(f"could not {_action(operation)}: refused by the server's ACL: {exc}")
    if isinstance(exc, redis.exceptions.ResponseError):
        full = _FULL.search(str(exc))
        if full is not None:
            queue, depth, cap, more = full[1], int(full[2]), int(full[3]), int(full[4])
            return QueueFull(f"could not {_action(operation)}: queue {queue!r} is full: {depth} waiting, "
                             f"max_pending {cap} ({more} more refused; nothing was written)", queue, depth, cap, more)
        parent = _NO_PARENT.search(str(exc))
        if parent is not None:  # what a task would wait for (_after, then) does not exist: nothing written
            return TaskNotFound(parent[2]) if parent[1] == "t" else GroupNotFound(parent[2])
        unknown = _NO_LIMITER.search(str(exc))
        if unknown is not None:
            return UnknownLimiter(f"could not {_action(operation)}: no limiter named {unknown[1]!r} (and no "
                                  f"pattern 'prefix*' matching it): make it first with limit()", unknown[1])
        return ScriptError(f"could not {_action(operation)}: {exc}")
    return exc


#: What a script answers when a task names a limiter that does not exist (lua/submit.lua).
#: A name may hold a quote: the name ends at the quote followed by a space, punctuation or the end.
_NO_LIMITER = re.compile(r"no limiter named '(.+?)'(?=[\s.,;:)]|$)")


#: What submit answers when a task would wait for a task or group that does not exist (lua/submit.lua).
_NO_PARENT = re.compile(r"waits for '([tg]):([^']+)', which does not exist")


#: What submit answers when a queue's max_pending would be passed (lua/submit.lua).
_FULL = re.compile(r"queue '(.+)' is full: (\d+) waiting, max_pending (\d+), (\d+) more refused")


class translated:  # noqa: N801  (used as a function: ``with translated(operation):``)
    """Turn redis-py exceptions raised inside the block into luasched ones (``translate``). A
    class, not a generator: it wraps every call, and entering one costs no generator."""

    __slots__ = ("operation",)

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, redis.exceptions.RedisError):
            ours = translate(self.operation, exc)
            if ours is not exc:
                raise ours from exc
