"""The commands about tasks: submit one, show one, explain one, cancel one, list the dead letters, put them back.

Exit codes: 0 done, 1 it ran and the answer is "no" (the task failed, could not be cancelled, an
id was not a dead letter, the wait timed out), 2 bad input (APP, arguments, an unknown id, an
unreachable Redis). Every listing has ``--json``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import luasched

from ..core.kinds import describe_requires, parse_requirement
from ..core.replies import FailedTask
from ..core.words import counted
from .common import (
    EXIT_FAILED,
    AdminCommand,
    boundary,
    one_line,
    reads_option,
    scheduler_for,
    target_options,
)


def parse_json_args(texts: Sequence[str]) -> list[Any]:
    """Each text parsed as JSON; a bad one raises ValueError naming it (1 is the first)."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON (use null or a number)")

    values = []
    for i, text in enumerate(texts, 1):
        try:
            values.append(json.loads(text, parse_constant=no_constant))
        except ValueError as exc:
            raise ValueError(f"argument {i} ({text!r}) is not JSON: {exc}; a string needs JSON "
                             f"quotes, e.g. '\"text\"'") from None
    return values


def parse_requires(texts: Sequence[str]) -> dict[str, object] | None:
    """The ``--requires`` given, as ``_requires`` takes them (None: none given); a bad one, or a
    label named twice (a task has one condition per label), raises ValueError."""
    found: dict[str, object] = {}
    for text in texts:
        key, cond = parse_requirement(text)
        if key in found:
            raise ValueError(f"--requires names label {key!r} twice: a task has one condition per label")
        found[key] = cond
    return found or None


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-"


def _utc_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _json_line(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data))


# --- submit ---------------------------------------------------------------------------------------


@click.command("submit", cls=AdminCommand, context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("task")
@click.argument("args", nargs=-1, metavar="[JSON_ARGS]...")
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON (the id goes to stderr).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="With --wait: give up after S seconds (exit 1). Default: wait as long as it takes.")
@click.option("--queue", metavar="Q", default=None, help="Put the task on queue Q, not its default one.")
@click.option("--delay", type=float, default=None, metavar="S", help="Make it due in S seconds.")
@click.option("--expires", type=float, default=None, metavar="S",
              help="Never start it unless it starts within S seconds (it then fails with TaskExpired).")
@click.option("--id", "task_id", metavar="ID", default=None,
              help="The task's id (submitting an id again creates nothing).")
@click.option("--priority", type=int, default=None, metavar="P",
              help="Its priority, 0 (placed first) to 9, not its default one (5 unless the task says).")
@click.option("--key", metavar="K", default=None, help="The task key (tenant, entity) it belongs to.")
@click.option("--limit", "limits", metavar="NAME", multiple=True,
              help="A limiter it counts against (repeat for several; each must exist).")
@click.option("--requires", "requires", metavar="COND", multiple=True,
              help="A condition on the labels of the processor that runs it (repeatable): gpu (present), "
                   "gpu=a100, gpu!=t4, 'vram_gb>=40' (also ==, >, <=, <). A value that reads as a number is one.")
@click.option("--unique-key", metavar="K", default=None,
              help="While a live task holds unique key K, create nothing and print that task's id.")
@click.option("--unique-until", type=click.Choice(["finished", "started"]), default=None,
              help="When the new task frees its unique key (default: finished).")
@click.option("--debounce", type=float, default=None, metavar="S",
              help="With --unique-key: start it S seconds after the latest such submit, with its arguments.")
@click.option("--after", "after", metavar="ID", multiple=True,
              help="Wait until task ID has ended (repeatable); --on-failure says what a failed one means.")
