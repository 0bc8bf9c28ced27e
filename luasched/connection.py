"""Turning ``redis=`` and ``read_redis=`` into clients, and the pure rules around them.

The rules live here, apart from any transport, so the sync and asyncio front ends share them:
parsing the URL forms (plain, TLS, Sentinel, Cluster), which client serves a read (``Reads``),
and what a write waits for (``Durability``: WAIT for N replicas in the same round trip).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import fakeredis
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.cluster import ClusterNode
from redis.connection import HiredisRespSerializer

try:
    import hiredis
except ImportError:  # redis-py then packs with its Python serializer, never this one
    hiredis = None  # type: ignore[assignment]

from .errors import NotReplicated
from .keys import Keys
from .scripts import READ_ONLY

_lock = threading.Lock()
_embedded: fakeredis.FakeServer | None = None

URL_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
EMBEDDED_URL = "memory://"
SENTINEL_PORT, CLUSTER_PORT = 26379, 6379

#: Query options a Sentinel or Cluster URL may carry (anything else is refused, not dropped).
_QUERY_OPTIONS: dict[str, Any] = {
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": lambda v: v.lower() in ("1", "true", "yes"),
}


def embedded_server() -> fakeredis.FakeServer:
    """The process-wide in-memory server (fakeredis with Lua) that ``redis=None`` uses."""
    global _embedded
    with _lock:
        if _embedded is None:
            _embedded = fakeredis.FakeServer(version=(7, 0))
        return _embedded


def redact(url: str) -> str:
    """A URL with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
        parts = None
    if password is None or parts is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _scheme(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if url == EMBEDDED_URL or url == "memory":
        return "memory"
    if scheme not in URL_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        raise ValueError(
            f"redis URL {redact(url)!r} must start with memory://, redis://, rediss://, unix://, "
            f"redis+sentinel:// or redis+cluster://"
        )
    return scheme


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


# --- URLs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a URL names. ``kind``: "memory", "url" (one server: redis://, rediss://, unix://),
    "sentinel" (``hosts`` are sentinels watching ``service``) or "cluster" (``hosts`` are
    startup nodes). ``options`` are the connection keyword arguments for the data servers."""

    kind: str
    url: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str) -> Target:
    """Parse a redis URL (pure: no connection is made). Raises ValueError naming the redacted URL.

    ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?options]``
    ``redis+cluster://[user:password@]host:port[,host:port...][?options]``
    (``rediss+...`` for TLS; the user and password are those of the Redis servers, not the
    sentinels)."""
    scheme = _scheme(url)
    if scheme == "memory":
        return Target("memory")
    if scheme in URL_SCHEMES:
        return Target("url", url)
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError as exc:
        raise ValueError(f"redis URL {redact(url)!r}: {exc}") from None
    netloc = parts.netloc.rsplit("@", 1)[-1]
    sentinel = scheme in SENTINEL_SCHEMES
    default_port = SENTINEL_PORT if sentinel else CLUSTER_PORT
    hosts = tuple(_host(h, default_port, url) for h in netloc.split(",") if h)
    if not hosts:
        raise ValueError(f"redis URL {redact(url)!r} names no host")
    options: dict[str, Any] = {}
    if username:
        options["username"] = unquote(username)
    if password is not None:
        options["password"] = unquote(password)
    if scheme.startswith("rediss"):
        options["ssl"] = True
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_OPTIONS:
            raise ValueError(f"redis URL {redact(url)!r}: unknown option {key!r} "
                             f"(known: {', '.join(sorted(_QUERY_OPTIONS))})")
        try:
            options[key] = _QUERY_OPTIONS[key](value)
        except ValueError:
            raise ValueError(f"redis URL {redact(url)!r}: bad value for {key}") from None
    path = [p for p in parts.path.split("/") if p]
    if not sentinel:
        if path and path != ["0"]:
            raise ValueError(f"redis URL {redact(url)!r}: a cluster has only database 0")
        return Target("cluster", url, hosts, "", options)
    if not path or len(path) > 2:
        raise ValueError(f"redis URL {redact(url)!r} must name the service: "
                         f"redis+sentinel://host:port[,host:port]/service_name[/db]")
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"redis URL {redact(url)!r}: database {path[1]!r} is not a number")
        options["db"] = int(path[1])
    return Target("sentinel", url, hosts, unquote(path[0]), options)


def _host(text: str, default_port: int, url: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"redis URL {redact(url)!r}: bad host {text!r} (want host:port)")
    return host, int(port) if port else default_port


#: Every client luasched makes speaks RESP2 (redis-py 8 would pick RESP3, whose reply shapes
#: differ) and gives up connecting after 5 s.
CLIENT_DEFAULTS: dict[str, Any] = {"protocol": 2, "socket_connect_timeout": 5}


def _sentinel_client(sentinel: Any, service: str, replica: bool) -> Any:
    pick = sentinel.slave_for if replica else sentinel.master_for
    return pick(service, **CLIENT_DEFAULTS)


def _need_service(service_name: str | None) -> str:
    if not service_name:
        raise TypeError("a redis.Sentinel needs service_name='...' (the name the sentinels monitor)")
    return service_name


def owns(target: object) -> bool:
    """True when the client made for ``target`` is ours to close (made from None, a URL, or a
    Sentinel object: its master/replica client is made here)."""
    return target is None or isinstance(target, (str, redis.sentinel.Sentinel, redis.asyncio.sentinel.Sentinel))


def check_target(target: object, *, asynchronous: bool, what: str = "redis") -> None:
    """Refuse a target no client can be made for (a wrong type, a bad URL), before any is made."""
    if asynchronous:
        kinds: tuple[type, ...] = (redis.asyncio.Redis, redis.asyncio.RedisCluster, redis.asyncio.sentinel.Sentinel)
        names = "a redis.asyncio.Redis, RedisCluster or Sentinel"
    else:
        kinds = (redis.Redis, redis.RedisCluster, redis.sentinel.Sentinel)
        names = "a redis.Redis, redis.RedisCluster or redis.Sentinel"
    if isinstance(target, str):
        parse_url(target)
    elif target is not None and not isinstance(target, kinds):
        raise TypeError(f"{what} must be None, a URL, {names}, not {type(target).__name__}")


def is_embedded_target(target: object) -> bool:
    """True when ``target`` is (or names) the embedded in-process server."""
    if target is None or is_embedded(target):
        return True
    return isinstance(target, str) and parse_url(target).kind == "memory"


def sync_client(target: object, *, replica: bool = False, service_name: str | None = None) -> Any:
    """A redis.Redis-like client for ``target``: None / "memory://", a URL (any form
    ``parse_url`` reads), a redis.Sentinel (with ``service_name``), or a ready client.
    ``replica``: the client serves reads only; a Sentinel then gives its replicas, in turn."""
    check_target(target, asynchronous=False)
    if isinstance(target, redis.sentinel.Sentinel):
        return _sentinel_client(target, _need_service(service_name), replica)
    if isinstance(target, (redis.Redis, redis.RedisCluster)):
        return target
    spec = parse_url(cast(str, target or EMBEDDED_URL))
    if spec.kind == "memory":
        return fakeredis.FakeRedis(server=embedded_server(), protocol=2)
    if spec.kind == "sentinel":
        options = {**spec.options, **CLIENT_DEFAULTS}
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(options), **options)
        return _sentinel_client(sentinel, spec.service, replica)
    if spec.kind == "cluster":
        nodes = [ClusterNode(h, p) for h, p in spec.hosts]  # type: ignore[no-untyped-call]
        return redis.RedisCluster(startup_nodes=nodes, **{**spec.options, **CLIENT_DEFAULTS})
    return _from_url(redis.Redis, spec.url)


def async_client(target: object, *, replica: bool = False, service_name: str | None = None) -> Any:
    """The asyncio counterpart of :func:`sync_client`."""
    check_target(target, asynchronous=True)
    if isinstance(target, redis.asyncio.sentinel.Sentinel):
        return _sentinel_client(target, _need_service(service_name), replica)
    if isinstance(target, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
        return target
    spec = parse_url(cast(str, target or EMBEDDED_URL))
    if spec.kind == "memory":
        return fakeredis.FakeAsyncRedis(server=embedded_server(), protocol=2)
    if spec.kind == "sentinel":
        options = {**spec.options, **CLIENT_DEFAULTS}
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(options), **options)
        return _sentinel_client(sentinel, spec.service, replica)
    if spec.kind == "cluster":
        from redis.asyncio.cluster import ClusterNode as AsyncClusterNode

        nodes = [AsyncClusterNode(h, p) for h, p in spec.hosts]
        return redis.asyncio.RedisCluster(startup_nodes=nodes, **{**spec.options, **CLIENT_DEFAULTS})
    return _from_url(redis.asyncio.Redis, spec.url)


def _sentinel_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """How to reach the sentinels themselves: the socket and TLS options, never the data
    servers' password (sentinels usually have none, or one of their own)."""
    return {k: v for k, v in options.items() if k.startswith(("socket_", "ssl")) or k == "protocol"}


