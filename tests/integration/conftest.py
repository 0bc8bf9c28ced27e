"""Fixtures the integration tests of the asyncio front end share."""

from __future__ import annotations

import pytest

from luasched import aio


@pytest.fixture
def make_asched(make_async_client, namespace):
    """Call inside the test's event loop; close with ``await s.client.aclose()``."""

    def make(**kwargs) -> aio.Scheduler:
        kwargs.setdefault("dispatch_on_submit", False)  # as make_sched: placement by explicit calls
        return aio.Scheduler(make_async_client(), namespace=namespace, **kwargs)

    return make
