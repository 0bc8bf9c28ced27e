"""The commands about placement: ``pause`` and ``resume`` (the whole namespace, a queue, a task
key in every queue or in one), and ``limits`` (the limiters and their state now).

Exit codes as the admin commands': 0 done, 2 bad input (APP, arguments, an unreachable Redis).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.replies import LimitInfo
from ..core.words import counted
from .common import AdminCommand, boundary, read_from, reads_option, scheduler_for, target_options


def scope_words(queue: str | None, key: str | None) -> str:
    """What a pause covers, in words: "the whole namespace", "queue a", "key k in every queue"."""
    if key is None:
        return "the whole namespace" if queue is None else f"queue {queue}"
    return f"key {key} in {'every queue' if queue is None else 'queue ' + queue}"


def limit_json(x: LimitInfo) -> dict[str, Any]:
    """A limiter as plain data (``limits --json``, ``status --json``)."""
    return {"name": x.name, "pattern": x.pattern, "rate": x.rate, "per_s": x.per, "burst": x.burst,
            "max_running": x.max_running, "running": x.running, "waiting": x.waiting}


def rate_words(x: dict[str, Any]) -> str:
    """A limiter's rate: "5 per 1 s, burst 2", or "-" without one."""
    if x["rate"] is None:
        return "-"
    return f"{x['rate']:g} per {x['per_s']:g} s, burst {x['burst']}"


def running_words(x: dict[str, Any]) -> str:
    """Its tasks assigned or running now, against its max_running: "1/4", or "3" without one."""
    return f"{x['running']}/{x['max_running']}" if x["max_running"] is not None else str(x["running"])


def limiter_line(x: dict[str, Any]) -> str:
    """One limiter for the status lines: running/max, the lanes it holds back, its rate."""
    of = f" (of {x['pattern']})" if x["pattern"] else ""
    rate = "" if x["rate"] is None else f", rate {rate_words(x)}"
    return (f"{x['name']}{of}: running {running_words(x)}, holding back "
            f"{counted(x['waiting'], 'lane')}{rate}")


# --- limits --------------------------------------------------------------------------------------


@click.command("limits", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per limiter, a line each.")
def limits_command(app: str | None, redis_url: str | None, namespace: str | None, read_urls: tuple[str, ...],
                   as_json: bool) -> None:
    """List the limiters, by name: each configured limiter and pattern, and each limiter made
    from a pattern that holds running tasks or holds back work now. For each: its rate, its
    max_running, its tasks assigned or running now, and the lanes (queue, priority, key) it
    holds back now."""
    with boundary("limits", redis_url, *read_urls), scheduler_for(app, redis_url, namespace, read_urls) as sched:
        found = [limit_json(x) for x in sched.limits()]
    if read_urls and not as_json:
        click.echo(f"luasched limits: read from replica {read_from(read_urls)}", err=True)
    if as_json:
        for x in found:
            click.echo(json.dumps(x))
        return
    if not found:
        click.echo("no limiters")
        return
    table = Table(title="limiters")
    table.add_column("name", overflow="fold")
    table.add_column("of", overflow="fold")
    table.add_column("running", justify="right", no_wrap=True)
    table.add_column("holding back", justify="right", no_wrap=True)
    table.add_column("rate", overflow="fold")
    for x in found:
        table.add_row(escape(x["name"]), escape(x["pattern"] or "-"), running_words(x),
                      counted(x["waiting"], "lane"), rate_words(x))
    Console().print(table)


# --- pause and resume ----------------------------------------------------------------------------


def _pause_command(action: str) -> click.Command:
    doing = {"pause": "Stop placing", "resume": "Resume placing"}[action]

    @click.command(action, cls=AdminCommand)
    @click.argument("words", nargs=-1, metavar="[APP] [QUEUE]")
    @target_options
    @click.option("--key", default=None, metavar="K",
                  help=f"{action.capitalize()} only the tasks of task key K (in QUEUE, or in every queue).")
    def command(words: tuple[str, ...], redis_url: str | None, namespace: str | None, key: str | None) -> None:
        app, rest = (None, list(words)) if namespace is not None else (words[0] if words else None, list(words[1:]))
        queue = rest[0] if rest else None
        scope = scope_words(queue, key)
        with boundary(action, redis_url), scheduler_for(app, redis_url, namespace) as sched:
            if len(rest) > 1:
                raise ValueError(f"one QUEUE at most, not {len(rest)}: {' '.join(rest)}")
            changed = getattr(sched, action)(queue, key=key)
        if action == "pause":
            click.echo(f"paused {scope}" if changed else f"{scope} was paused already")
        else:
            click.echo(f"resumed {scope}" if changed else f"{scope} was not paused")

    command.help = (f"{doing} the tasks of QUEUE, or of every queue (no QUEUE); with --key, only "
                    "those of that task key.\n\n"
                    "The first word is APP unless --namespace is given (then it is QUEUE). While "
                    "paused, tasks keep arriving and wait queued; running tasks finish. Each scope "
                    "is paused and resumed by itself: resuming the whole namespace leaves a paused "
                    "queue or key paused.")
    return command


pause_command = _pause_command("pause")
resume_command = _pause_command("resume")
