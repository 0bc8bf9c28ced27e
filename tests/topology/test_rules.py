"""The pure rules behind the topologies (no server): URL forms, which client serves a read, what
a write waits for, how shards are named and spread. Shared by the sync and asyncio fronts."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

import luasched
from luasched.connection import (
    Target,
    acl_rules,
    async_client,
    parse_url,
    read_targets,
    redact,
    sync_client,
)
from luasched.core.options import Durability
from luasched.routing import Reads
from luasched.sharded import shard_namespaces, spread_namespaces


@pytest.mark.parametrize("url, want", [
    ("memory://", Target("memory")),
    ("redis://h:1/0", Target("url", "redis://h:1/0")),
    ("rediss://u:p@h:1/2", Target("url", "rediss://u:p@h:1/2")),
    ("redis+sentinel://a:1,b:2/mymaster", Target("sentinel", "redis+sentinel://a:1,b:2/mymaster",
                                                 (("a", 1), ("b", 2)), "mymaster", {})),
    ("redis+sentinel://a/svc/3", Target("sentinel", "redis+sentinel://a/svc/3", (("a", 26379),), "svc", {"db": 3})),
    ("rediss+sentinel://u:p%40ss@a:1/svc?ssl_ca_certs=/ca.pem&socket_timeout=2",
     Target("sentinel", "rediss+sentinel://u:p%40ss@a:1/svc?ssl_ca_certs=/ca.pem&socket_timeout=2",
            (("a", 1),), "svc", {"username": "u", "password": "p@ss", "ssl": True,
                                 "ssl_ca_certs": "/ca.pem", "socket_timeout": 2.0})),
    ("redis+cluster://a:7000,b:7001", Target("cluster", "redis+cluster://a:7000,b:7001",
                                             (("a", 7000), ("b", 7001)), "", {})),
    ("redis+cluster://:pw@a/0", Target("cluster", "redis+cluster://:pw@a/0", (("a", 6379),), "", {"password": "pw"})),
])
def test_url_forms(url: str, want: Target) -> None:
    assert parse_url(url) == want


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel://a:1", "must name the service"),
    ("redis+sentinel://a:1/svc/x", "database 'x' is not a number"),
    ("redis+sentinel://a:1/svc/1/2", "must name the service"),
    ("redis+sentinel:///svc", "names no host"),
    ("redis+sentinel://a:b/svc", "bad host 'a:b'"),
    ("redis+cluster://a:1/3", "a cluster has only database 0"),
    ("redis+cluster://a:1?bogus=1", "unknown option 'bogus'"),
    ("redis+cluster://a:1?socket_timeout=x", "bad value for socket_timeout"),
    ("http://a:1", "must start with memory://"),
])
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_url(url)


def test_no_url_error_shows_a_password() -> None:
    for url in ("redis+sentinel://u:hunter2@a:1", "redis+cluster://u:hunter2@a:1?bogus=1",
                "redis+sentinel://:hunter2@a:x/svc"):
        with pytest.raises(ValueError) as bad:
            luasched.Scheduler(url)
        assert "hunter2" not in str(bad.value) and "***" in str(bad.value)
    assert redact("redis+sentinel://u:hunter2@a:1,b:2/svc") == "redis+sentinel://u:***@a:1,b:2/svc"


def test_clients_made_from_urls_are_of_the_right_kind() -> None:
    # No connection is made until a command is sent.
    master = sync_client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc")
    replica = sync_client("redis+sentinel://127.0.0.1:1/svc", replica=True)
    assert master.connection_pool.is_master and not replica.connection_pool.is_master
    assert master.connection_pool.service_name == "svc"
    assert async_client("redis+sentinel://127.0.0.1:1/svc").connection_pool.is_master
    sentinel = redis.Sentinel([("127.0.0.1", 1)])
    with pytest.raises(TypeError, match="service_name"):
        sync_client(sentinel)
    assert sync_client(sentinel, service_name="svc").connection_pool.service_name == "svc"


def test_reads_go_to_replicas_in_turn_and_scripts_that_write_to_the_primary() -> None:
    primary, r1, r2 = object(), object(), object()
    reads = Reads(primary, [r1, r2])
    assert [reads.reader() for _ in range(4)] == [r1, r2, r1, r2]
    assert reads.for_script("dispatch") is primary and reads.for_script("submit") is primary
    assert {id(reads.for_script("counts")), id(reads.for_script("audit"))} <= {id(r1), id(r2)}
    alone = Reads(primary)
    assert not alone.split and alone.reader() is primary and alone.for_script("counts") is primary
    assert read_targets(None) == [] and read_targets("redis://x") == ["redis://x"]
    assert read_targets(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match="empty list"):
        read_targets([])


def test_durability_waits_only_after_writes_and_checks_the_count() -> None:
    d = Durability.of(2, 0.5)
    assert d.command() == ("WAIT", 2, 500)
    assert d.applies("ack") and d.applies("submit") and not d.applies("counts") and not d.applies("audit")
    assert not Durability.of(0, 1.0).applies("ack")
    d.check(2, "ack")
    d.check(3, "ack")
    with pytest.raises(luasched.NotReplicated, match="ack: written on the primary, but 1 of 2") as short:
        d.check(1, "ack")
    assert (short.value.acked, short.value.wanted) == (1, 2)
    with pytest.raises(redis.exceptions.ResponseError):
        d.check(redis.exceptions.ResponseError("WAIT cannot be used with replica instances"), "ack")


@pytest.mark.parametrize("replicas, timeout, exc", [
    (-1, 1.0, ValueError), (17, 1.0, ValueError), (True, 1.0, TypeError), (1.5, 1.0, TypeError),
    (1, 0, ValueError), (1, float("inf"), ValueError),
])
def test_bad_durability_is_refused(replicas: object, timeout: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Durability.of(replicas, timeout)


def test_shard_names_are_stable_and_spread_follows_the_slot_map() -> None:
    assert shard_namespaces("work", 3) == ["work.0", "work.1", "work.2"]
    owners = ["n1", "n2", "n3"]

    def owner(slot: int) -> str:  # three nodes holding equal slot ranges, like a fresh cluster
        return owners[slot * 3 // 16384]

    names = spread_namespaces("work", 6, owner, owners)
    from redis.crc import key_slot

    assert [owner(key_slot(f"luasched:{{{n}}}:stats".encode())) for n in names] == owners * 2
    assert names == spread_namespaces("work", 6, owner, owners)  # deterministic
    with pytest.raises(ValueError):
        spread_namespaces("work", 1, owner, [])


def test_acl_rules_name_the_namespace_keys_only() -> None:
    assert acl_rules("billing").startswith("resetkeys ~luasched:{billing}:* resetchannels -@all +")
    assert " ~luasched:* " in acl_rules()
    with pytest.raises(ValueError):
        acl_rules("no spaces please")


@pytest.mark.parametrize(("version", "allowed"), [
    (None, True), ("6.2.14", True), ("7.0.15", False), ((7, 0), False), ((7, 1), False), ("7.2.4", True),
    ("8.0.6", True), ((9, 0), True),
])
def test_acl_rules_allow_client_setinfo_where_the_server_knows_it(version, allowed) -> None:
    """redis-py sends CLIENT SETINFO on connect; Redis 7.0 and 7.1 reject a rule naming it."""
    rules = acl_rules("billing", version=version).split()
    assert ("+client|setinfo" in rules) is allowed
    functions = ("+fcall", "+function|load")
    assert [r for r in rules if r not in ("+client|setinfo", *functions)] == [
        r for r in acl_rules("billing", version="7.0.0").split() if r not in functions]


@pytest.mark.parametrize(("version", "allowed"), [
    (None, False), ("6.2.14", False), ("7.0.15", True), ((7, 0), True), ("7.2.4", True), ((9, 0), True),
])
def test_acl_rules_allow_functions_where_the_server_has_them(version, allowed) -> None:
    """Redis 6.2 rejects a rule naming FCALL; not given a version, the rules suit it too (the
    Scheduler then runs scripts only, after one refusal)."""
    rules = acl_rules("billing", version=version).split()
    assert ("+fcall" in rules) is allowed and ("+function|load" in rules) is allowed


def test_acl_rules_refuse_a_version_they_cannot_read() -> None:
    with pytest.raises(ValueError, match="not a Redis version"):
        acl_rules("billing", version="latest")


def test_asyncio_clients_for_the_same_forms() -> None:
    cluster = async_client("redis+cluster://127.0.0.1:1")
    assert isinstance(cluster, redis.asyncio.RedisCluster)
