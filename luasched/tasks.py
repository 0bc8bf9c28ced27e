"""Task registry, task options, and the JSON encoding of arguments, results and errors (no pickle)."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
import re
import secrets
import traceback as tb
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import SerializationError, UnknownTask

DEFAULT_QUEUE = "default"
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_TASK_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
MAX_CAPACITY = 4096

TaskFunction = Callable[..., Any]


def seconds(value: object, what: str, *, allow_none: bool = False, minimum: float = 0.0) -> float | None:
    """A duration given as seconds or a timedelta, checked; ``what`` names the argument."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{what} must be a finite number of seconds >= {minimum}, not {value!r}")
    return float(value)


def to_ms(value: float | None) -> int:
    return 0 if value is None else round(value * 1000)


def check_queue(queue: object, what: str = "queue") -> str:
    if not isinstance(queue, str):
        raise TypeError(f"{what} must be a str, not {type(queue).__name__}")
    if not _NAME.match(queue):
        raise ValueError(f"{what} {queue!r} must be 1-64 characters of letters, digits, '_.:-'")
    return queue


def check_task_id(task_id: object, what: str = "task id") -> str:
    if not isinstance(task_id, str):
        raise TypeError(f"{what} must be a str, not {type(task_id).__name__}")
    if not _TASK_ID.match(task_id):
        raise ValueError(f"{what} {task_id!r} must be 1-128 characters of letters, digits, '_.:-'")
    return task_id


def check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {value}")
    return value


def new_task_id() -> str:
    """12 URL-safe characters, 72 random bits; never starting with '-' (a command line would
    take such an id for an option)."""
    while True:
        task_id = secrets.token_urlsafe(9)
        if task_id[0] != "-":
            return task_id


def new_request_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class TaskOptions:
    """How a task is run: its queue, attempts, timeout and retry backoff (all checked here)."""

    queue: str = DEFAULT_QUEUE
    max_attempts: int = 3
    timeout_s: float | None = None
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        check_queue(self.queue)
        check_int(self.max_attempts, "max_attempts", 1, 1000)
        seconds(self.timeout_s, "timeout", allow_none=True, minimum=0.001)
        seconds(self.backoff_s, "retry_backoff")

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with the changes that are not None."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


DEFAULT_OPTIONS = TaskOptions()


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: the function and its default options."""

    name: str
    fn: TaskFunction
    options: TaskOptions


class Registry:
    """Tasks registered in this process. Names read from Redis are looked up here, never imported."""

    def __init__(self) -> None:
        self._by_name: dict[str, TaskSpec] = {}
        self._by_fn: dict[int, TaskSpec] = {}

    def add(self, fn: TaskFunction, name: str, options: TaskOptions) -> TaskSpec:
        if not callable(fn):
            raise TypeError(f"@task needs a function, not {type(fn).__name__}")
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(f"task name must be a non-empty str of at most 200 characters, not {name!r}")
        old = self._by_name.get(name)
        if old is not None and old.fn is not fn:
            raise ValueError(f"a different function is already registered as task {name!r}")
        spec = TaskSpec(name, fn, options)
        self._by_name[name] = spec
        self._by_fn[id(fn)] = spec
        return spec

    def get(self, name: str) -> TaskSpec | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def resolve(self, task: str | TaskFunction) -> tuple[str, TaskOptions]:
        """(name, options) for a task given by name (registered here or not) or by function."""
        if isinstance(task, str):
            if not task or len(task) > 200:
                raise ValueError(f"task name must be a non-empty str of at most 200 characters, not {task!r}")
            spec = self._by_name.get(task)
            return task, spec.options if spec else DEFAULT_OPTIONS
        if callable(task):
            spec = self._by_fn.get(id(task))
            if spec is None or spec.fn is not task:
                name = getattr(task, "__qualname__", repr(task))
                raise UnknownTask(
                    f"{name} is not a registered task: decorate it with @sched.task, or submit it by name"
                )
            return spec.name, spec.options
        raise TypeError(f"task must be a registered function or a task name, not {type(task).__name__}")


@dataclass(frozen=True)
class TaskInfo:
    """The task a processor is running in this context: see :func:`current_task`."""

    id: str
    name: str
    attempt: int
    processor: str


_current: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar("luasched_task", default=None)


def current_task() -> TaskInfo | None:
    """Inside a running task: its id, name, attempt number and processor; None elsewhere."""
    return _current.get()


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def encode_args(name: str, args: Sequence[object], kwargs: Mapping[str, object]) -> str:
    """Arguments as JSON: ``[...]`` when positional only, else ``{"args": [...], "kwargs": {...}}``."""
    try:
        if kwargs:
            return _dumps({"args": list(args), "kwargs": dict(kwargs)})
        if not args:
            return "[]"
        return _dumps(list(args))
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"arguments of task {name!r} are not JSON: {exc}") from exc


def decode_args(text: str) -> tuple[list[Any], dict[str, Any]]:
    value = json.loads(text)
    if isinstance(value, list):
        return value, {}
    return list(value["args"]), dict(value["kwargs"])


def encode_result(name: str, value: object) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"result of task {name!r} is not JSON: {exc}") from exc


def error_json(error_type: str, message: str, traceback: str = "") -> str:
    """An error as the task record keeps it: JSON with type, message and traceback."""
    return _dumps({"type": error_type, "message": message, "traceback": traceback})


def timeout_error(task_id: str, timeout_ms: int, what: str) -> str:
    """The error of an attempt that ran past its timeout; ``what`` says what was done about it."""
    return error_json("TaskTimeout", f"task {task_id} ran past its timeout of {timeout_ms} ms {what}")


def encode_error(exc: BaseException) -> str:
    text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    return error_json(type(exc).__name__, str(exc), text[-8000:])


def decode_error(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"type": "Error", "message": text, "traceback": ""}
    return {
        "type": str(value.get("type", "Error")),
        "message": str(value.get("message", "")),
        "traceback": str(value.get("traceback", "")),
    }
