"""The dashboard's admin side: who may act (the token), and the actions, each a POST under
/actions/ that calls the Scheduler's own API and appends one entry to the audit stream."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .reads import Source

#: The cookie /login sets: the token, sent back on same-site requests only.
COOKIE = "luasched_token"


class Gate:
    """Checks a request's token. Admin pages carry a form field ``csrf`` derived from the token,
    so a cross-site form cannot act through the cookie alone."""

    def __init__(self, admin: bool, token: str | None) -> None:
        if admin and not token:
            raise ValueError("create_app(admin=True) needs a token: the actions are refused without one")
        self.admin = admin
        self.token = token or ""

    @property
    def csrf(self) -> str:
        return hmac.new(self.token.encode(), b"luasched-dashboard-csrf", hashlib.sha256).hexdigest()

    def signed_in(self, request: Request) -> bool:
        """True when this request may see and use the admin actions (cookie or bearer token)."""
        if not self.admin:
            return False
        given = request.cookies.get(COOKIE, "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        return bool(given) and hmac.compare_digest(given, self.token)

    async def refusal(self, request: Request) -> Response | None:
        """None when ``request`` may act; else a 401 (no token) or 403 (wrong token, no admin, no csrf)."""
        if not self.admin:
            return PlainTextResponse("this dashboard is read-only", status_code=403)
        if COOKIE not in request.cookies and "authorization" not in request.headers:
            return PlainTextResponse("a token is needed", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if not self.signed_in(request):
            return PlainTextResponse("wrong token", status_code=403)
        if "authorization" not in request.headers:  # cookie: the form must prove it came from a page of ours
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf):
                return PlainTextResponse("missing or wrong csrf field", status_code=403)
        return None


def back(target: str, home: str) -> str:
    """Where to go after an action: a path on this host only, else ``home``."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else home


Action = Callable[[Source, dict[str, str]], Awaitable[tuple[str, int]]]


async def retry_failed(source: Source, form: dict[str, str]) -> tuple[str, int]:
    task_id = form.get("task_id", "")
    ids = await source.run(source.sched.retry_failed, [task_id] if task_id else [])
    return task_id or "oldest 100", len(ids)


async def cancel(source: Source, form: dict[str, str]) -> tuple[str, int]:
    task_id = form.get("task_id", "")
    if not task_id:
        raise ValueError("cancel needs a task_id")
    done = await source.run(source.sched.handle(task_id).cancel)
    return task_id, int(bool(done))


async def pause(source: Source, form: dict[str, str]) -> tuple[str, int]:
    queue = form.get("queue") or None
    return queue or "*", int(bool(await source.run(source.sched.pause, queue)))


async def resume(source: Source, form: dict[str, str]) -> tuple[str, int]:
    queue = form.get("queue") or None
    return queue or "*", int(bool(await source.run(source.sched.resume, queue)))


async def trigger(source: Source, form: dict[str, str]) -> tuple[str, int]:
    name = form.get("name", "")
    if not name:
        raise ValueError("trigger needs a schedule name")
    await source.run(source.sched.trigger, name)
    return name, 1


async def purge_finished(source: Source, form: dict[str, str]) -> tuple[str, int]:
    """Delete the dead letters (Scheduler.purge_finished), those that failed ``older_than``
    seconds ago or more; ``confirm=yes`` is required, as the command's --yes is."""
    raw = form.get("older_than", "").strip() or "0"
    try:
        older_than = float(raw)
    except ValueError:
        raise ValueError(f"older_than must be a number of seconds, not {raw!r}") from None
    if form.get("confirm") != "yes":
        raise ValueError("purge-finished deletes the dead letters: send confirm=yes to go ahead")
    deleted = await source.run(source.sched.purge_finished, older_than=older_than)
    return (f"older than {older_than:g} s" if older_than else "all"), deleted


# No purge of the namespace: Scheduler.purge deletes every key, not only the dead letters.
ACTIONS: dict[str, Action] = {"retry-failed": retry_failed, "cancel": cancel, "pause": pause, "resume": resume,
                              "trigger": trigger, "purge-finished": purge_finished}


def routes(source: Source, gate: Gate) -> list[Route]:
    """One POST route per action: check the token first, then act, then log, then go back."""

    def endpoint(what: str, act: Action) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            refused = await gate.refusal(request)
            if refused is not None:
                return refused
            form = {k: str(v) for k, v in (await request.form()).items()}
            try:
                target, count = await act(source, form)
            except ValueError as exc:
                return PlainTextResponse(str(exc), status_code=400)
            who = request.client.host if request.client else "?"
            await source.log_action(who, what, target, count)
            home = request.scope.get("root_path", "") + "/"
            return RedirectResponse(back(form.get("next", home), home), status_code=303)
        return run

    return [Route(f"/actions/{what}", endpoint(what, act), methods=["POST"]) for what, act in ACTIONS.items()]
