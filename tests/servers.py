"""Private Redis servers for tests and benchmarks: one server, a master with replicas, sentinels, a
cluster, TLS. Free loopback ports (never 6379), stopped by pid, nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REQUIRE_ENV = "LUASCHED_REQUIRE_REAL_REDIS"
#: The server binary the real half runs on: this one (a path or a name on PATH) when set, e.g. a
#: Redis 6.2 or a valkey-server (docs/deployment/compatibility.md), else redis-server.
SERVER_ENV = "LUASCHED_REDIS_SERVER"


def redis_server_path() -> str | None:
    return shutil.which(os.environ.get(SERVER_ENV) or "redis-server")


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


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server certificate (for 127.0.0.1 and localhost) signed by it, made by openssl."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self) -> tuple[str, ...]:
        return ("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no")

    def client_kwargs(self) -> dict[str, Any]:
        return {"ssl": True, "ssl_ca_certs": str(self.ca)}


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a throwaway CA and a server certificate with the openssl command."""
    exe = shutil.which("openssl")
    if exe is None:
        raise FileNotFoundError("openssl is not on PATH")
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr, ext = directory / "server.crt", directory / "server.key", directory / "server.csr", \
        directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run([exe, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=luasched test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TlsFiles(ca, cert, key)


def probe(port: int, **kwargs: Any) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0), **kwargs)


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1:port; ``stop()`` kills it by pid and removes its directory."""

    port: int
    process: subprocess.Popen[bytes]
    dir: Path
    extra: tuple[str, ...] = field(default=())
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> redis.Redis:
        if self.tls is not None:
            kwargs = {**self.tls.client_kwargs(), **kwargs}
        kwargs.setdefault("protocol", 2)
        return redis.Redis(port=self.port, **kwargs)  # type: ignore[arg-type]

    def info(self, section: str) -> dict[str, Any]:
        with probe(self.port, **(self.tls.client_kwargs() if self.tls else {})) as c:
            return c.info(section)  # type: ignore[no-any-return]

    @property
    def version(self) -> tuple[int, int]:
        """(major, minor) of the server's Redis version (Valkey reports the Redis one it matches)."""
        major, minor = self.info("server")["redis_version"].split(".")[:2]
        return int(major), int(minor)

    def pause(self) -> None:
        """SIGSTOP: the server stops answering (and replicating) until ``resume``."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            if sig != signal.SIGKILL:
                self.process.send_signal(signal.SIGCONT)  # a paused server must see the signal
            self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_redis(*extra: str, port: int | None = None, directory: Path | None = None,
                tls: TlsFiles | None = None, sentinel: bool = False) -> RedisServer:
    """A redis-server (or, with ``sentinel``, a Sentinel) on a free loopback port, answering PING.
    With ``tls`` it listens with TLS only (the plain port is closed)."""
    exe = redis_server_path()
    if exe is None:
        raise FileNotFoundError("redis-server is not on PATH")
    if port is None:  # a free port can be taken by another test process before the server binds it
        for _ in range(2):
            try:
                return start_redis(*extra, port=free_port(), directory=directory, tls=tls, sentinel=sentinel)
            except RuntimeError:
                continue
        port = free_port()
    d = directory or Path(tempfile.mkdtemp(prefix=f"luasched-redis-{port}-"))
    ports = ["--port", "0", "--tls-port", str(port), *tls.server_args()] if tls else ["--port", str(port)]
    if sentinel:
        # Sentinel rewrites its configuration file: it must be a writable file of its own.
        conf = d / "sentinel.conf"
        conf.write_text("\n".join(extra) + "\n")
        args = [exe, str(conf), "--sentinel", *ports, "--bind", "127.0.0.1", "--dir", str(d),
                "--logfile", str(d / "redis.log")]
    else:
        args = [exe, *ports, "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
                "--appendonly", "no", "--logfile", str(d / "redis.log"), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, proc, d, tuple(extra), tls)
    deadline = time.monotonic() + 10
    while True:
        try:
            if probe(port, **(tls.client_kwargs() if tls else {})).ping():
                return server
        except redis.exceptions.RedisError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (d / "redis.log").read_text() if (d / "redis.log").exists() else ""
            server.cleanup()
            raise RuntimeError(f"redis-server on port {port} did not start:\n{log[-2000:]}")
        time.sleep(0.01)


def wait_until(check: Any, what: str, timeout: float = 15.0, every: float = 0.02) -> None:
    """Poll ``check()`` until it is true (test set-up only: servers starting, a failover)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.exceptions.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


#: A master whose replicas sync at once (the default waits 5 s before a diskless sync).
MASTER_ARGS = ("--repl-diskless-sync-delay", "0")


