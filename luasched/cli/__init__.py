"""The ``luasched`` command. Each command lives in a module of this package and is registered
here, explicitly: ``demo``; the long-running ``processor`` and ``scheduler`` (``serve``); the
admin commands ``submit``, ``status``, ``audit``, ``failed``, ``retry-failed``, ``purge`` and
``health`` (``admin``). Every command parses its arguments and calls luasched's public API."""

from __future__ import annotations

import click

import luasched

from . import admin, demo, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(luasched.__version__, prog_name="luasched")
def main() -> None:
    """luasched: a distributed task scheduler on Redis whose every state change is one atomic
    Lua script."""


for command in (demo.demo, serve.processor_command, serve.scheduler_command, admin.submit_command,
                admin.status_command, admin.audit_command, admin.failed_command,
                admin.retry_failed_command, admin.purge_command, admin.health_command):
    main.add_command(command)

__all__ = ["main"]
