"""The clients luasched makes from a URL: a socket timeout and TCP keepalive by default (a URL's
own options win), a black-holed connection noticed within the timeout, and a connection cut
under a call retried on a new one, as the README promises (every script is replay-safe)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import luasched
from luasched import aio
from tests.proxy import ReplyDropper
from tests.servers import free_port

pytestmark = [pytest.mark.real_redis]


def test_a_url_client_has_a_timeout_keepalive_and_retries():
    for sched in (luasched.Scheduler("redis://127.0.0.1:1/0"), aio.Scheduler("redis://127.0.0.1:1/0")):
        kwargs = sched.client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["socket_keepalive"]) == (10, 5, True)
        assert kwargs["retry"].get_retries() == 3
        assert sched.block_s < 10, "a blocking call waits less than the socket timeout"
    own = luasched.Scheduler("redis://127.0.0.1:1/0?socket_timeout=2.5")
    assert own.client.connection_pool.connection_kwargs["socket_timeout"] == 2.5


@pytest.fixture
def black_hole():
    """A port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    stop.set()
    t.join(2)
    for s in held:
        s.close()
    listener.close()


def test_a_black_holed_connection_is_noticed_within_the_timeout(black_hole):
    sched = luasched.Scheduler(f"redis://127.0.0.1:{black_hole}/0?socket_timeout=1")
    began = time.monotonic()
    with pytest.raises(luasched.ConnectionLost, match="did not answer in time"):
        sched.counts()
    assert time.monotonic() - began < 2 * 1 + 0.5
    handle = sched.handle("some-task")
    began = time.monotonic()
    with pytest.raises((luasched.ConnectionLost, luasched.ResultTimeout)):
        handle.result(timeout=3)  # a waiter gives up within its own timeout, not the hole's
    assert time.monotonic() - began < 3 + 2 + 0.5
    sched.close()


def test_a_url_client_retries_a_connection_cut_under_a_submit(redis_server, namespace):
    proxy = ReplyDropper(redis_server.port)
    try:
        sched = luasched.Scheduler(f"redis://127.0.0.1:{proxy.port}/0", namespace=namespace,
                                   dispatch_on_submit=False)
        handles = []
        for i in range(20):
            proxy.drop_reply_to(str(sched.scripts.command("submit", (), ())[1]).encode())  # function or sha
            handles.append(sched.submit("job", i))  # the reply is lost: redis-py sends it again
        assert proxy.dropped == 20
        client = redis_server.client()
        direct = luasched.Scheduler(client, namespace=namespace)
        assert direct.counts()["submitted"] == 20 and direct.queue_lengths() == {"default": 20}
        assert direct.audit().ok
        client.close()
        sched.close()
    finally:
        proxy.close()


def test_the_password_can_come_from_the_environment_or_a_file(tmp_path, monkeypatch, namespace):
    from click.testing import CliRunner

    from luasched.cli import main
    from tests.servers import start_redis

    server = start_redis()
    url = f"redis://127.0.0.1:{server.port}/0"
    try:
        with server.client() as admin:
            admin.config_set("requirepass", "s3cret")
        with pytest.raises(luasched.LuaschedError, match="(?i)auth"), luasched.Scheduler(url, namespace=namespace) as s:
            s.counts()
        secret = tmp_path / "redis-password"
        secret.write_text("s3cret\n")
        monkeypatch.setenv("LUASCHED_REDIS_PASSWORD_FILE", str(secret))
        with luasched.Scheduler(url, namespace=namespace) as s:
            assert s.counts()["submitted"] == 0
        shown = CliRunner().invoke(main, ["status", "--redis", url, "--namespace", namespace, "--json"])
        assert shown.exit_code == 0, shown.output
        monkeypatch.delenv("LUASCHED_REDIS_PASSWORD_FILE")
        monkeypatch.setenv("LUASCHED_REDIS_PASSWORD", "s3cret")
        with luasched.Scheduler(url, namespace=namespace) as s:
            assert s.counts()["submitted"] == 0
        monkeypatch.setenv("LUASCHED_REDIS_PASSWORD", "")
        monkeypatch.setenv("LUASCHED_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
        with pytest.raises(ValueError, match="LUASCHED_REDIS_PASSWORD_FILE=.*cannot read the password"):
            luasched.Scheduler(url, namespace=namespace)
    finally:
        server.cleanup()
