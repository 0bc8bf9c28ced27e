"""The long-running commands: ``luasched processor APP`` and ``luasched scheduler APP``.

Both run until SIGTERM or SIGINT. The first signal stops gracefully; a second stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

import click

import luasched

from .. import aio
from ..app import load_any
from ..connection import redact
from ..core.base import SchedulerBase
from ..core.kinds import parse_label
from ..core.options import MAX_DURABILITY, ProcessorOptions
from ..core.words import counted
from .common import EXIT_HALTED, EXIT_USAGE, complain, refuse_embedded
from .logs import log_options, setup_logging, summary_interval, summary_options

log = logging.getLogger("luasched")


def _on_signals(graceful: Callable[[], None], now: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT calls ``graceful``, a second one calls ``now``."""
    seen = {"count": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        seen["count"] += 1
        name = signal.Signals(signum).name
        if seen["count"] == 1:
            log.info("%s: stopping gracefully (send it again to stop at once)", name)
            graceful()
        else:
            log.warning("%s again: stopping at once", name)
            now()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _once_started(graceful: Callable[[], None], begun: Callable[[], bool] = lambda: False,
                  ) -> tuple[Callable[[], None], Callable[[], None]]:
    """A first-signal handler that stops gracefully once the process has started, and exits at
    once (0) before that, when nothing runs yet (it may be waiting for Redis); and the call that
    marks the start. ``begun``: whether work may already run though the start has not returned
    (a processor's slots take tasks before its start() returns: a signal then is graceful)."""
    started = threading.Event()

    def handler() -> None:
        if started.is_set() or begun():
            graceful()
        else:
            log.info("stopped before starting")
            _exit(0)

    return handler, started.set


def _connect_timeout_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--connect-timeout", "connect_timeout", type=click.FloatRange(min=0), default=None, metavar="S",
        help="At start, wait at most S seconds for Redis while it refuses connections, is loading "
             "or refuses writes, then exit 2. Default: wait as long as it takes.")(fn)


def _scheduler(app: str, redis_url: str | None, durability: int | None = None) -> SchedulerBase:
    """The APP's Scheduler (sync or asyncio), on --redis if given, with --durability if given."""
    sched: Any = load_any(app)
    refuse_embedded(sched, app, redis_url)
    if redis_url is None and durability is None:
        return cast(SchedulerBase, sched)
    return cast(SchedulerBase, sched.connect(redis_url if redis_url is not None else sched.client,
                                             durability=durability))


def _durability_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--durability", type=click.IntRange(0, MAX_DURABILITY), default=None, metavar="N",
        help="Every script's writes wait for N replicas (WAIT, same round trip); "
             "default: the APP's setting.")(fn)


def _where(sched: SchedulerBase) -> str:
    """The server a Scheduler talks to, as a log line says it (no password)."""
    target = getattr(sched, "target", None)
    return redact(target) if target else "the APP's Redis client"


@click.command("processor")
@click.argument("app")
@click.option("--capacity", type=int, default=ProcessorOptions.capacity, show_default=True,
              help="Task slots (threads or processes).")
@click.option("--queues", default="default", show_default=True, help="Comma-separated queues to serve.")
@click.option("--lease", type=float, default=10.0, show_default=True, help="Lease in seconds (heartbeat every third).")
@click.option("--name", default=None, help="A name shown in status (default: the host name and process id).")
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="On the first signal, how long running tasks may take to finish.")
@click.option("--pool", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
              help="Run tasks in threads, or in child processes killed at a task's timeout.")
@click.option("--take-next/--no-take-next", default=False, show_default=True,
              help="Take the next task from the queue in the same call that acks the last one.")
@click.option("--dispatch-on-ack/--no-dispatch-on-ack", default=None,
              help="The call that acks finished tasks also fills the freed slots from the queues, "
                   "least-loaded first, as dispatch would. On by default, unless --take-next; "
                   "--no-dispatch-on-ack is the plain mode (only dispatch places).")
@click.option("--batch/--no-batch", default=False, show_default=True,
              help="One slot starts and acks up to --capacity tasks per round trip (short tasks).")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Also do the scheduler's duties (place what no submit or ack placed, promote delayed "
                   "tasks, reap lapsed processors), so that processors alone are a whole deployment.")
