"""Finding the Scheduler that an APP string (``module:attribute``) names."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scheduler import Scheduler


class AppError(ValueError):
    """APP does not name an importable Scheduler."""


def load_app(spec: str) -> Scheduler:
    """Import ``module:attribute`` (the current directory is importable) and return the Scheduler
    it names. Raises AppError with a one-line reason otherwise."""
    from .scheduler import Scheduler  # noqa: F811 (at run time, after luasched is imported)

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
    if not isinstance(obj, Scheduler):
        raise AppError(f"{spec} is a {type(obj).__name__}, not a luasched.Scheduler")
    return obj
