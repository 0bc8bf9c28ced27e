"""What both Schedulers (sync and asyncio) share before any I/O: their settings, the task
registry, and turning a submit's arguments into checked, encoded tasks (nothing is written)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, overload

from .checks import Unique, requires_text
from .deps import deps_field
from .keys import Keys
from .ops import Namespace, NewTask
from .options import DEFAULT_PRIORITY, SchedulerOptions, TaskOptions, check_task_id, seconds
from .schedules import ScheduleSpec
from .tasks import Arity, Registry, TaskFunction, encode_args, new_task_id
from .unique import NO_ASK, UniqueAsk, ask, key_for

#: The options ``submit`` takes among its keyword arguments (the others go to the task).
SUBMIT_OPTIONS = frozenset({"_queue", "_delay", "_id", "_max_attempts", "_timeout", "_retry_backoff",
                            "_priority", "_key", "_limits", "_expires", "_requires", "_after", "_on_failure",
                            "_unique_key", "_unique_until", "_debounce"})


class Args:
    """Arguments of one task in ``submit_many``/``map`` when keyword arguments are needed."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Args(*{self.args!r}, **{self.kwargs!r})"


class SchedulerBase:
    """Settings, registry and the pure preparation of tasks, for both front ends."""

    def __init__(self, options: SchedulerOptions) -> None:
        self.options = options
        self.namespace = options.namespace
        self.keys = Keys(options.namespace)
        self.ns = Namespace(self.keys, int(options.keep_s))
        self.registry = Registry()
        # read on every call: plain attributes, not properties of options
        self.clock: Callable[[], float] | None = options.clock
        self.dispatch_on_submit = options.dispatch_on_submit
        #: the schedules declared with ``@periodic``: every scheduler loop upserts them as it starts
        self.declared: dict[str, ScheduleSpec] = {}

    def now_ms(self) -> int | None:
        """The injected clock's time in ms, or None: the scripts then read the server's TIME."""
        return None if self.clock is None else int(self.clock() * 1000)

    @overload
    def task(self, fn: TaskFunction, /) -> TaskFunction: ...

    @overload
    def task(self, fn: None = None, /, *, name: str | None = None, max_attempts: int = 3,
             timeout: float | timedelta | None = None, queue: str = "default",
             retry_backoff: float | timedelta = 1.0, priority: int = DEFAULT_PRIORITY,
             key: str | None = None, limits: Sequence[str] = (), expires: float | timedelta | None = None,
             requires: Mapping[str, object] | None = None, unique: Unique = False,
             unique_until: str = "finished") -> Callable[[TaskFunction], TaskFunction]: ...

    def task(self, fn: TaskFunction | None = None, /, *, name: str | None = None,
             max_attempts: int = 3, timeout: float | timedelta | None = None,
             queue: str = "default", retry_backoff: float | timedelta = 1.0,
             priority: int = DEFAULT_PRIORITY, key: str | None = None, limits: Sequence[str] = (),
             expires: float | timedelta | None = None, requires: Mapping[str, object] | None = None,
             unique: Unique = False, unique_until: str = "finished") -> Any:
        """Register a function as a task: ``@sched.task`` or ``@sched.task(name=..., ...)``.
        ``priority``, ``key``, ``limits`` and ``requires`` (label -> condition: which processors
        may run it, ``core.kinds.check_requires``) are its defaults for placement (see
        ``core.options.TaskOptions``); ``expires``: a task not started within that many seconds
        of its submit is never started (it fails with TaskExpired). Each submit may override them.
        ``unique``: True, or a callable of the task's arguments returning a str: a submit creates
        nothing while a task of the same key (``<name>:<sha1 of the arguments>``, or
        ``<name>:<what the callable returned>``) is live, and answers that task's handle; the key
        is freed as the task finishes, or as it starts with ``unique_until="started"`` (core/unique)."""
        options = TaskOptions(queue, max_attempts, seconds(timeout, "timeout", allow_none=True),
                              seconds(retry_backoff, "retry_backoff") or 0.0, priority, key,
                              limits,  # type: ignore[arg-type]  # checked: a tuple is kept
                              seconds(expires, "expires", allow_none=True, minimum=0.001), requires_text(requires),
                              unique, unique_until)

        def register(f: TaskFunction) -> TaskFunction:
            self.registry.add(f, name if name is not None else getattr(f, "__name__", ""), options)
            return f

        return register(fn) if fn is not None else register

    def resolve(self, task: str | TaskFunction, *, queue: str | None = None,
                delay: float | timedelta | None = None, max_attempts: int | None = None,
                timeout: float | timedelta | None = None,
                retry_backoff: float | timedelta | None = None, priority: int | None = None,
                key: str | None = None, limits: Sequence[str] | None = None,
                expires: float | timedelta | None = None, requires: Mapping[str, object] | None = None,
                unique_until: str | None = None) -> tuple[str, TaskOptions, float, Arity | None]:
        """A registered task's name, its options with the given ones applied (None: the task's
        own; ``requires={}``: no requirements), the delay in seconds, all checked (once for a
        whole batch), and what arguments it takes (None: a name this process has no function for)."""
        name, options, arity = self.registry.resolve(task)
        changes = {"queue": queue, "max_attempts": max_attempts, "priority": priority, "key": key,
                   "limits": limits, "expires_s": seconds(expires, "expires", allow_none=True, minimum=0.001),
                   "requires": None if requires is None else requires_text(requires), "unique_until": unique_until}
        if timeout is not None or retry_backoff is not None or any(v is not None for v in changes.values()):
            options = options.replace(
                timeout_s=seconds(timeout, "timeout", allow_none=True),
                backoff_s=seconds(retry_backoff, "retry_backoff", allow_none=True), **changes)
        return name, options, seconds(delay, "delay", allow_none=True) or 0.0, arity

    def new_task(self, task: str | TaskFunction, args: Sequence[Any], kwargs: dict[str, Any],
                 *, task_id: str | None = None, fed: bool = False, unique_key: str | None = None,
                 debounce: float | timedelta | None = None, **options: Any) -> NewTask:
        """Check and encode one task (nothing is written); options as ``resolve`` takes them.
        ``fed``: its first argument comes later (the results it waits for), before ``args``."""
        name, opts, delay_s, arity = self.resolve(task, **options)
        asked = ask(unique_key, debounce, opts.unique, delay_s)
        return _encoded(name, opts, delay_s, arity, args, kwargs, task_id, asked, fed)

    def submission(self, task: str | TaskFunction, args: Sequence[Any], kwargs: dict[str, Any],
                   fed_by: Any = None) -> NewTask:
        """``submit(task, *args, **kwargs)``: kwargs starting with ``_`` are options, not arguments.
        ``fed_by``: the TaskHandle or Group whose results come in first (``then``)."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("_")}
        if not options and fed_by is None:  # the plain submit, the latency path: nothing to resolve
            name, plain, arity = self.registry.resolve(task)
            return _encoded(name, plain, 0.0, arity, args, kwargs, None)
        allowed = SUBMIT_OPTIONS - {"_after"} if fed_by is not None else SUBMIT_OPTIONS
        unknown = set(options) - allowed
        if unknown:
            raise TypeError(f"{'then' if fed_by is not None else 'submit'}: unknown option(s) "
                            f"{', '.join(sorted(unknown))}; options are {', '.join(sorted(allowed))}")
        after = [fed_by] if fed_by is not None else options.get("_after")
        deps = ""
        if after is not None:
            if options.get("_delay") or options.get("_debounce"):
                raise ValueError("a task that waits for others cannot have a _delay or a _debounce: it is "
                                 "queued when they end")
            deps = deps_field(after, self.namespace, options.get("_on_failure", "fail"), feed=fed_by is not None)
        elif "_on_failure" in options:
            raise TypeError("_on_failure goes with _after (or then): it says what to do when they fail")
        new = self.new_task(task, args, kwargs, fed=fed_by is not None, queue=options.get("_queue"),
                             delay=options.get("_delay"), task_id=options.get("_id"),
                             max_attempts=options.get("_max_attempts"),
                             timeout=options.get("_timeout"),
                             retry_backoff=options.get("_retry_backoff"),
                             priority=options.get("_priority"), key=options.get("_key"),
                             limits=options.get("_limits"), expires=options.get("_expires"),
                             requires=options.get("_requires"), unique_key=options.get("_unique_key"),
                             unique_until=options.get("_unique_until"), debounce=options.get("_debounce"))
        return replace(new, deps=deps) if deps else new

    def batch(self, task: str | TaskFunction, items: Iterable[Any], ids: Sequence[str] | None,
              unique_key: str | None = None, debounce: float | timedelta | None = None,
              **options: Any) -> list[NewTask]:
        """Tasks for ``submit_many``/``map``: each item a tuple/list of arguments or an Args.
        Items of one unique key collapse into the first (a debounced one updates it: the last
        debounced item's arguments win), as one submit after another would."""
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError("submit_many: items must be an iterable of argument tuples")
        items = list(items)
        if ids is not None:
            ids = list(ids)
            if len(ids) != len(items):
                raise ValueError(f"submit_many: {len(ids)} ids for {len(items)} items")
            if len(set(ids)) != len(ids):
                raise ValueError("submit_many: ids repeat")
        name, opts, delay_s, arity = self.resolve(task, **options)
        asked = ask(unique_key, debounce, opts.unique, delay_s)
        out = []
        args: Sequence[Any]
        for i, item in enumerate(items):
            if isinstance(item, Args):
                args, kwargs = item.args, item.kwargs
            elif isinstance(item, (tuple, list)):
                args, kwargs = item, {}
            else:
                raise TypeError(f"submit_many: item {i} must be a tuple of arguments or an Args, "
                                f"not {type(item).__name__}")
            out.append(_encoded(name, opts, delay_s, arity, args, kwargs, ids[i] if ids else None, asked))
        return out


def _encoded(name: str, options: TaskOptions, delay_s: float, arity: Arity | None, args: Sequence[Any],
             kwargs: dict[str, Any], task_id: str | None, asked: UniqueAsk = NO_ASK, fed: bool = False) -> NewTask:
    """One task of a resolved name and options: its arguments checked against the function's
    signature (when this process has it; ``fed``: with a first argument to come), its id checked
    (or a new one), its arguments JSON, its unique key made (core/unique; a debounce is its first
    delay)."""
    if arity is not None:
        arity.check(name, [None, *args] if fed else args, kwargs)
    new_id = check_task_id(task_id, "_id (task id)") if task_id is not None else new_task_id()
    args_json = encode_args(name, args, kwargs)
    if asked is NO_ASK and not options.unique:
        return NewTask(new_id, name, args_json, options, delay_s)
    debounce_s = asked.debounce_s or 0.0
    return NewTask(new_id, name, args_json, options, debounce_s or delay_s,
                   key_for(name, options.unique, asked, args, kwargs), debounce_s)

