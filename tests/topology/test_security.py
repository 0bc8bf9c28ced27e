"""Security on real servers: a Redis ACL user limited to one namespace runs everything luasched
does and nothing else; TLS (``rediss://``) with a certificate made here; passwords never shown
in exceptions, logs or ``status``."""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

import luasched
from luasched.cli import main
from luasched.connection import SCRIPT_COMMANDS, acl_rules
from tests.servers import RedisServer, make_tls_files, probe, start_redis, wait_until
from tests.topology.conftest import need_redis_server

pytestmark = pytest.mark.real_redis

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Hx7-s3cret"
OPS_PASSWORD = "ops-9Qz-s3cret"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    """A server with three users: ``luasched`` (namespace billing only, the README's rules),
    ``admin`` (the same and purge) and ``ops`` (every luasched namespace, and purge)."""
    need_redis_server()
    server = start_redis()
    version = server.info("server")["redis_version"]  # Redis 7.0 refuses +client|setinfo
    with probe(server.port) as c:
        rules = acl_rules("billing", version=version)
        c.execute_command("ACL", "SETUSER", "luasched", "on", f">{PASSWORD}", *rules.split())
        admin = acl_rules("billing", purge=True, version=version)
        c.execute_command("ACL", "SETUSER", "admin", "on", f">{OPS_PASSWORD}", *admin.split())
        ops = acl_rules(purge=True, version=version)
        c.execute_command("ACL", "SETUSER", "ops", "on", f">{OPS_PASSWORD}", *ops.split())
    yield server
    server.cleanup()


