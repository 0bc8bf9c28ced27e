"""The scripts that write run as Redis Functions where the server has them (luasched.scripts):
loaded on "function not found", again after FUNCTION FLUSH, and given up for scripts, for good,
where the server has none or the user may not use them; the embedded server and read-only
scripts always get scripts. What runs is the same either way: the audit holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import luasched
from luasched.connection import acl_rules, knows_functions
from luasched.scripts import FLAGS, FUNCTIONS, READ_ONLY, libraries
from tests.servers import RedisServer, probe

pytestmark = pytest.mark.real_redis


def calls(server: RedisServer) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def double(x: int) -> int:
    return 2 * x


def run_some(sched: luasched.Scheduler, n: int = 20) -> list[int]:
    sched.task(double)  # (the same function again: no change)
    proc = sched.processor(capacity=2)
    proc.start()
    try:
        return [h.result(timeout=10) for h in [sched.submit(double, i) for i in range(n)]]
    finally:
        proc.stop(timeout=10)


@pytest.fixture
def has_functions(redis_server: RedisServer) -> bool:
    return knows_functions(redis_server.client().info("server")["redis_version"])


@pytest.fixture
def sched(redis_server: RedisServer, namespace: str) -> Iterator[luasched.Scheduler]:
    made = luasched.Scheduler(redis_server.client(), namespace)
    yield made
    made.close()


def test_libraries_are_the_writing_scripts_named_by_their_source() -> None:
    made = libraries()
    assert set(made) == set(FUNCTIONS) and not set(FUNCTIONS) & (READ_ONLY | set(FLAGS))
    for name, (function, source) in made.items():
        assert function.startswith(f"luasched_{name}_") and len(function) == len(f"luasched_{name}_") + 16
        assert source.startswith(f"#!lua name={function}\n") and f"function_name='{function}'" in source
    assert "heartbeat" not in made and "result" not in made  # allow-oom: they must load out of memory
    assert all("flags={}" in source for _, source in made.values())


def test_the_writing_scripts_run_as_functions_and_reads_as_scripts(sched, redis_server, has_functions):
    before = calls(redis_server)
    assert run_some(sched) == [2 * i for i in range(20)]
    assert sched.audit().ok and sched.counts()["done"] == 20
    after = calls(redis_server)
    fcalls = after.get("fcall", 0) - before.get("fcall", 0)
    assert sched.scripts.functions is has_functions
    if has_functions:
        assert fcalls >= 20 * 2  # a submit and an ack (or start) per task at least
        loaded = {entry[1].decode() for entry in redis_server.client().execute_command("FUNCTION", "LIST")}
        assert {libraries()[name][0] for name in ("submit", "ack", "start", "register")} <= loaded
    else:
        assert fcalls == 0
    assert after["evalsha"] > before.get("evalsha", 0)  # the audit and counts: read-only, scripts


def test_a_flush_is_loaded_again_and_nothing_is_lost(sched, redis_server, has_functions):
    assert run_some(sched, 5) == [0, 2, 4, 6, 8]
    redis_server.client().execute_command("FUNCTION" if has_functions else "SCRIPT", "FLUSH")
    assert run_some(sched, 5) == [0, 2, 4, 6, 8]
    assert sched.scripts.functions is has_functions and sched.audit().ok
    assert sched.counts()["done"] == 10


def test_a_user_who_may_not_use_functions_gets_scripts(redis_server, namespace, has_functions):
    with probe(redis_server.port) as admin:
        version = admin.info("server")["redis_version"]
        rules = " ".join(r for r in acl_rules(namespace, version=version).split()
                         if r not in ("+fcall", "+function|load"))
        admin.execute_command("ACL", "SETUSER", f"nofn-{namespace}", "on", ">pw", *rules.split())
        admin.execute_command("ACL", "LOG", "RESET")
        url = f"redis://nofn-{namespace}:pw@127.0.0.1:{redis_server.port}/0"
        sched = luasched.Scheduler(url, namespace)
        try:
            assert run_some(sched) == [2 * i for i in range(20)]
            assert not sched.scripts.functions and sched.audit().ok
            refused = sum(e["count"] for e in admin.acl_log() if e["object"] == "fcall")
            assert run_some(sched, 5) == [0, 2, 4, 6, 8]  # no more refusals: scripts for good
            assert sum(e["count"] for e in admin.acl_log() if e["object"] == "fcall") == refused
        finally:
            sched.close()
            admin.execute_command("ACL", "DELUSER", f"nofn-{namespace}")
    if has_functions:
        assert refused  # its first calls were refused (the first of each thread that called at once)


def test_the_embedded_server_gets_scripts() -> None:
    sched = luasched.Scheduler()
    assert not sched.scripts.functions
    assert run_some(sched, 3) == [0, 2, 4]
    assert not sched.scripts.functions and sched.audit().ok
