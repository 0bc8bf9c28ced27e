"""The task registry, the JSON encoding of arguments, results and errors (no pickle), and
running one started task in the calling thread."""

from __future__ import annotations

import contextvars
import inspect
import json
import math
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


class Arity:
    """The arguments a registered function accepts, worked out once at registration so that
    ``submit`` refuses a call the function could never take (instead of a task that fails every
    attempt with TypeError). Positional-only calls are checked by counting; a call with keyword
    arguments binds to the signature."""

    __slots__ = ("low", "high", "counted", "signature")

    def __init__(self, fn: TaskFunction) -> None:
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature to read (some builtins): the run will tell
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature is not None else []
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.low = sum(p.default is p.empty for p in positional)
        self.high = math.inf if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
        # counting is enough unless a keyword-only parameter must be given
        self.counted = not any(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in params)

    def check(self, name: str, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """Raise TypeError, naming the task and its signature, if the function cannot take these."""
        if not kwargs and self.counted and self.low <= len(args) <= self.high:
            return
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            plain = self.signature.replace(  # the names and defaults a user wrote, no annotations
                parameters=[p.replace(annotation=p.empty) for p in self.signature.parameters.values()],
                return_annotation=inspect.Signature.empty)
            raise TypeError(f"task {name!r} takes {name}{plain}: {exc}") from None


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: the function, its default options and the arguments it accepts."""

    name: str
    fn: TaskFunction
    options: TaskOptions
    arity: Arity


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
        spec = TaskSpec(name, fn, options, Arity(fn))
        self._by_name[name] = spec
        self._by_fn[id(fn)] = spec
        return spec

    def get(self, name: str) -> TaskSpec | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def resolve(self, task: str | TaskFunction) -> tuple[str, TaskOptions, Arity | None]:
        """(name, options, arity) for a task given by name (registered here or not: then no arity
        to check against) or by function."""
        if isinstance(task, str):
            spec = self._by_name.get(check_task_name(task))
            return (task, spec.options, spec.arity) if spec else (task, DEFAULT_TASK_OPTIONS, None)
        if callable(task):
            spec = self._by_fn.get(id(task))
            if spec is None or spec.fn is not task:
                name = getattr(task, "__qualname__", repr(task))
                raise UnknownTask(
                    f"{name} is not a registered task: decorate it with @sched.task, or submit it by name"
                )
            return spec.name, spec.options, spec.arity
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


#: Made once: ``json.dumps`` with options of its own makes an encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def _dumps(value: object) -> str:
    return _ENCODER.encode(value)


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
    except RecursionError:
        raise SerializationError(f"arguments of task {name!r} are not JSON: nested too deep") from None


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
    except RecursionError:
        raise SerializationError(f"result of task {name!r} is not JSON: nested too deep") from None


def error_json(error_type: str, message: str, traceback: str = "") -> str:
    """An error as the task record keeps it: JSON with type, message and traceback."""
    return _dumps({"type": error_type, "message": message, "traceback": traceback})


def timeout_error(task_id: str, timeout_ms: int, what: str) -> str:
    """The error of an attempt that ran past its timeout; ``what`` says what was done about it."""
    return error_json("TaskTimeout", f"task {task_id} ran past its timeout of {timeout_ms} ms {what}")


def encode_error(exc: BaseException) -> str:
    text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    message = str(exc)
    if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit, ...
        message = (f"the task raised {type(exc).__name__}({message}): a task cannot stop its processor; "
                   f"the attempt failed")
    return error_json(type(exc).__name__, message, text[-8000:])



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


def execute(registry: Registry, task: Started, pid: str, ctrl_c_stops: bool = False) -> tuple[str, str]:
    """Run one started task in this thread: ("done", result JSON) or ("error", error JSON).
    A name with no registered function fails the task with a clear UnknownTask error. Whatever
    the task raises fails it, SystemExit and KeyboardInterrupt included, except, with
    ``ctrl_c_stops`` (the main thread, where it is the user's Ctrl-C), a KeyboardInterrupt."""
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
    except BaseException as exc:  # the task's failure is data, reported to Redis, whatever it raised
        if ctrl_c_stops and isinstance(exc, KeyboardInterrupt):
            raise
        return "error", encode_error(exc)
    finally:
        _current.reset(token)
