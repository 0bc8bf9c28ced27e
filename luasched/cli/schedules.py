"""The commands about schedules: ``schedules`` (list them, with where each is) and ``schedule
pause|resume|trigger|remove NAME``.

Exit codes as the admin commands': 0 done, 2 bad input (APP, arguments, an unknown schedule, an
unreachable Redis).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.schedules import ScheduleInfo
from .common import AdminCommand, CommandError, boundary, one_line, scheduler_for, target_options


def when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def last_words(x: ScheduleInfo) -> str:
    return "-" if x.last_task_id is None else f"{x.last_task_id} ({x.last_state})"


@click.command("schedules", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per schedule, a line each.")
def schedules_command(app: str | None, redis_url: str | None, namespace: str | None, as_json: bool) -> None:
    """List the schedules, the soonest next tick first (the paused last): the cadence and its time
    zone, the next fire time, whether paused, the last tick's task and its state, and how many
    ticks ran, were skipped (an unfinished task before them) and were missed (no loop ran)."""
    with boundary("schedules", redis_url), scheduler_for(app, redis_url, namespace) as sched:
        found = sched.schedules()
    if as_json:
        for x in found:
            click.echo(json.dumps(x.as_dict()))
        return
    if not found:
        click.echo("no schedules")
        return
    table = Table(title="schedules")
    counters = ("runs", "skipped", "missed")
    for column in ("name", "spec", "tz", "next", "paused", "last task", *counters):
        table.add_column(column, overflow="fold", justify="right" if column in counters else "left")
    for x in found:
        table.add_row(escape(x.name), escape(x.spec), escape(x.tz), when(x.next_ms), "yes" if x.paused else "no",
                      escape(last_words(x)), str(x.runs), str(x.skipped), str(x.missed))
    Console().print(table)


class AdminGroup(AdminCommand, click.Group):
    """A group whose usage errors (no or an unknown subcommand) are one line, as a command's."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                                  list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise CommandError(self.name or "", one_line(exc.format_message(), None)) from None


@click.group("schedule", cls=AdminGroup)
def schedule_group() -> None:
    """Pause, resume, trigger or remove one schedule."""


def _action(action: str, doing: str) -> click.Command:
    @click.command(action, cls=AdminCommand)
    @click.argument("words", nargs=-1, metavar="[APP] NAME")
    @target_options
    def command(words: tuple[str, ...], redis_url: str | None, namespace: str | None) -> None:
        with boundary(f"schedule {action}", redis_url):
            app, rest = (None, list(words)) if namespace is not None else (words[0] if words else None, list(words[1:]))
            if len(rest) != 1:
                raise ValueError(f"give one schedule NAME{' after APP' if namespace is None else ''}")
            name = rest[0]
            with scheduler_for(app, redis_url, namespace) as sched:
                if action == "trigger":
                    click.echo(sched.trigger(name).id)
                    return
                if action == "remove":
                    sched.remove_schedule(name)
                    click.echo(f"removed schedule {name}")
                    return
                changed = getattr(sched, f"{action}_schedule")(name)
        state = "paused" if action == "pause" else "running"
        click.echo(f"{action}d schedule {name}" if changed else f"schedule {name} was {state} already")

    command.help = (f"{doing}\n\nThe first word is APP unless --namespace is given (then it is NAME). "
                    "An unknown NAME is an error (exit 2).")
    return command


for _command in (_action("pause", "Stop firing schedule NAME until resumed (its ticks meanwhile neither fire "
                                  "nor count)."),
                 _action("resume", "Fire schedule NAME again from its next tick after now."),
                 _action("trigger", "Make one task of schedule NAME now, outside its cadence; prints its id."),
                 _action("remove", "Remove schedule NAME (the tasks it made stay).")):
    schedule_group.add_command(_command)
