"""The ``luasched`` command. Each command lives in a module of this package and is registered
here, explicitly: ``demo``; the long-running ``processor`` and ``scheduler`` (``serve``); the
commands about tasks ``submit``, ``show``, ``explain``, ``cancel``, ``failed`` and ``retry-failed``
(``tasks``); those about a namespace ``status``, ``audit``, ``purge``, ``purge-finished`` and
``health`` (``admin``) and ``metrics`` (``observe``); those about placement ``pause``, ``resume``
and ``limits`` (``policies``); those about schedules ``schedules`` and
``schedule pause|resume|trigger|remove`` (``schedules``); the web ``dashboard`` (``web``). Every
command parses its arguments and calls luasched's public API."""

from __future__ import annotations

import click

import luasched

from . import admin, demo, observe, policies, schedules, serve, tasks, web


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(luasched.__version__, prog_name="luasched")
@click.option("--debug", is_flag=True, help="Show the traceback of an error, not only its one line.")
def main(debug: bool) -> None:
    """luasched: a distributed task scheduler on Redis whose every state change is one atomic
    Lua script."""


for command in (demo.demo, serve.processor_command, serve.scheduler_command, tasks.submit_command,
                tasks.show_command, tasks.explain_command, tasks.cancel_command, tasks.failed_command,
                tasks.retry_failed_command,
                admin.status_command, admin.audit_command, policies.pause_command, policies.resume_command,
                policies.limits_command, admin.purge_command, admin.purge_finished_command, admin.health_command,
                schedules.schedules_command,
                schedules.schedule_group, web.dashboard_command, observe.metrics_command):
    main.add_command(command)

__all__ = ["main"]
