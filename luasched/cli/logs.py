"""How the long-running commands log: the options they share (--log-level, --log-format, --quiet,
--summary-every) and the one place that sets up the standard ``logging`` module for them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
#: A text line: when (local time, milliseconds), level, logger, message.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message, and the
    fields a line carries in ``extra`` (a task line: task_id, task_name, attempt, outcome,
    duration_s, error_type...); a traceback in ``exc_info``."""
    # Imported here, when asked for: it costs ~40 ms, and a command installs its signal handlers
    # only once its imports are done (a SIGTERM before that kills it with no graceful stop).
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=True)


def setup_logging(level: str, log_format: str = "text") -> None:
    """Every logger to stderr at ``level``, as text lines or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def log_options(fn: F) -> F:
    """--log-level and --log-format."""
    fn = click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
                      help="Text lines for people, or one JSON object per line for log shippers "
                           "(timestamp, level, logger, message, and each line's fields).")(fn)
    fn = click.option("--log-level", default="info", show_default=True, type=click.Choice(LEVELS),
                      help="debug adds the traceback of each failed attempt.")(fn)
    return fn


def summary_options(fn: F) -> F:
    """--quiet and --summary-every: the scheduler loop's periodic summary line."""
    fn = click.option("--summary-every", "summary_every_s", type=click.FloatRange(min=0.001), default=60.0,
                      show_default=True, metavar="S", help="The scheduler loop logs a summary line every S seconds "
                                        "(tasks placed, delayed tasks promoted, tasks reaped).")(fn)
    fn = click.option("--quiet", is_flag=True, help="No periodic summary line from the scheduler loop.")(fn)
    return fn


def summary_interval(quiet: bool, every_s: float) -> float | None:
    """The loop's summary interval from --quiet and --summary-every (None: no summary)."""
    return None if quiet else every_s