def start_replica(master: RedisServer, *extra: str) -> RedisServer:
    """A replica of ``master``, returned once its link to the master is up."""
    replica = start_redis("--replicaof", "127.0.0.1", str(master.port), *extra)
    try:
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
                   f"replica {replica.port} of {master.port}")
    except TimeoutError:
        replica.cleanup()
        raise
    return replica


@dataclass
class Group:
    """Servers started together and stopped together (by pid)."""

    servers: list[RedisServer]

    def cleanup(self) -> None:
        for s in self.servers:
            s.cleanup()


@dataclass
class Replicated(Group):
    """A master, its replicas and the sentinels watching them (service ``name``)."""

    master: RedisServer
    replicas: list[RedisServer]
    sentinels: list[RedisServer]
    name: str = "mymaster"

    @property
    def sentinel_url(self) -> str:
        hosts = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}"

    def current_master(self) -> tuple[str, int] | None:
        """The master the first answering sentinel names (None when none answers)."""
        for s in self.sentinels:
            try:
                with probe(s.port) as c:
                    host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                    return str(host.decode()), int(port)
            except redis.exceptions.RedisError:
                continue
        return None

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)


def start_replicated(replicas: int = 1, sentinels: int = 0, quorum: int | None = None,
                     down_after_ms: int = 1000, master_extra: Sequence[str] = ()) -> Replicated:
    """A master, ``replicas`` replicas (links up) and ``sentinels`` sentinels that know them all."""
    started: list[RedisServer] = []
    try:
        master = start_redis(*MASTER_ARGS, *master_extra)
        started.append(master)
        reps = []
        for _ in range(replicas):
            reps.append(start_replica(master, *MASTER_ARGS))
            started.append(reps[-1])
        if reps:  # a first write every replica has acknowledged: a test's first WAIT is not slowed
            with probe(master.port, socket_timeout=15) as c:  # by the replication stream starting up
                c.set("servers:warm-up", "1", px=1000)
                acked = c.execute_command("WAIT", len(reps), 10_000)
            if acked < len(reps):
                raise TimeoutError(f"{acked} of {len(reps)} replicas acknowledged the master within 10 s")
        sents = []
        name = "mymaster"
        for _ in range(sentinels):
            sents.append(start_redis(
                f"sentinel monitor {name} 127.0.0.1 {master.port} {quorum or (sentinels // 2 + 1)}",
                f"sentinel down-after-milliseconds {name} {down_after_ms}",
                f"sentinel failover-timeout {name} 3000",
                f"sentinel parallel-syncs {name} {max(replicas, 1)}",
                sentinel=True))
            started.append(sents[-1])

        def known() -> bool:
            for s in sents:
                with probe(s.port) as c:
                    info = c.sentinel_master(name)
                    if info["num-slaves"] < replicas or info["num-other-sentinels"] < len(sents) - 1:
                        return False
            return True

        if sents:
            wait_until(known, "sentinels discovering the replicas and each other")
        return Replicated(started, master, reps, sents, name)
    except BaseException:
        for s in started:
            s.cleanup()
        raise


@dataclass
class Cluster(Group):
    """A Redis Cluster of masters only (every slot covered)."""

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(s.address for s in self.servers)

    def client(self, **kwargs: Any) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.servers[0].port, protocol=2, **kwargs)

    def node_id(self, node: RedisServer) -> str:
        with probe(node.port) as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def owner(self, slot: int) -> RedisServer:
        with probe(self.servers[0].port) as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(s for s in self.servers if s.port == primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def move_slot(self, slot: int, to: RedisServer) -> None:
        """Migrate one slot, keys and all, to node ``to`` (what a reshard does, slot by slot)."""
        source = self.owner(slot)
        if source is to:
            return
        src_id, dst_id = self.node_id(source), self.node_id(to)
        with probe(source.port) as src, probe(to.port) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
            for node in self.servers:
                with probe(node.port) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


def start_cluster(masters: int = 3, *extra: str) -> Cluster:
    """``masters`` cluster nodes, joined with redis-cli, returned once every node says cluster_state:ok."""
    nodes: list[RedisServer] = []
    try:
        for _ in range(masters):
            port = free_port()
            nodes.append(start_redis("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                                     "--cluster-node-timeout", "2000", *extra, port=port))
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not on PATH")
        subprocess.run([cli, "--cluster", "create", *(n.address for n in nodes), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(lambda: all(_cluster_ok(n) for n in nodes), "cluster_state:ok on every node")
        return Cluster(nodes)
    except BaseException:
        for n in nodes:
            n.cleanup()
        raise


def _cluster_ok(node: RedisServer) -> bool:
    with probe(node.port) as c:
        return b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