@click.option("--default-timeout", "default_timeout", type=float, default=None, metavar="S",
              help="The timeout of tasks that set none of their own: an attempt past S seconds is "
                   "ended and retried (its process killed with --pool process). Default: none.")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="A label of this processor, for tasks' requires (repeatable): --label gpu=a100 "
                   "--label vram_gb=80. A value that reads as a number is a number.")
@_durability_option
@click.option("--log-tasks/--no-log-tasks", default=ProcessorOptions.log_tasks, show_default=True,
              help="Log one INFO line per task done (id, name, attempt, duration). Failed attempts, "
                   "retries and dead letters are logged either way.")
@_connect_timeout_option
@log_options
@summary_options
def processor_command(app: str, capacity: int, queues: str, lease: float, name: str | None,
                      redis_url: str | None, grace: float, pool: str, take_next: bool,
                      dispatch_on_ack: bool | None, batch: bool, scheduler: bool,
                      default_timeout: float | None, labels: tuple[str, ...], durability: int | None,
                      log_tasks: bool, connect_timeout: float | None, log_level: str, log_format: str,
                      quiet: bool, summary_every_s: float) -> None:
    """Run a processor for APP (module:attribute naming a Scheduler) until SIGTERM/SIGINT.

    Processors alone are a complete deployment: each also does the scheduler's duties (any
    number may), unless --no-scheduler (then run `luasched scheduler` somewhere).

    First signal: take no new task, let running ones finish within --grace seconds, give the
    unstarted inbox back, deregister, exit 0. Second signal: stop at once (exit 1); what was
    running is recovered through the lease. Started before Redis, it waits for Redis (see
    --connect-timeout); a signal then exits at once."""
    setup_logging(log_level, log_format)
    try:
        if grace < 0:
            raise ValueError(f"--grace must be >= 0, not {grace}")
        options = ProcessorOptions.make(
            capacity=capacity, queues=tuple(q for q in queues.split(",") if q), lease=lease, name=name,
            take_next=take_next, pool=pool, app=app, log_tasks=log_tasks, batch=batch,
            dispatch_on_ack=dispatch_on_ack, scheduler=scheduler,
            summary_every=summary_interval(quiet, summary_every_s), connect_timeout=connect_timeout,
            default_timeout=default_timeout, labels=dict(parse_label(text) for text in labels))
        any_sched = _scheduler(app, redis_url, durability)
        if isinstance(any_sched, aio.Scheduler):
            sys.exit(asyncio.run(_processor_async(any_sched, options, grace, _where(any_sched))))
        sched = cast(luasched.Scheduler, any_sched)
        p = luasched.Processor(sched, options)
        stop = threading.Event()
        graceful, started = _once_started(stop.set, lambda: p.running)
        _on_signals(graceful, lambda: _halt(p))  # before start: a signal while starting stops it cleanly
        p.start()
        started()
    except (luasched.LuaschedError, ValueError, TypeError) as exc:
        complain(exc)
        sys.exit(EXIT_USAGE)
    log.info("processor %s started: capacity %d, queues %s, lease %.1f s, pool %s%s, %s, on %s",
             p.id, capacity, ",".join(p.queues), lease, pool, _default_timeout_words(options),
             "with the scheduler's duties" if scheduler else "no scheduler duties", _where(any_sched))
    while not stop.wait(1.0):
        pass
    finished = p.stop(timeout=grace)
    log.info("processor %s stopped after %s%s", p.id, counted(p.processed, "task"),
             "" if finished else f"; tasks still running after {grace} s were given back")
    sched.close()
    sys.exit(0)


def _default_timeout_words(options: ProcessorOptions) -> str:
    """The start line's words for --default-timeout and --label (none when not given)."""
    timeout = options.default_timeout_s
    words = "" if timeout is None else f", default timeout {timeout:g} s"
    if options.labels:
        words += ", labels " + " ".join(f"{k}={v}" for k, v in options.labels.items())
    return words


