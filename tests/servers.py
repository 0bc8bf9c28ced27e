"""Private redis-server processes for tests: free loopback ports, stopped by pid, nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REQUIRE_ENV = "LUASCHED_REQUIRE_REAL_REDIS"


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def real_redis_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def free_port() -> int:
    """A free loopback port low enough that port + 10000 (a cluster bus) is valid too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000 and port != 6379:
            return port
    raise RuntimeError("no free port below 55000")


def probe(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1:port; ``stop()`` kills it by pid and removes its directory."""

    port: int
    process: subprocess.Popen[bytes]
    dir: Path
    extra: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=self.port, protocol=2, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis(*extra: str, port: int | None = None, directory: Path | None = None) -> RedisServer:
    exe = redis_server_path()
    if exe is None:
        raise FileNotFoundError("redis-server is not on PATH")
    port = port or free_port()
    d = directory or Path(tempfile.mkdtemp(prefix=f"luasched-redis-{port}-"))
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
            "--appendonly", "no", "--logfile", str(d / "redis.log"), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, proc, d, tuple(extra))
    deadline = time.monotonic() + 10
    while True:
        try:
            if probe(port).ping():
                return server
        except redis.exceptions.RedisError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (d / "redis.log").read_text() if (d / "redis.log").exists() else ""
            server.cleanup()
            raise RuntimeError(f"redis-server on port {port} did not start:\n{log[-2000:]}")
        time.sleep(0.01)
