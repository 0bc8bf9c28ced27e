"""Drive the asyncio front end with the sync front end's shape, so that the same tests (the
conservation state machine, the race test) run against both."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from luasched import aio

_WRAPPED = (aio.Scheduler, aio.TaskHandle, aio.Group, aio.Processor)


class Blocking:
    """Every coroutine method of the wrapped asyncio object runs to completion on ``loop``;
    the handles, groups and processors it returns are wrapped the same way."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, _WRAPPED):
            return Blocking(value, self._loop)
        if isinstance(value, list) and len(value) > 0 and isinstance(value[0], _WRAPPED):
            return [Blocking(v, self._loop) for v in value]
        return value

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):
            if name == "state":  # a coroutine method here, a property on the sync side
                return self._loop.run_until_complete(attr())

            def run(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(self._loop.run_until_complete(attr(*args, **kwargs)))

            return run
        if callable(attr) and not isinstance(attr, type):
            def call(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(attr(*args, **kwargs))

            return call
        return self._wrap(attr)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)