async def _processor_async(sched: aio.Scheduler, options: ProcessorOptions, grace: float, where: str) -> int:
    """The processor command for an asyncio APP: slots are tasks on this event loop."""
    p = aio.Processor(sched, options)
    stop = asyncio.Event()
    graceful, started = _once_started(stop.set, lambda: p.running)
    _on_loop_signals(graceful, lambda: _halt(p))  # before start: a signal while starting stops it cleanly
    await p.start()
    started()
    log.info("processor %s started: capacity %d, queues %s, lease %.1f s, asyncio%s, on %s",
             p.id, p.capacity, ",".join(p.queues), p.lease, _default_timeout_words(options), where)
    await stop.wait()
    finished = await p.stop(timeout=grace)
    log.info("processor %s stopped after %s%s", p.id, counted(p.processed, "task"),
             "" if finished else f"; tasks still running after {grace} s were cancelled")
    await sched.close()
    if not finished:  # a task that ignores its cancellation would hold asyncio.run's clean-up forever
        _exit(0)
    return 0


def _on_loop_signals(graceful: Callable[[], None], now: Callable[[], None]) -> None:
    """``_on_signals`` for the running event loop (handlers run as loop callbacks)."""
    loop = asyncio.get_running_loop()
    seen = {"count": 0}

    def handler(signum: int) -> None:
        seen["count"] += 1
        if seen["count"] == 1:
            log.info("%s: stopping gracefully (send it again to stop at once)", signal.Signals(signum).name)
            graceful()
        else:
            log.warning("%s again: stopping at once", signal.Signals(signum).name)
            now()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handler, signum)


def _exit(code: int) -> None:
    """Exit now, from a signal handler, with the log written."""
    logging.shutdown()
    os._exit(code)


def _exit_halted() -> None:
    _exit(EXIT_HALTED)


def _halt(p: Any) -> None:
    p.halt()
    log.warning("processor %s halted; running tasks come back when its lease lapses", p.id)
    _exit_halted()


@click.command("scheduler")
@click.argument("app")
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@click.option("--limit", type=int, default=100, show_default=True, help="Tasks per dispatch call.")
@_durability_option
@_connect_timeout_option
@log_options
@summary_options
def scheduler_command(app: str, redis_url: str | None, limit: int, durability: int | None,
                      connect_timeout: float | None, log_level: str, log_format: str, quiet: bool,
                      summary_every_s: float) -> None:
    """Run the dispatch-and-reap loop for APP until SIGTERM/SIGINT. Any number may run at once.

    It blocks on the namespace's wake-up list (pushed by submit, register and freed slots) and
    wakes by itself only when a delayed task falls due or a lease or task timeout may lapse."""
    setup_logging(log_level, log_format)
    loop_options = {"limit": limit, "summary_every": summary_interval(quiet, summary_every_s)}
    try:
        any_sched = _scheduler(app, redis_url, durability)
        if isinstance(any_sched, aio.Scheduler):
            sys.exit(asyncio.run(_scheduler_async(any_sched, loop_options, _where(any_sched), connect_timeout)))
        sched = cast(luasched.Scheduler, any_sched)
        stop = threading.Event()
        graceful, started = _once_started(stop.set)
        _on_signals(graceful, _exit_halted)
        sched.wait_for_redis(connect_timeout)  # started before Redis (a compose file): wait for it
        started()
        sched.check_eviction("scheduler")
    except (luasched.LuaschedError, ValueError, TypeError) as exc:
        complain(exc)
        sys.exit(EXIT_USAGE)
    log.info("scheduler started for namespace %s on %s", sched.namespace, _where(sched))
    loop = threading.Thread(target=sched.run, args=(stop,), kwargs=loop_options, daemon=True)
    loop.start()
    while loop.is_alive() and not stop.wait(1.0):
        pass
    try:
        sched.wake()
    except luasched.LuaschedError:
        pass  # the loop notices the stop flag within a second anyway
    loop.join()
    log.info("scheduler stopped")
    sched.close()
    sys.exit(0)


async def _scheduler_async(sched: aio.Scheduler, loop_options: dict[str, Any], where: str,
                           connect_timeout: float | None) -> int:
    """The scheduler command for an asyncio APP."""
    stop = asyncio.Event()
    graceful, started = _once_started(stop.set)
    _on_loop_signals(graceful, _exit_halted)
    await sched.wait_for_redis(connect_timeout)
    started()
    await sched.check_eviction("scheduler")
    log.info("scheduler started for namespace %s on %s (asyncio)", sched.namespace, where)
    loop = asyncio.create_task(sched.run(stop, **loop_options))
    await stop.wait()
    await sched.wake()
    await loop
    log.info("scheduler stopped")
    await sched.close()
    return 0