def user_url(server: RedisServer, user: str = "luasched", password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


# --- ACL ----------------------------------------------------------------------------------------


def test_the_acl_lists_exactly_the_commands_the_scripts_call() -> None:
    called = set()
    for path in (ROOT / "lua").rglob("*.lua"):
        called |= {m.lower() for m in re.findall(r"redis\.p?call\('([A-Za-z]+)'", path.read_text())}
    assert called == set(SCRIPT_COMMANDS)


def test_the_readme_gives_the_exact_acl_line() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"ACL SETUSER luasched on >PASSWORD {acl_rules('billing')}" in readme


def test_an_acl_user_runs_everything_on_its_namespace_and_nothing_else(acl_server: RedisServer) -> None:
    with probe(acl_server.port) as c:
        c.execute_command("ACL", "LOG", "RESET")
    sched = luasched.Scheduler(user_url(acl_server), "billing")

    @sched.task
    def add(a: int, b: int) -> int:
        return a + b

    @sched.task(max_attempts=1)
    def boom() -> None:
        raise RuntimeError("no")

    g = sched.map(add, [(1, 1), (2, 2)])
    h = sched.submit(add, 1, 2)
    bad = sched.submit(boom)
    later = sched.submit(add, 0, 0, _delay=60)
    assert later.cancel()
    stop = threading.Event()
    loop = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    loop.start()
    p = sched.processor(capacity=2, lease=5.0)
    p.start()
    try:
        assert h.result(timeout=10) == 3
        assert g.results(timeout=10) == [2, 4]
        assert sched.group(g.id).progress()["done"] == 2
        with pytest.raises(luasched.TaskFailed):
            bad.result(timeout=10)
        assert [t.id for t in sched.failed()] == [bad.id]
        assert sched.retry_failed([bad.id]) == [bad.id]
        with pytest.raises(luasched.TaskFailed):
            bad.result(timeout=10)
        assert sched.purge_finished() == 1  # the runtime user may purge dead letters: no SCAN
        assert [x.id for x in sched.processors()] == [p.id]
        assert sched.counts()["done"] == 3
        assert sched.audit().ok
    finally:
        p.stop(timeout=5)
        stop.set()
        sched.wake()
        loop.join(10)
    sched.reap()
    with probe(acl_server.port) as c:
        assert c.acl_log() == []  # nothing luasched did was refused
    # The runtime user cannot list key names (SCAN would show other namespaces'): purge is the
    # admin user's.
    with pytest.raises(luasched.ScriptError, match="refused by the server's ACL"):
        sched.purge()
    with redis.Redis(port=acl_server.port, username="luasched", password=PASSWORD) as raw:
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.scan(0)
    with luasched.Scheduler(user_url(acl_server, "admin", OPS_PASSWORD), "billing") as admin:
        assert admin.purge() > 0
    with probe(acl_server.port) as c:
        assert c.exists("luasched:{billing}:stats") == 0
        c.execute_command("ACL", "LOG", "RESET")

    # Outside its namespace, the same user is refused: by luasched, and by a plain client.
    other = luasched.Scheduler(user_url(acl_server), "payroll")
    with pytest.raises(luasched.ScriptError, match="refused by the server's ACL") as refused:
        other.submit("add", 1, 2)
    assert "no permissions to access" in str(refused.value).lower()  # "one of the keys"; Valkey: "a key"
    with redis.Redis(port=acl_server.port, username="luasched", password=PASSWORD) as raw:
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.get("secret")
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.flushall()
    with probe(acl_server.port) as c:
        assert c.exists("luasched:{payroll}:stats") == 0
    sched.close()
    other.close()


# --- passwords ------------------------------------------------------------------------------------


def test_a_wrong_password_is_a_clear_error_without_the_password(acl_server: RedisServer) -> None:
    wrong = "WRONG-pw-4242"
    sched = luasched.Scheduler(user_url(acl_server, password=wrong), "billing")
    with pytest.raises(luasched.ConnectionLost) as lost:
        sched.counts()
    text = f"{lost.value} {lost.value!r} {lost.value.__cause__!r} {sched!r} {sched.client!r}"
    assert "invalid username-password pair" in text
    assert wrong not in text
    with pytest.raises(ValueError) as bad:
        luasched.Scheduler(f"redis+sentinel://u:{wrong}@127.0.0.1:1/")
    assert wrong not in str(bad.value) and "u:***@" in str(bad.value)


def test_status_never_prints_a_password(acl_server: RedisServer) -> None:
    url = user_url(acl_server)
    for args in (["--json"], []):
        result = cli("status", "--redis", url, "--namespace", "billing", "--read-redis", url, *args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        assert "luasched:***@127.0.0.1" in result.output  # "read from replica ..." names it redacted
    refused = cli("status", "--redis", user_url(acl_server, password="WRONG-777"), "--namespace", "billing")
    assert refused.exit_code == 2 and "WRONG-777" not in refused.output


def test_logs_never_show_a_password(acl_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    # In this process: the scheduler loop logs every reconnection attempt to an unreachable server.
    dead = start_redis()
    dead.cleanup()
    sched = luasched.Scheduler(f"redis://ops:{OPS_PASSWORD}@127.0.0.1:{dead.port}/0", "logs")
    stop = threading.Event()
    caplog.set_level(logging.DEBUG)
    loop = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_until(lambda: any("scheduler loop" in r.getMessage() for r in caplog.records),
                   "a reconnection warning", timeout=30)
    finally:
        stop.set()
        loop.join(30)
    assert "cannot reach Redis" in caplog.text and OPS_PASSWORD not in caplog.text

    # The processor and scheduler commands, run for real: their start and stop lines.
    url = f"redis://ops:{OPS_PASSWORD}@127.0.0.1:{acl_server.port}/0"
    procs = [subprocess.Popen([sys.executable, "-m", "luasched", *command, "tests.cli_app:sched", "--redis", url],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for command in (["processor", "--no-scheduler"], ["scheduler"])]
    outputs = []
    try:
        firsts = []
        for proc in procs:  # each one's lines up to its start line (a signal before it stops it unlogged)
            assert proc.stderr is not None
            lines = []
            while not any(" started" in line for line in lines):
                line = proc.stderr.readline()
                assert line, "".join(lines)
                lines.append(line)
            firsts.append("".join(lines))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            outputs.append(proc.communicate(timeout=30))
    outputs = [(out, first + err) for (out, err), first in zip(outputs, firsts, strict=True)]
    for out, err in outputs:
        assert OPS_PASSWORD not in out + err
        assert "ops:***@127.0.0.1" in err, err


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH: cannot make a test certificate")
    server = start_redis(tls=make_tls_files(tmp_path_factory.mktemp("tls")))
    yield server
    server.cleanup()


def test_rediss_urls_work_with_tls(tls_server: RedisServer) -> None:
    assert tls_server.url.startswith("rediss://")
    with tls_server.client() as c:  # no plain port: every connection is TLS
        assert c.config_get("port") == {"port": "0"} and c.config_get("tls-port") == {"tls-port": str(tls_server.port)}
    sched = luasched.Scheduler(tls_server.url, "tls")

    @sched.task
    def add(a: int, b: int) -> int:
        return a + b

    g = sched.map(add, [(1, 2), (3, 4)])
    p = sched.processor(capacity=2)
    assert p.register()
    sched.dispatch()
    assert p.process_available() == 2
    assert g.results(timeout=5) == [3, 7]
    assert sched.audit().ok
    status = cli("status", "--redis", tls_server.url, "--namespace", "tls", "--json")
    assert status.exit_code == 0 and '"done": 2' in status.stdout
    sched.purge()
    sched.close()


def test_tls_refuses_an_unknown_certificate_and_plain_connections(tls_server: RedisServer) -> None:
    no_ca = luasched.Scheduler(f"rediss://127.0.0.1:{tls_server.port}/0", "tls")
    with pytest.raises(luasched.ConnectionLost, match="certificate verify failed"):
        no_ca.counts()
    plain = luasched.Scheduler(f"redis://127.0.0.1:{tls_server.port}/0?socket_timeout=2", "tls")
    began = time.monotonic()
    with pytest.raises(luasched.ConnectionLost):
        plain.counts()
    assert time.monotonic() - began < 30  # refused, not hanging
