"""Topology tests: real servers only (replicas, sentinels, clusters, ACL, TLS), each group
started once per module where the tests leave it usable, and stopped by pid at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Cluster, Replicated, real_redis_required, redis_server_path, start_cluster, start_replicated


def need_redis_server() -> None:
    """Skip without redis-server on PATH, or fail when LUASCHED_REQUIRE_REAL_REDIS is set (CI)."""
    if redis_server_path() is None:
        message = "redis-server is not on PATH: the topology tests need real servers"
        if real_redis_required():
            pytest.fail(message + " (LUASCHED_REQUIRE_REAL_REDIS is set)")
        pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "topology" in item.nodeid.split("::")[0] and "real_redis" in item.keywords:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    """A master and one replica (no sentinel), for the whole module."""
    need_redis_server()
    group = start_replicated(replicas=1)
    yield group
    group.cleanup()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A 3-master Redis Cluster, for the whole module."""
    need_redis_server()
    group = start_cluster(3)
    yield group
    group.cleanup()