@click.option("--on-failure", type=click.Choice(["fail", "run", "skip"]), default=None,
              help="With --after: fail (default: DependencyFailed), run anyway, or skip (cancelled).")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"id": ...}, with --wait also its state and result or error.')
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@click.pass_context
def submit_command(ctx: click.Context, app: str, task: str, args: tuple[str, ...], wait: bool,
                   timeout: float | None, queue: str | None, delay: float | None, expires: float | None,
                   task_id: str | None,
                   priority: int | None, key: str | None, limits: tuple[str, ...], requires: tuple[str, ...],
                   unique_key: str | None, unique_until: str | None, debounce: float | None,
                   after: tuple[str, ...], on_failure: str | None, as_json: bool, redis_url: str | None) -> None:
    """Submit TASK of APP (module:attribute naming a Scheduler) with JSON arguments; print its id.

    Each argument is one JSON value: 3, '"text"', '[1, 2]', '{"a": 1}' (use -- before an
    argument that looks like an option). With --wait, print the result as JSON on stdout and the
    id on stderr; a failed task prints its error and exits 1, and so does --timeout running out.
    With --json, stdout is one JSON object either way."""
    with boundary("submit", redis_url):
        if timeout is not None and not wait:
            raise ValueError("--timeout goes with --wait")
        values = parse_json_args(args)
        required = parse_requires(requires)
        with scheduler_for(app, redis_url, None) as sched:
            known = sched.registry.names()
            if task not in known:
                raise ValueError(f"APP {app} has no task named {task!r} (registered: "
                                 f"{', '.join(known) or 'none'})")
            waits: dict[str, object] = {"_after": list(after)} if after else {}
            if on_failure is not None:
                waits["_on_failure"] = on_failure
            handle = sched.submit(task, *values, _queue=queue, _delay=delay, _id=task_id, _priority=priority,
                                  _key=key, _limits=limits or None, _expires=expires, _requires=required,
                                  _unique_key=unique_key, _unique_until=unique_until, _debounce=debounce, **waits)
            if not handle.created and not as_json:
                click.echo(f"luasched submit: unique key {unique_key} is held by task {handle.id}: nothing created",
                           err=True)
            if not wait:
                if as_json:
                    _json_line({"id": handle.id, "created": handle.created})
                else:
                    click.echo(handle.id)
                return
            if not as_json:
                click.echo(f"luasched submit: task {handle.id} submitted; waiting for its result", err=True)
            code = _wait_and_report(handle, timeout, as_json, redis_url)
    ctx.exit(code)


def _wait_and_report(handle: luasched.TaskHandle, timeout: float | None, as_json: bool,
                     redis_url: str | None) -> int:
    """Wait for the task; print its result (or why there is none). The exit code."""
    report: dict[str, Any] = {"id": handle.id}
    try:
        value = handle.result(timeout=timeout)
    except luasched.TaskFailed as exc:
        report |= {"state": "failed", "error": {"type": exc.error_type, "message": exc.message}}
        said = f"luasched submit: task {handle.id} failed: {exc.error_type}: {exc.message}"
    except (luasched.ResultTimeout, luasched.TaskCancelled) as exc:
        state = "cancelled" if isinstance(exc, luasched.TaskCancelled) else handle.state
        report |= {"state": state, "error": {"type": type(exc).__name__, "message": str(exc)}}
        said = f"luasched submit: {one_line(str(exc), redis_url)}"
    else:
        if as_json:
            _json_line(report | {"state": "done", "result": value})
        else:
            click.echo(json.dumps(value))
        return 0
    if as_json:
        _json_line(report)
    else:
        click.echo(said, err=True)
    return EXIT_FAILED


# --- show and cancel one task ---------------------------------------------------------------------


