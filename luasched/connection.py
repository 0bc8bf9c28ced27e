"""Turning the ``redis=`` argument into a client: the embedded server, a URL, or a ready client."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fakeredis
import redis
import redis.asyncio

_lock = threading.Lock()
_embedded: fakeredis.FakeServer | None = None

URL_SCHEMES = ("redis", "rediss", "unix")
EMBEDDED_URL = "memory://"


def embedded_server() -> fakeredis.FakeServer:
    """The process-wide in-memory server (fakeredis with Lua) that ``redis=None`` uses."""
    global _embedded
    with _lock:
        if _embedded is None:
            _embedded = fakeredis.FakeServer(version=(7, 0))
        return _embedded


def redact(url: str) -> str:
    """A URL with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _scheme(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if url == EMBEDDED_URL or url == "memory":
        return "memory"
    if scheme not in URL_SCHEMES:
        raise ValueError(
            f"redis URL {redact(url)!r} must start with memory://, redis://, rediss:// or unix://"
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


def _from_url(cls: Any, url: str) -> Any:
    try:
        return cls.from_url(url, protocol=2, socket_connect_timeout=5)
    except ValueError as exc:
        raise ValueError(f"redis URL {redact(url)!r}: {exc}") from None


def owns(target: object) -> bool:
    """True when the client made for ``target`` is ours to close (made from None or a URL)."""
    return target is None or isinstance(target, str)


def sync_client(target: object) -> Any:
    """A redis.Redis-like client for ``target``: None / "memory://", a URL, or a ready client."""
    if target is None or (isinstance(target, str) and _scheme(target) == "memory"):
        return fakeredis.FakeRedis(server=embedded_server(), protocol=2)
    if isinstance(target, str):
        return _from_url(redis.Redis, target)
    if isinstance(target, (redis.Redis, redis.RedisCluster)):
        return target
    raise TypeError(
        f"redis must be None, a URL or a redis.Redis client, not {type(target).__name__}"
    )


def async_client(target: object) -> Any:
    """The asyncio counterpart of :func:`sync_client`."""
    if target is None or (isinstance(target, str) and _scheme(target) == "memory"):
        return fakeredis.FakeAsyncRedis(server=embedded_server(), protocol=2)
    if isinstance(target, str):
        return _from_url(redis.asyncio.Redis, target)
    if isinstance(target, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
        return target
    raise TypeError(
        f"redis must be None, a URL or a redis.asyncio.Redis client, not {type(target).__name__}"
    )