def _from_url(cls: Any, url: str) -> Any:
    try:
        return cls.from_url(url, **CLIENT_DEFAULTS)
    except ValueError as exc:
        raise ValueError(f"redis URL {redact(url)!r}: {exc}") from None


def sentinels_of(client: Any) -> list[Any]:
    """The sentinel connections behind a client made by ``master_for``/``slave_for`` (else none),
    so that closing the client can close them too."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


def close_client(client: Any, target: object) -> None:
    """Close a (sync) client luasched made for ``target``, and the sentinel connections behind
    it when luasched made those too (from a URL; a Sentinel you passed in stays yours)."""
    if isinstance(target, str):
        for sentinel in sentinels_of(client):
            sentinel.close()
    client.close()


async def aclose_client(client: Any, target: object) -> None:
    """The asyncio counterpart of :func:`close_client`."""
    if isinstance(target, str):
        for sentinel in sentinels_of(client):
            await sentinel.aclose()
    await client.aclose()


def send_packed(conn: Any, commands: Sequence[tuple[Any, ...]]) -> None:
    """Send ``commands`` on ``conn`` in one write: packed by hiredis when the connection packs
    with it (the same bytes, without redis-py's per-argument type checks), else by redis-py."""
    if type(conn._command_packer) is HiredisRespSerializer:
        conn.send_packed_command((b"".join(hiredis.pack_command(c) for c in commands),))
    else:
        conn.send_packed_command(conn.pack_commands(commands))


def direct(client: Any, *args: Any, held: Any = None) -> Any:
    """``client.execute_command(*args)`` for a command that needs no reply callback (EVALSHA),
    sent on a pooled connection without redis-py's per-call layers (retry wrapper, timing and
    error hooks): about 20 µs less per call on this machine, which is a fifth of a task's round
    trip. ``held``: a connection this thread holds for the client (see ``hold``), used
    instead of borrowing one per call. Any client but a plain ``redis.Redis`` takes the usual
    path, and so does a call whose connection broke (redis-py then reconnects and retries; the
    call may have run, which every script here is safe against — see the replays in the README)."""
    if type(client) is not redis.Redis or client.connection is not None:
        return client.execute_command(*args)
    pool: Any = client.connection_pool
    conn: Any = held if held is not None else pool.get_connection()
    try:
        send_packed(conn, [args])
        return conn.read_response()
    except redis.exceptions.ResponseError:
        raise  # the error reply was read whole: the connection is in step
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        conn.disconnect()
    except BaseException:  # interrupted between send and reply: a reply may still be on its way
        conn.disconnect()
        raise
    finally:
        if held is None:
            pool.release(conn)
    return cast(Any, client).execute_command(*args)  # reconnects and retries


def direct_pipeline(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any] | None:
    """The replies of ``commands`` sent on ``conn`` (a connection a thread holds) in one write,
    read in order, an error reply in its place as the exception (like redis-py's
    ``execute(raise_on_error=False)``; no reply callbacks: a BLPOP answers a list). None when
    the connection broke: nothing is known of what ran, and the caller sends them again through
    redis-py's pipeline, which reconnects and retries as it does for any pipeline."""
    try:
        send_packed(conn, commands)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        conn.disconnect()
        return None
    except BaseException:  # interrupted between send and replies: replies may still be on their way
        conn.disconnect()
        raise


class Held(threading.local):
    """The connection the current thread holds (see ``hold`` and ``Holder``), or None; ``pid``
    is the process that made it, ``calls`` how many calls this thread made without one."""

    conn: Any = None
    pid: int = 0
    calls: int = 0
    scoped: bool = False  # conn is hold()'s, for a block of calls (else made by the Holder)


def holdable(client: Any) -> bool:
    """Whether a thread may hold a connection of its own for ``client``: a plain ``redis.Redis``
    on a non-blocking pool without client-side caching; not a Sentinel's pool (its connections
    find their server through the pool)."""
    pool: Any = getattr(client, "connection_pool", None)
    return not (type(client) is not redis.Redis or client.connection is not None
                or not isinstance(pool, redis.ConnectionPool)
                or isinstance(pool, (redis.BlockingConnectionPool, redis.sentinel.SentinelConnectionPool))
                or getattr(pool, "cache", None) is not None)


def own_connection(client: Any) -> Any:
    """A new connection made like ``client``'s pool makes them, outside the pool (it connects on
    its first send), or None when ``client`` is not ``holdable``."""
    if not holdable(client):
        return None
    pool: Any = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


@contextlib.contextmanager
def hold(client: Any) -> Iterator[Any]:
    """A connection of its own (``own_connection``) for one thread's many calls (a processor
    slot makes one per task for as long as it runs): borrowing from redis-py's pool costs a
    lock, two getpid calls, a readiness poll and its metrics on every call (~20 µs of CPU on
    this machine), and threads that borrow per call contend for it. The connection is outside
    the pool, so the pool's limit stays for everyone else's calls. Yields None when the client
    is not ``holdable`` (calls then borrow as usual). Closed at the end; one that broke
    reconnects on its next send."""
    conn = own_connection(client)
    try:
        yield conn
    finally:
        if conn is not None:
            conn.disconnect()


class Holder:
    """The connections the threads that call a client often hold of their own: a thread's
    ``HOLD_AFTER``-th call through ``connection()`` makes one (``own_connection``), and its later
    calls use it, so a producer that submits in a loop does not borrow from the pool per call
    while a thread that calls once or twice (a thread per request) never opens one. A thread's
    connection closes when the thread ends (it is garbage) or at ``close()``; in a forked child
    the parent's is dropped, never used. ``hold()`` gives a thread one for a block of calls."""

    HOLD_AFTER = 8

    def __init__(self, client: Any) -> None:
        self.client = client
        self._held = Held()
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = not holdable(client)

    def connection(self) -> Any:
        """This thread's own connection, or None (borrow from the pool for this call)."""
        held = self._held
        conn = held.conn
        if conn is not None:
            if held.pid == os.getpid() and (held.scoped or not self._closed):
                return conn
            # made before a fork (the parent's socket, never written from here), or closed
            held.conn = None
        if self._closed:
            return None
        held.calls += 1
        if held.calls < self.HOLD_AFTER:
            return None
        return self._adopt(own_connection(self.client))

    def _adopt(self, conn: Any) -> Any:
        with self._lock:
            if self._closed or conn is None:
                return None
            self._made.add(conn)
        self._held.conn, self._held.pid, self._held.scoped = conn, os.getpid(), False
        return conn

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Within it, this thread's calls use a connection of its own from the first call on
        (closed at the end)."""
        held = self._held
        before = held.conn, held.pid, held.scoped
        with hold(self.client) as conn:
            if conn is not None:
                held.conn, held.pid, held.scoped = conn, os.getpid(), True
            try:
                yield
            finally:
                held.conn, held.pid, held.scoped = before

    def close(self) -> None:
        """Close every connection made here; from now on every call borrows from the pool."""
        with self._lock:
            self._closed = True
            made = list(self._made)
            self._made = weakref.WeakSet()
        for conn in made:
            conn.disconnect()


def is_cluster(client: object) -> bool:
    return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))


def is_embedded(client: object) -> bool:
    return isinstance(client, (fakeredis.FakeRedis, fakeredis.FakeAsyncRedis))


# --- which client serves a read ----------------------------------------------------------------


def read_targets(read_redis: object) -> list[object]:
    """``read_redis`` as a list of targets: None -> [], one target -> [it], a list -> itself."""
    if read_redis is None:
        return []
    if isinstance(read_redis, (list, tuple)):
        if not read_redis:
            raise ValueError("read_redis is an empty list: give at least one replica, or None")
        return list(read_redis)
    return [read_redis]


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


# --- what a write waits for --------------------------------------------------------------------


MAX_DURABILITY = 16


@dataclass(frozen=True)
class Durability:
    """After a script that writes, WAIT until ``replicas`` replicas have its writes (at most
    ``timeout_ms``), in the same round trip: a pipeline of EVALSHA + WAIT (WAIT cannot run
    inside a script). 0 replicas: no WAIT, Redis's asynchronous replication."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def of(cls, replicas: object, timeout_s: object) -> Durability:
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise TypeError(f"durability must be an int (replicas to wait for), not {type(replicas).__name__}")
        if not 0 <= replicas <= MAX_DURABILITY:
            raise ValueError(f"durability must be between 0 and {MAX_DURABILITY}, not {replicas}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 3600:
            raise ValueError(f"durability_timeout must be a number of seconds in (0, 3600], not {timeout_s!r}")
        return cls(replicas, max(1, round(timeout_s * 1000)))

    def applies(self, script: str) -> bool:
        """True when a call of ``script`` must be followed by WAIT."""
        return self.replicas > 0 and script not in READ_ONLY

    def command(self) -> tuple[str, int, int]:
        """The WAIT to send right after the writes, on the same connection."""
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, acked: object, operation: str) -> None:
        """Raise NotReplicated when WAIT answered fewer replicas than required."""
        if isinstance(acked, Exception):
            raise acked
        got = int(acked)  # type: ignore[call-overload]
        if got < self.replicas:
            raise NotReplicated(
                f"{operation}: written on the primary, but {got} of {self.replicas} replicas had it "
                f"within {self.timeout_ms} ms: a failover now could lose it. The call is replay-safe: "
                f"retry it once the replicas are back",
                acked=got, wanted=self.replicas)


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
    """The asyncio counterpart of :func:`refresh_slots`."""
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


# --- a Redis ACL user limited to luasched ------------------------------------------------------

#: Commands luasched sends itself (scripts, waits, wake-ups, reads, purge, durability).
CLIENT_COMMANDS = ("evalsha", "script|load", "blpop", "rpush", "expire", "hget", "hmget", "exists",
                   "xread", "zrange", "lrange", "scan", "unlink", "wait")

#: Commands the Lua scripts call (a test checks every ``redis.call`` in lua/ is listed here):
#: an ACL user is checked for these too, inside the scripts.
SCRIPT_COMMANDS = ("del", "exists", "expire", "get", "hdel", "hget", "hgetall", "hincrby", "hmget",
                   "hset", "llen", "lpop", "lpush", "lrange", "lrem", "ltrim", "persist", "rpush", "sadd",
                   "scard", "set", "sismember", "smembers", "srem", "time", "xadd", "zadd", "zcard",
                   "zcount", "zrange", "zrangebyscore", "zrem", "zscore")


def acl_rules(namespace: str | None = None) -> str:
    """The ACL rules of a Redis user that can run luasched on ``namespace`` (every namespace
    when None) and nothing else: its keys only, no channels, only the commands luasched sends
    and its scripts call. Use as ``ACL SETUSER <name> on ><password> <rules>``. On Redis 7.2 and
    later add ``+client|setinfo`` (redis-py sends it on connect and ignores a refusal, but each
    refusal is an entry in ACL LOG); Redis 7.0 does not know that command."""
    keys = f"~{Keys(namespace).prefix}*" if namespace is not None else "~luasched:*"
    commands = " ".join(f"+{c}" for c in sorted(set(CLIENT_COMMANDS) | set(SCRIPT_COMMANDS)))
    return f"resetkeys {keys} resetchannels -@all {commands}"
