"""The dashboard: a mountable Starlette app of server-rendered pages over one Scheduler, with
live counts over Server-Sent Events; read-only unless made with ``admin=True`` and a token."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import redis.exceptions
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from luasched.errors import ConnectionLost, GroupNotFound, LuaschedError, ScheduleNotFound, ServerRefused, TaskNotFound

from . import actions
from .reads import EVENTS_BLOCK_MS, LISTABLE, PAGE_SIZE, Source

HERE = Path(__file__).parent


def when(ms: int | None) -> str:
    """A time in ms since the epoch as UTC text ("-" for none)."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_ms(ms: int | None) -> str:
    """A time in ms since the epoch as UTC text to the millisecond ("-" for none): a timeline's."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def age(ms: int | None) -> str:
    """How long ago ``ms`` was, in a person's units ("-" for none)."""
    if not ms:
        return "-"
    s = max(0.0, time.time() - ms / 1000)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}m" if s < 7200 else f"{s / 3600:.1f}h"


class Dashboard:
    """The pages of one dashboard: each reads what it shows through ``Source`` and renders a template."""

    def __init__(self, sched: Any, admin: bool, token: str | None) -> None:
        self.source = Source(sched)
        self.gate = actions.Gate(admin, token)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
        self.env.filters["when"] = when
        self.env.filters["when_ms"] = when_ms
        self.env.filters["age"] = age
        self.closing = False  # set by stop_streams: the /events streams end at their next turn

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        signed_in = self.gate.signed_in(request)
        page = self.env.get_template(name).render(
            request=request, admin=signed_in, csrf=self.gate.csrf if signed_in else "",
            admin_enabled=self.gate.admin, namespace=self.source.sched.namespace,
            path=request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context)
        return HTMLResponse(page, status_code=status)

    async def overview(self, request: Request) -> Response:
        counts, queues = await self.source.run(self.source.sched.counts_and_queues)
        memory = await self.source.memory()
        oldest = await self.source.oldest(list(queues))
        return self.render(request, "overview.html", counts=counts, queues=queues, memory=memory, oldest=oldest)

    async def metrics(self, request: Request) -> Response:
        """The Prometheus text exposition, as ``luasched metrics`` prints it."""
        return Response(await self.source.metrics(), media_type=CONTENT_TYPE_LATEST)

    async def queues(self, request: Request) -> Response:
        counts, queues = await self.source.run(self.source.sched.counts_and_queues)
        paused = await self.source.run(self.source.sched.paused)
        limits = await self.source.run(self.source.sched.limits)
        paused_queues = {p.queue for p in paused if p.key is None}
        oldest = await self.source.oldest(list(queues))
        return self.render(request, "queues.html", queues=queues, paused=paused, limits=limits,
                           paused_queues=paused_queues, counts=counts, oldest=oldest)

    async def processors(self, request: Request) -> Response:
        found = await self.source.run(self.source.sched.processors, 200)
        inboxes = await self.source.inboxes([p.id for p in found])
        return self.render(request, "processors.html", processors=found, inboxes=inboxes)

    async def tasks(self, request: Request) -> Response:
        state = request.query_params.get("state", "queued")
        page_text = request.query_params.get("page", "1")
        if state not in LISTABLE:
            return self.bad(request, f"state {state!r} has no index to list; listable: {', '.join(LISTABLE)}")
        if not page_text.isdigit() or not 1 <= int(page_text) <= 1_000_000:
            return self.bad(request, f"page {page_text!r} must be a whole number from 1")
        page = int(page_text)
        counts, queues = await self.source.run(self.source.sched.counts_and_queues)
        queue = request.query_params.get("queue") or (sorted(queues)[0] if queues else "default")
        rows, more = await self.source.page(state, page, queue)
        return self.render(request, "tasks.html", state=state, page=page, rows=rows, more=more, queue=queue,
                           queues=sorted(queues), listable=LISTABLE, counts=counts, page_size=PAGE_SIZE,
                           depth=queues.get(queue, 0))

    async def lookup(self, request: Request) -> Response:
        task_id = request.query_params.get("id", "").strip()
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/tasks/{quote(task_id, safe='')}" if task_id else f"{root}/tasks",
                                status_code=303)

    async def task(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        try:
            record = await self.source.run(self.source.sched.task_record, task_id)
            why = await self.source.run(self.source.sched.explain, task_id)
        except (TaskNotFound, ValueError):
            return self.missing(request, f"no task {task_id!r} in namespace {self.source.sched.namespace}")
        return self.render(request, "task.html", record=record, why=why)

    async def failed(self, request: Request) -> Response:
        found = await self.source.run(self.source.sched.failed, 100)
        return self.render(request, "failed.html", failed=found)

    async def group(self, request: Request) -> Response:
        group_id = request.path_params["group_id"]
        found = await self.source.group(group_id)
        if found is None:
            return self.missing(request, f"no group {group_id!r} (never made, or its keys expired)")
        progress, ids = found
        return self.render(request, "group.html", group_id=group_id, progress=progress, ids=ids)

    async def schedules(self, request: Request) -> Response:
        found = await self.source.run(self.source.sched.schedules, 200)
        return self.render(request, "schedules.html", schedules=found)

    async def audit_log(self, request: Request) -> Response:
        return self.render(request, "audit_log.html", entries=await self.source.actions())

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html")
        form = await request.form()
        given = str(form.get("token", ""))
        if not self.gate.admin or not given or not hmac.compare_digest(given, self.gate.token):
            return self.render(request, "login.html", status=403, failed=True)
        response = RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)
        response.set_cookie(actions.COOKIE, given, httponly=True, samesite="strict")
        return response

    async def events(self, request: Request) -> Response:
        """SSE: the counts now, then again each time they change; between reads it blocks on
        the audit stream (an action wakes it at once) for at most EVENTS_BLOCK_MS."""
        once = request.query_params.get("once") == "1"

        async def stream() -> AsyncIterator[str]:
            last, seen = "", "$"
            while True:
                try:
                    now = await self.source.snapshot()
                    if now != last:
                        yield f"event: counts\ndata: {now}\n\n"
                    last = now
                    if once or self.closing or await request.is_disconnected():
                        return
                    seen = await self.source.wait_for_action(seen)
                except (LuaschedError, redis.exceptions.RedisError, OSError):
                    if last != "outage":
                        yield "event: outage\ndata: {}\n\n"
                    last, seen = "outage", "$"
                    if once or self.closing or await request.is_disconnected():
                        return
                    await anyio.sleep(EVENTS_BLOCK_MS / 1000)  # Redis is away: try again in a while

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def bad(self, request: Request, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status=400, title="Bad request", message=message)

    def missing(self, request: Request, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status=404, title="Not found", message=message)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.missing(request, str(exc) if isinstance(exc, LuaschedError) else f"no page {request.url.path}")

    async def outage(self, request: Request, exc: Exception) -> Response:
        """Redis unreachable or refusing: a banner, never a stack trace."""
        return self.render(request, "error.html", status=503, title="Redis is unavailable", outage=True,
                           message=f"{type(exc).__name__}: {exc}")


