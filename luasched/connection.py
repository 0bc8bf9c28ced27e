"""Turning ``redis=`` and ``read_redis=`` into clients (sync or asyncio), and closing them.

It parses the URL forms (plain, TLS, Sentinel, Cluster), refuses a target no client can be made
for before any client is made, and spells the ACL rules of a Redis user limited to luasched.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import fakeredis
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.exceptions
import redis.retry
import redis.sentinel
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode

from .acl import (  # noqa: F401  (luasched.connection.acl_rules is what the docs name)
    CLIENT_COMMANDS,
    FUNCTION_COMMANDS,
    PURGE_COMMANDS,
    SCRIPT_COMMANDS,
    SETINFO,
    acl_rules,
    knows_functions,
    knows_setinfo,
)

_lock = threading.Lock()
_embedded: fakeredis.FakeServer | None = None

URL_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
EMBEDDED_URL = "memory://"
#: Where a Scheduler made without ``redis=`` connects, when it is set: one APP then runs on the
#: embedded server in a test and on Redis in production, unchanged.
REDIS_URL_ENV = "LUASCHED_REDIS_URL"
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
#: differ), gives up connecting after 5 s and waiting for a reply after 10 s (a black-holed
#: connection is noticed; luasched's blocking calls wait at most 4 s at a time, below it), and
#: keeps its connections alive with TCP keepalive. A URL's own options (``?socket_timeout=``)
#: take precedence.
CLIENT_DEFAULTS: dict[str, Any] = {"protocol": 2, "socket_connect_timeout": 5, "socket_timeout": 10,
                                   "socket_keepalive": True}
#: A command whose connection broke (reset, closed) is sent again on a new one, up to 3 times,
#: 50 ms to 1 s apart: every script is replay-safe. A reply that does not come in time is not
#: retried here: the caller learns of it (ConnectionLost), and luasched's own loops retry.
RETRIES, RETRY_ON = 3, (redis.exceptions.ConnectionError,)


def _client_defaults(kinds: Kinds) -> dict[str, Any]:
    """CLIENT_DEFAULTS and the retry policy (RETRIES) of this front end's clients."""
    retry = kinds.retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES, supported_errors=RETRY_ON)
    return {**CLIENT_DEFAULTS, "retry": retry}


#: Where the Redis password may come from instead of the URL, where ``ps`` would show it: this
#: variable, or the file (a Docker or Kubernetes secret) the second one names. Used by every
#: client made from a URL that carries no password.
PASSWORD_ENV, PASSWORD_FILE_ENV = "LUASCHED_REDIS_PASSWORD", "LUASCHED_REDIS_PASSWORD_FILE"


def env_password() -> str | None:
    """The password of ``PASSWORD_ENV`` or of the file ``PASSWORD_FILE_ENV`` names (its final
    newline dropped), or None."""
    value = os.environ.get(PASSWORD_ENV)
    if value:
        return value
    path = os.environ.get(PASSWORD_FILE_ENV)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{PASSWORD_FILE_ENV}={path}: cannot read the password: {exc.strerror}") from None


def _with_env_password(options: dict[str, Any]) -> dict[str, Any]:
    if "password" in options:
        return options
    password = env_password()
    return options if password is None else {**options, "password": password}


def _sentinel_client(sentinel: Any, service: str, replica: bool, kinds: Kinds) -> Any:
    pick = sentinel.slave_for if replica else sentinel.master_for
    return pick(service, **_client_defaults(kinds))


def _need_service(service_name: str | None) -> str:
    if not service_name:
        raise TypeError("a redis.Sentinel needs service_name='...' (the name the sentinels monitor)")
    return service_name


def owns(target: object) -> bool:
    """True when the client made for ``target`` is ours to close (made from None, a URL, or a
    Sentinel object: its master/replica client is made here)."""
    return target is None or isinstance(target, (str, redis.sentinel.Sentinel, redis.asyncio.sentinel.Sentinel))


@dataclass(frozen=True)
class Kinds:
    """The redis-py classes of one front end (sync or asyncio): the clients ``make_client``
    makes or takes, named as error messages name them."""

    redis: type
    cluster: type
    sentinel: type
    node: type
    embedded: type
    names: str
    retry: type