@click.command("show", cls=AdminCommand)
@click.argument("app")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@reads_option
def show_command(app: str, task_id: str, as_json: bool, redis_url: str | None, read_urls: tuple[str, ...]) -> None:
    """Show everything Redis keeps about task ID of APP: state, options, attempts, the processors
    that held and ran it, its times (server time, UTC), its result or last error, and its timeline
    (created, ready, each attempt placed, started and ended, finished)."""
    with boundary("show", redis_url, *read_urls), scheduler_for(app, redis_url, None, read_urls) as sched:
        found = sched.task_record(task_id)
    if as_json:
        _json_line(found.as_json())
        return
    rows = [("id", found.id), ("name", found.name), ("state", found.state), ("queue", found.queue),
            ("arguments", json.dumps(found.args) + (f" {json.dumps(found.kwargs)}" if found.kwargs else "")),
            ("attempts", f"{found.attempts} of {found.max_attempts}"),
            ("timeout", "none" if found.timeout_s is None else f"{found.timeout_s:g} s"),
            ("retry backoff", f"{found.retry_backoff_s:g} s"), ("priority", str(found.priority)),
            ("key", found.key or "-"), ("limits", ", ".join(found.limits) or "-"),
            ("requires", describe_requires(found.requires) or "-"),
            ("expires", _utc(found.expires_ms) if found.expires_ms else "-"),
            ("unique key", f"{found.unique_key} (until {found.unique_until})" if found.unique_key else "-"),
            ("processor", found.processor or "-"), ("last ran on", found.last_processor or "-"),
            ("group", found.group or "-"), ("created", _utc(found.created_ms)),
            ("started", _utc(found.started_ms)), ("finished", _utc(found.finished_ms))]
    if found.state == "done":
        rows.append(("result", json.dumps(found.result)))
    if found.error is not None:
        rows.append(("error", f"{found.error['type']}: {found.error['message']}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
    click.echo("\ntimeline (UTC)")
    for event in found.timeline():
        click.echo(f"  {_utc_ms(event.at_ms)}  {event.event:<9}  {event.processor or '-':<12}  {event.detail}".rstrip())
    if found.error is not None and found.error["traceback"]:
        click.echo(f"\n{found.error['traceback'].rstrip()}")


@click.command("explain", cls=AdminCommand)
@click.argument("app")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as one JSON object.")
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@reads_option
def explain_command(app: str, task_id: str, as_json: bool, redis_url: str | None,
                    read_urls: tuple[str, ...]) -> None:
    """Say why task ID of APP is where it is: a sentence, then its state, the reason (delayed,
    waiting_slot, paused, rate_limited, max_running, no_processor, assigned, running, done,
    failed, cancelled, expired) and what the reason rests on (times: server time, UTC)."""
    with boundary("explain", redis_url, *read_urls), scheduler_for(app, redis_url, None, read_urls) as sched:
        found = sched.explain(task_id)
    if as_json:
        _json_line(found.as_json())
        return
    click.echo(found.text)
    rows = [("state", found.state), ("reason", found.reason)]
    for name, value in found.detail.items():
        if name.endswith("_ms"):  # a time: the server's, in UTC
            name, value = name[:-3], _utc(value) if isinstance(value, int) else value
        rows.append((name.replace("_", " "), "-" if value is None else str(value)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@click.command("cancel", cls=AdminCommand)
@click.argument("app")
@click.argument("task_id", metavar="ID")
@click.option("--redis", "redis_url", metavar="URL", default=None, help="Use this Redis instead of the APP's.")
@click.pass_context
def cancel_command(ctx: click.Context, app: str, task_id: str, redis_url: str | None) -> None:
    """Cancel task ID of APP if it has not started (queued, delayed, or assigned and waiting in
    a processor's inbox): exit 0. A task that started or finished is left alone: exit 1."""
    with boundary("cancel", redis_url), scheduler_for(app, redis_url, None) as sched:
        handle = sched.handle(task_id)
        if handle.cancel():
            click.echo(f"cancelled task {task_id}")
            return
        state = handle.state
    click.echo(f"luasched cancel: task {task_id} is {state}: only a task that has not started can be "
               f"cancelled", err=True)
    ctx.exit(EXIT_FAILED)


# --- dead letters ---------------------------------------------------------------------------------


@click.command("failed", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
@click.option("--limit", type=int, default=100, show_default=True, help="Show the oldest N dead letters.")
@click.option("--traceback", "tracebacks", is_flag=True, help="Show each task's traceback.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line, tracebacks included.")
def failed_command(app: str | None, redis_url: str | None, namespace: str | None,
                   read_urls: tuple[str, ...], limit: int, tracebacks: bool, as_json: bool) -> None:
    """List dead-lettered tasks, oldest first: id, name, queue, attempts, when, error."""
    with boundary("failed", redis_url, *read_urls), scheduler_for(app, redis_url, namespace, read_urls) as sched:
        dead = sched.failed(limit)
    if as_json:
        for t in dead:
            _json_line({"id": t.id, "name": t.name, "queue": t.queue, "attempts": t.attempts,
                        "failed_ms": t.failed_ms, "error": {"type": t.error_type, "message": t.message,
                                                            "traceback": t.traceback}})
        return
    if not dead:
        click.echo("no failed tasks")
        return
    console = Console()
    if console.width < WIDE:
        _failed_blocks(console, dead)
    else:
        _failed_table(console, dead)
    if tracebacks:
        for t in dead:
            console.print(f"\n--- {escape(t.id)} ({escape(t.name)})", soft_wrap=True)
            console.print(escape(t.traceback.rstrip() or "(no traceback)"), soft_wrap=True, highlight=False)


#: From this terminal width on, ``failed`` is a table; narrower (a pipe is 80), a block per task.
WIDE = 110


def _failed_table(console: Console, dead: Sequence[FailedTask]) -> None:
    table = Table(title=f"failed tasks (oldest {len(dead)})")
    # The error is what a person looks for: it keeps a third of the width and wraps; the other
    # columns give way first (an id is cut with an ellipsis, never the error).
    table.add_column("id", overflow="ellipsis", no_wrap=True, max_width=14)
    table.add_column("name", overflow="fold")
    table.add_column("queue", overflow="fold")
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("failed at", no_wrap=True)
    table.add_column("error", overflow="fold", min_width=max(console.width // 3, 20), ratio=1)
    for t in dead:
        table.add_row(escape(t.id), escape(t.name), escape(t.queue), str(t.attempts), _utc(t.failed_ms),
                      escape(f"{t.error_type}: {t.message}"))
    console.print(table)


def _failed_blocks(console: Console, dead: Sequence[FailedTask]) -> None:
    """Narrow: a line per task (id, name, queue, attempts, when), then its error, indented and
    wrapped to the width, whole."""
    console.print(f"failed tasks (oldest {len(dead)})", highlight=False)
    for t in dead:
        console.print(f"\n{escape(t.id)}  {escape(t.name)}  queue {escape(t.queue)}  "
                      f"{counted(t.attempts, 'attempt')}  failed {_utc(t.failed_ms)}", highlight=False)
        error = textwrap.fill(f"{t.error_type}: {t.message}", width=console.width, initial_indent="  ",
                              subsequent_indent="  ", break_on_hyphens=False)
        console.print(escape(error), soft_wrap=True, highlight=False)


@click.command("retry-failed", cls=AdminCommand)
@click.argument("words", nargs=-1, metavar="[APP] [IDS]...")
@target_options
@click.option("--limit", type=int, default=None,
              help="Without IDS: put back the oldest N (default 100). With IDS: at most N of them.")
@click.pass_context
def retry_failed_command(ctx: click.Context, words: tuple[str, ...], redis_url: str | None,
                         namespace: str | None, limit: int | None) -> None:
    """Put dead-lettered tasks back on their queues with fresh attempts: IDS, or the oldest ones.

    The first word is APP unless --namespace is given (then all words are IDS). Exit 1 when an
    id given is not a dead letter (nothing is done to it)."""
    app, ids = (None, list(words)) if namespace is not None else (words[0] if words else None, list(words[1:]))
    with boundary("retry-failed", redis_url), scheduler_for(app, redis_url, namespace) as sched:
        put_back = sched.retry_failed(ids, limit if limit is not None else (len(ids) or 100))
    click.echo(f"put back {counted(len(put_back), 'task')}")
    for task_id in put_back:
        click.echo(task_id)
    skipped = [t for t in dict.fromkeys(ids) if t not in set(put_back)]
    if skipped:
        click.echo(f"luasched retry-failed: not dead letters, left alone: {', '.join(skipped)}", err=True)
        ctx.exit(EXIT_FAILED)
