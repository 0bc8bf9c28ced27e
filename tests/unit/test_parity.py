"""The sync and asyncio front ends keep in step: the same public methods, with the same
parameters; the asyncio ones that talk to Redis are coroutines."""

from __future__ import annotations

import inspect

import pytest

import luasched
from luasched import aio

PAIRS = [
    (luasched.Scheduler, aio.Scheduler),
    (luasched.TaskHandle, aio.TaskHandle),
    (luasched.Group, aio.Group),
    (luasched.Processor, aio.Processor),
]

#: Differences on purpose: the sync side's context manager, and TaskHandle.state, a property
#: there and a coroutine method here (a property cannot await).
ONLY_SYNC = {"__enter__", "__exit__"}
ONLY_ASYNC = {"__aenter__", "__aexit__"}

def public(cls: type) -> dict[str, object]:
    return {name: getattr(cls, name) for name in dir(cls)
            if (not name.startswith("_") or name in ONLY_SYNC | ONLY_ASYNC)}


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=lambda c: c.__name__)
def test_same_public_names(sync_cls, async_cls):
    sync_names = set(public(sync_cls)) - ONLY_SYNC
    async_names = set(public(async_cls)) - ONLY_ASYNC
    assert sync_names == async_names


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=lambda c: c.__name__)
def test_same_parameters(sync_cls, async_cls):
    for name, member in public(sync_cls).items():
        if name in ONLY_SYNC or not callable(member) or isinstance(member, type):
            continue
        theirs = getattr(async_cls, name)
        ours = list(inspect.signature(member).parameters)
        if name == "__init__" and sync_cls is luasched.Processor:
            continue  # the asyncio processor takes the same options as **options
        assert list(inspect.signature(theirs).parameters) == ours, name


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=lambda c: c.__name__)
def test_coroutines_exactly_where_listed(sync_cls, async_cls):
    listed = set(aio.ASYNC_METHODS[async_cls.__name__]) | (ONLY_ASYNC & set(dir(async_cls)))
    for name, member in public(async_cls).items():
        is_async = inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        assert is_async == (name in listed), name
        if not name.startswith("_") and hasattr(sync_cls, name):
            sync_member = inspect.getattr_static(sync_cls, name)
            assert not inspect.iscoroutinefunction(sync_member), name
