"""The task registry, the JSON encoding of arguments, results and errors (no pickle), and
running one started task in the calling thread."""

from __future__ import annotations

import contextvars
import json
import secrets
import traceback as tb
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SerializationError, UnknownTask
from .options import DEFAULT_TASK_OPTIONS, TaskOptions, check_task_name

TaskFunction = Callable[..., Any]


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
class Started:
    """A task a processor slot must now run: one attempt of it."""

    id: str
    name: str
    args_json: str
    attempt: int
    timeout_ms: int


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
        check_task_name(name)
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
            spec = self._by_name.get(check_task_name(task))
            return task, spec.options if spec else DEFAULT_TASK_OPTIONS
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
    """The task a processor is running in this context: see ``current_task``."""

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


def execute(registry: Registry, task: Started, pid: str) -> tuple[str, str]:
    """Run one started task in this thread: ("done", result JSON) or ("error", error JSON).
    A name with no registered function fails the task with a clear UnknownTask error."""
    spec = registry.get(task.name)
    token = _current.set(TaskInfo(task.id, task.name, task.attempt, pid))
    try:
        if spec is None:
            known = ", ".join(registry.names()) or "none"
            raise UnknownTask(f"no task named {task.name!r} is registered in this processor "
                              f"(registered: {known})")
        args, kwargs = decode_args(task.args_json)
        value = spec.fn(*args, **kwargs)
        return "done", encode_result(task.name, value)
    except Exception as exc:  # the task's failure is data, reported to Redis
        return "error", encode_error(exc)
    finally:
        _current.reset(token)
