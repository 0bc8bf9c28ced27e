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


def sync_client(target: object) -> Any:
    """A redis.Redis-like client for ``target``: None / "memory://", a URL, or a ready client."""
    if target is None or (isinstance(target, str) and _scheme(target) == "memory"):
        return fakeredis.FakeRedis(server=embedded_server(), protocol=2)
    if isinstance(target, str):
        return redis.Redis.from_url(target, protocol=2, socket_connect_timeout=5)
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
        return redis.asyncio.Redis.from_url(target, protocol=2, socket_connect_timeout=5)
    if isinstance(target, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
        return target
    raise TypeError(
        f"redis must be None, a URL or a redis.asyncio.Redis client, not {type(target).__name__}"
    )