def create_app(sched: Any, *, admin: bool = False, token: str | None = None) -> Starlette:
    """The dashboard of ``sched`` (a luasched Scheduler, sync or asyncio) as an ASGI app, mountable
    under any path. Read-only by default; with ``admin=True`` and ``token``, a person who signs
    in with the token (/login) or a client sending ``Authorization: Bearer <token>`` may retry,
    cancel, pause, resume and trigger, each logged on /audit-log."""
    board = Dashboard(sched, admin, token)
    pages = [("/", board.overview), ("/queues", board.queues), ("/processors", board.processors),
             ("/tasks", board.tasks), ("/lookup", board.lookup), ("/tasks/{task_id}", board.task),
             ("/failed", board.failed), ("/groups/{group_id}", board.group), ("/schedules", board.schedules),
             ("/audit-log", board.audit_log), ("/events", board.events), ("/metrics", board.metrics)]
    routes: list[Route | Mount] = [Route(path, endpoint) for path, endpoint in pages]
    routes.append(Route("/login", board.login, methods=["GET", "POST"]))
    routes.extend(actions.routes(board.source, board.gate))
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    handlers: dict[Any, Any] = {404: board.not_found, TaskNotFound: board.not_found,
                                GroupNotFound: board.not_found, ScheduleNotFound: board.not_found,
                                ConnectionLost: board.outage, ServerRefused: board.outage, OSError: board.outage,
                                redis.exceptions.ConnectionError: board.outage,
                                redis.exceptions.TimeoutError: board.outage}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.dashboard = board
    return app


def stop_streams(app: Starlette) -> None:
    """End the app's /events streams within EVENTS_BLOCK_MS, so that a server shutting down is not
    held by them (``luasched dashboard`` calls it on SIGINT/SIGTERM)."""
    app.state.dashboard.closing = True
