"""``luasched dashboard``: serve the web dashboard (luasched.web, the ``web`` extra) with uvicorn."""

from __future__ import annotations

from types import FrameType

import click

from .common import AdminCommand, boundary, reads_option, scheduler_for, target_options

try:  # the web extra is optional: without it the command says what to install
    import uvicorn
    from starlette.applications import Starlette

    from luasched.web import create_app, stop_streams

    class Server(uvicorn.Server):
        """uvicorn's server, which also ends the dashboard's /events streams when told to stop:
        they never end by themselves, and uvicorn waits for open responses."""

        def __init__(self, app: Starlette, host: str, port: int) -> None:
            super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning"))
            self.dashboard = app

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop_streams(self.dashboard)
            super().handle_exit(sig, frame)
except ImportError:  # pragma: no cover - the test extras install it
    create_app = None  # type: ignore[assignment]


@click.command("dashboard", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="The port to listen on.")
@click.option("--admin", is_flag=True, help="Offer the admin actions (retry, cancel, pause, resume, trigger)"
              " to whoever signs in with --token.")
@click.option("--token", envvar="LUASCHED_DASHBOARD_TOKEN", default=None,
              help="The admin token (or $LUASCHED_DASHBOARD_TOKEN); needed with --admin.")
def dashboard_command(app: str | None, redis_url: str | None, namespace: str | None, read_urls: tuple[str, ...],
                      host: str, port: int, admin: bool, token: str | None) -> None:
    """Serve the web dashboard of APP (or --redis URL --namespace NS) until interrupted:
    read-only unless --admin --token T, reading from --read-redis replicas if given."""
    with boundary("dashboard", redis_url, *read_urls):
        if create_app is None:
            raise ValueError("the dashboard needs the web extra: pip install 'luasched[web]'")
        if admin and not token:
            raise ValueError("--admin needs --token (or $LUASCHED_DASHBOARD_TOKEN)")
        with scheduler_for(app, redis_url, namespace, read_urls) as sched:
            click.echo(f"luasched dashboard of {sched.namespace} on http://{host}:{port}/"
                       f" ({'admin' if admin else 'read-only'})")
            Server(create_app(sched, admin=admin, token=token), host, port).run()
