"""What the ``luasched`` commands share: exit codes, one-line errors, and which Scheduler a
command works on (APP, or --redis URL --namespace NS, with --read-redis replicas)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, TypeVar
from urllib.parse import unquote, urlsplit

import click

import luasched

from ..app import AppError, load_any
from ..connection import REDIS_URL_ENV, redact
from ..core.base import SchedulerBase

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 1 when a command ran and the answer is "no" (a task failed, audit found a
#: problem, something is stale), 2 for bad input (APP, arguments, options, URL, unreachable Redis).
EXIT_FAILED, EXIT_USAGE = 1, 2
#: Exit code after a second signal: stopped at once, work left to the leases.
EXIT_HALTED = 1

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)


def debugging() -> bool:
    """Whether ``luasched --debug`` was given: errors then come with their tracebacks."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def show_traceback(exc: BaseException) -> None:
    """With --debug, the traceback of ``exc`` (and what caused it) on stderr; else nothing."""
    if debugging():
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def complain(exc: BaseException) -> None:
    """Bad input, on one line of stderr whatever the exception's text: it must not look like a crash."""
    show_traceback(exc)
    ctx = click.get_current_context(silent=True)
    who = f"luasched {ctx.info_name}" if ctx is not None and ctx.info_name else "luasched"
    click.echo(f"{who}: error: {' '.join(str(exc).split())}", err=True)


def refuse_embedded(sched: SchedulerBase, app: str | None, redis_url: str | None) -> None:
    """A command runs in a process of its own: a Scheduler on the in-process server cannot meet
    any other process there, so waiting would hang and every count would read zero. Refuse it,
    saying how to point the APP at a Redis, unless --redis memory:// asked for it by name."""
    if redis_url is not None or not getattr(sched, "embedded", False):
        return  # --redis names the server (memory:// asks for the in-process one by name)
    what = f"APP {app}" if app else "this Scheduler"
    raise ValueError(f"{what} runs on the embedded in-process server, which no other process can reach "
                     f"(this command runs in a process of its own): give --redis URL, set "
                     f"{REDIS_URL_ENV}=redis://..., or make the Scheduler with redis=\"redis://...\"")


def as_sync(sched: SchedulerBase, spec: str = "APP") -> luasched.Scheduler:
    """The APP as a sync luasched.Scheduler. An asyncio APP made from a URL (or the embedded
    server) gets a sync twin on the same server, namespace and tasks; one made with a ready
    client cannot, and raises AppError asking for --redis."""
    if isinstance(sched, luasched.Scheduler):
        return sched
    target = getattr(sched, "target", None)
    if target is None and not getattr(sched, "embedded", False):
        raise AppError(f"{spec} is an asyncio Scheduler made with a ready client: give --redis URL")
    twin = luasched.Scheduler(target, sched.namespace, sched.clock, keep=sched.options.keep_s,
                              dispatch_on_submit=sched.dispatch_on_submit)
    twin.registry = sched.registry
    return twin


# --- errors: one line on stderr, exit code 2 ---------------------------------------------------


class CommandError(click.ClickException):
    """Bad input to an admin command: one line on stderr, exit code 2 (no usage block)."""

    exit_code = EXIT_USAGE

    def __init__(self, command: str, message: str) -> None:
        super().__init__(message)
        self.command = command

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"luasched {self.command}: error: {self.format_message()}", err=True)


class AdminCommand(click.Command):
    """A command whose usage errors (unknown option, missing argument, bad value) are one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise CommandError(self.name or "", one_line(exc.format_message(), None)) from None


def one_line(message: str, *redis_urls: str | None) -> str:
    """The message on one line, with no password in it (from --redis, --read-redis or any URL
    it quotes)."""
    text = " ".join(message.split())
    for redis_url in redis_urls:
        if not redis_url:
            continue
        try:
            password = urlsplit(redis_url).password
        except ValueError:
            password = None
        for secret in {password, unquote(password)} if password else ():
            text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


@contextmanager
def boundary(command: str, redis_url: str | None, *read_urls: str) -> Iterator[None]:
    """Turn luasched's exceptions for bad input or an unreachable Redis into exit code 2."""
    try:
        yield
    except (luasched.LuaschedError, ValueError, TypeError) as exc:
        show_traceback(exc)
        raise CommandError(command, one_line(str(exc), redis_url, *read_urls)) from None


# --- which Scheduler: APP, or --redis URL --namespace NS ---------------------------------------


def load_sync(app: str) -> luasched.Scheduler:
    """The APP as a sync Scheduler (an asyncio APP: its sync twin, see ``as_sync``); an APP that
    fails to import is bad input (AppError), not a crash."""
    return as_sync(load_any(app), app)


@contextmanager
def scheduler_for(app: str | None, redis_url: str | None, namespace: str | None,
               read_urls: Sequence[str] = ()) -> Iterator[luasched.Scheduler]:
    """The APP's Scheduler (on --redis if given), or a bare one on --redis and --namespace;
    reading from the --read-redis replicas if given. Schedulers made here are closed after; the
    APP's own stays open (it is the APP's)."""
    if app is not None and namespace is not None:
        raise ValueError("--namespace goes with --redis when no APP is given (an APP has its own namespace)")
    read_redis = list(read_urls) or None
    if app is None:
        if namespace is None or redis_url is None:
            raise ValueError("give APP (module:attribute), or --redis URL and --namespace NS")
        made = luasched.Scheduler(redis_url, namespace=namespace, read_redis=read_redis)
    else:
        sched = load_sync(app)
        refuse_embedded(sched, app, redis_url)
        if redis_url is None and read_redis is None:
            yield sched
            return
        made = sched.connect(redis_url if redis_url is not None else sched.client, read_redis=read_redis)
    try:
        yield made
    finally:
        made.close()


def target_options(fn: F) -> F:
    """APP, or --redis URL --namespace NS (with APP, --redis runs it on another server)."""
    fn = click.option("--namespace", metavar="NS", default=None,
                      help="The namespace, when no APP is given (then --redis is needed too).")(fn)
    fn = click.option("--redis", "redis_url", metavar="URL", default=None,
                      help="Use this Redis instead of the APP's.")(fn)
    return fn


def reads_option(fn: F) -> F:
    """--read-redis URL (repeatable): the read-only queries go to these replicas, in turn."""
    return click.option("--read-redis", "read_urls", metavar="URL", multiple=True,
                        help="Read from this replica instead of the primary (repeat for several, "
                             "used in turn); the reads may be as stale as the replica.")(fn)


def read_from(read_urls: Sequence[str]) -> str:
    return ", ".join(redact(u) for u in read_urls)


def where(sched: luasched.Scheduler, redis_url: str | None) -> str:
    server = redact(redis_url) if redis_url else "the APP's Redis"
    return f"namespace {sched.namespace} on {server}"


def age_s(now_ms: int, then_ms: int) -> float:
    return max(0, now_ms - then_ms) / 1000