SYNC = Kinds(redis.Redis, redis.RedisCluster, redis.sentinel.Sentinel, ClusterNode, fakeredis.FakeRedis,
             "a redis.Redis, redis.RedisCluster or redis.Sentinel", redis.retry.Retry)
ASYNC = Kinds(redis.asyncio.Redis, redis.asyncio.RedisCluster, redis.asyncio.sentinel.Sentinel,
              AsyncClusterNode, fakeredis.FakeAsyncRedis, "a redis.asyncio.Redis, RedisCluster or Sentinel",
              redis.asyncio.retry.Retry)


def check_target(target: object, kinds: Kinds, what: str = "redis") -> None:
    """Refuse a target no client can be made for (a wrong type, a bad URL), before any is made."""
    if isinstance(target, str):
        parse_url(target)
    elif target is not None and not isinstance(target, (kinds.redis, kinds.cluster, kinds.sentinel)):
        raise TypeError(f"{what} must be None, a URL, {kinds.names}, not {type(target).__name__}")


def default_target(target: object) -> object:
    """``target``; or, when it is None, the URL in ``LUASCHED_REDIS_URL`` if that is set (else None:
    the embedded server)."""
    if target is None:
        return os.environ.get(REDIS_URL_ENV) or None
    return target


def is_embedded_target(target: object) -> bool:
    """True when ``target`` is (or names) the embedded in-process server."""
    if target is None or is_embedded(target):
        return True
    return isinstance(target, str) and parse_url(target).kind == "memory"


def make_client(target: object, kinds: Kinds, *, replica: bool = False, service_name: str | None = None) -> Any:
    """A client of ``kinds`` for ``target``: None / "memory://", a URL (any form ``parse_url``
    reads), a Sentinel (with ``service_name``), or a ready client (returned as it is).
    ``replica``: the client serves reads only; a Sentinel then gives its replicas, in turn."""
    check_target(target, kinds)
    if isinstance(target, kinds.sentinel):
        return _sentinel_client(target, _need_service(service_name), replica, kinds)
    if isinstance(target, (kinds.redis, kinds.cluster)):
        return target
    spec = parse_url(cast(str, target or EMBEDDED_URL))
    if spec.kind == "memory":
        return kinds.embedded(server=embedded_server(), protocol=2)
    if spec.kind == "sentinel":
        options = _with_env_password({**CLIENT_DEFAULTS, **spec.options, "protocol": CLIENT_DEFAULTS["protocol"]})
        sentinel = kinds.sentinel(list(spec.hosts), sentinel_kwargs=_sentinel_kwargs(options), **options)
        return _sentinel_client(sentinel, spec.service, replica, kinds)
    if spec.kind == "cluster":
        nodes = [kinds.node(h, p) for h, p in spec.hosts]
        return kinds.cluster(startup_nodes=nodes, **_with_env_password({**spec.options, **CLIENT_DEFAULTS}))
    return _from_url(kinds, spec.url)


def sync_client(target: object, *, replica: bool = False, service_name: str | None = None) -> Any:
    """A redis.Redis-like client for ``target`` (see ``make_client``)."""
    return make_client(target, SYNC, replica=replica, service_name=service_name)


def async_client(target: object, *, replica: bool = False, service_name: str | None = None) -> Any:
    """A redis.asyncio client for ``target`` (see ``make_client``)."""
    return make_client(target, ASYNC, replica=replica, service_name=service_name)


def _sentinel_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """How to reach the sentinels themselves: the socket and TLS options, never the data
    servers' password (sentinels usually have none, or one of their own)."""
    return {k: v for k, v in options.items() if k.startswith(("socket_", "ssl")) or k == "protocol"}


def _from_url(kinds: Kinds, url: str) -> Any:
    try:
        in_url = urlsplit(url).password is not None or "password=" in urlsplit(url).query
        options = _client_defaults(kinds)
        maker: Any = kinds.redis
        return maker.from_url(url, **(options if in_url else _with_env_password(options)))
    except ValueError as exc:
        raise ValueError(f"redis URL {redact(url)!r}: {exc}") from None


def sentinels_of(client: Any) -> list[Any]:
    """The sentinel connections behind a client made by ``master_for``/``slave_for`` (else none),
    so that closing the client can close them too."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


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
