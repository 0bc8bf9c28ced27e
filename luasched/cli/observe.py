"""The ``luasched metrics`` command: a namespace's Prometheus metrics, in the text format."""

from __future__ import annotations

import click

from .. import metrics
from .common import AdminCommand, boundary, read_from, reads_option, scheduler_for, target_options


@click.command("metrics", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
def metrics_command(app: str | None, redis_url: str | None, namespace: str | None,
                    read_urls: tuple[str, ...]) -> None:
    """Print the namespace's Prometheus metrics (the text exposition format), from one read of Redis.

    APP (module:attribute naming a Scheduler), or --redis URL --namespace NS. With --read-redis
    the figures are read from the replica (stderr says which)."""
    with boundary("metrics", redis_url, *read_urls), scheduler_for(app, redis_url, namespace, read_urls) as sched:
        text = metrics.exposition(sched)
    if read_urls:
        click.echo(f"luasched metrics: read from replica {read_from(read_urls)}", err=True)
    click.echo(text.decode(), nl=False)
