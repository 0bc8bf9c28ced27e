"""Finding the Scheduler (sync or asyncio) that an APP string (``module:attribute``) names."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scheduler import Base, Scheduler


class AppError(ValueError):
    """APP does not name an importable Scheduler."""


def load_any(spec: str) -> Base:
    """Import ``module:attribute`` (the current directory is importable) and return the
    luasched.Scheduler or luasched.aio.Scheduler it names. Raises AppError with a one-line
    reason otherwise."""
    from .scheduler import Base  # at run time, once luasched is imported

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppError(f"APP must look like module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(f"cannot import {module_name!r} (for APP {spec!r}): {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(obj, Base):
        raise AppError(f"{spec} is a {type(obj).__name__}, not a luasched.Scheduler")
    return obj


def load_app(spec: str) -> Scheduler:
    """The APP as a sync luasched.Scheduler. An asyncio APP made from a URL (or the embedded
    server) gets a sync twin on the same server, namespace and tasks; one made with a ready
    client cannot, and raises AppError asking for --redis."""
    return as_sync(load_any(spec), spec)


def as_sync(sched: Base, spec: str = "APP") -> Scheduler:
    from .scheduler import Scheduler

    if isinstance(sched, Scheduler):
        return sched
    target = getattr(sched, "target", None)
    if target is None and not getattr(sched, "embedded", False):
        raise AppError(f"{spec} is an asyncio Scheduler made with a ready client: give --redis URL")
    twin = Scheduler(target, sched.namespace, sched.clock, keep=sched.ns.keep_s,
                     dispatch_on_submit=sched.dispatch_on_submit)
    twin.registry = sched.registry
    return twin
