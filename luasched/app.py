"""Finding the Scheduler (sync or asyncio) that an APP string (``module:attribute``) names."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .core.base import SchedulerBase


class AppError(ValueError):
    """APP does not name an importable Scheduler."""


def load_any(spec: str) -> SchedulerBase:
    """Import ``module:attribute`` (the current directory is importable) and return the
    luasched.Scheduler or luasched.aio.Scheduler it names. Raises AppError with a one-line
    reason otherwise."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppError(f"APP must look like module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(f"cannot import {module_name!r} (for APP {spec!r}): {exc}") from exc
    except Exception as exc:  # the APP's own code failed while it was imported
        raise AppError(f"importing {module_name!r} (for APP {spec!r}) failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(obj, SchedulerBase):
        raise AppError(f"{spec} is a {type(obj).__name__}, not a luasched.Scheduler")
    return obj
