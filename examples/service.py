"""An asyncio web service (Starlette) that runs an analysis as a batch of luasched tasks.

    POST /analyses                {"texts": ["...", ...]}  -> 202 {"id": ..., "tasks": n}
    GET  /analyses/{id}           progress: total, done, failed, cancelled, pending
    GET  /analyses/{id}/events    Server-Sent Events: one event per text as it is analysed
    GET  /analyses/{id}/summary?wait=S   the gathered result: words, longest text, mean length

Run it alone: with no Redis named it uses the embedded in-process server and runs two processor
slots in this process (EMBEDDED_PROCESSORS=N for more):

    pip install 'luasched[web]'
    uvicorn examples.service:app

or point it at Redis with LUASCHED_REDIS_URL and run processors beside it (each processor also
does the scheduler's duties; `docker compose up` in the repository runs this with two of them):

    LUASCHED_REDIS_URL=redis://localhost:6379/0 uvicorn examples.service:app
    LUASCHED_REDIS_URL=redis://localhost:6379/0 luasched processor examples.service:sched --capacity 8
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import luasched
from luasched import aio

# No redis= here: the Scheduler reads LUASCHED_REDIS_URL, or uses the embedded server without it.
sched = aio.Scheduler(namespace=os.environ.get("LUASCHED_NAMESPACE", "analysis"))


@sched.task(max_attempts=2)
async def analyse(text: str) -> dict[str, Any]:
    """The unit of work: a few facts about one text."""
    await asyncio.sleep(0)  # a real analysis would await I/O here
    words = text.split()
    return {"chars": len(text), "words": len(words), "longest_word": max(words, key=len) if words else ""}


def summarise(results: list[Any]) -> dict[str, Any]:
    """The "summarise the results of a big analysis" step."""
    ok = [r for r in results if isinstance(r, dict)]
    words = sum(r["words"] for r in ok)
    return {
        "texts": len(results),
        "analysed": len(ok),
        "failed": len(results) - len(ok),
        "words": words,
        "mean_words": words / len(ok) if ok else 0.0,
        "longest_word": max((r["longest_word"] for r in ok), key=len, default=""),
    }


async def create(request: Request) -> JSONResponse:
    body = await request.json()
    texts = body.get("texts") if isinstance(body, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return JSONResponse({"error": "texts must be a non-empty list of strings"}, status_code=422)
    group = await sched.map(analyse, [(t,) for t in texts])
    return JSONResponse({"id": group.id, "tasks": len(group)}, status_code=202)


async def _group(request: Request) -> aio.Group | JSONResponse:
    try:
        return await sched.group(request.path_params["id"])
    except (luasched.GroupNotFound, ValueError):
        return JSONResponse({"error": "no such analysis"}, status_code=404)


async def progress(request: Request) -> JSONResponse:
    group = await _group(request)
    if isinstance(group, JSONResponse):
        return group
    return JSONResponse(await group.progress())


async def events(request: Request) -> StreamingResponse | JSONResponse:
    group = await _group(request)
    if isinstance(group, JSONResponse):
        return group

    async def stream() -> AsyncIterator[str]:
        n = 0
        async for outcome in group.as_completed(timeout=300):
            n += 1
            data = {"task": outcome.task_id, "state": outcome.state, "finished": n, "total": len(group)}
            if outcome.state == "done":
                data["result"] = outcome.value()
            yield f"data: {json.dumps(data)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


async def summary(request: Request) -> JSONResponse:
    group = await _group(request)
    if isinstance(group, JSONResponse):
        return group
    wait = float(request.query_params.get("wait", "30"))
    try:
        results = await group.results(timeout=wait, return_exceptions=True)
    except luasched.ResultTimeout:
        return JSONResponse({"error": "not finished yet", **await group.progress()}, status_code=202)
    return JSONResponse(summarise(results))


def embedded_processors() -> int:
    """How many processor slots this process runs: EMBEDDED_PROCESSORS, by default 2 on the
    embedded server (no other process can reach it) and none on Redis (processors run apart)."""
    n = int(os.environ.get("EMBEDDED_PROCESSORS", "2" if sched.embedded else "0"))
    if sched.embedded and n < 1:
        raise RuntimeError("the service runs on the embedded in-process server, which no processor of another "
                           "process can reach: set LUASCHED_REDIS_URL=redis://..., or EMBEDDED_PROCESSORS >= 1")
    return n


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Run the processor slots this process hosts (they also do the scheduler's duties)."""
    n = embedded_processors()
    processor = sched.processor(capacity=n) if n else None
    if processor is not None:
        await processor.start()
    try:
        yield
    finally:
        if processor is not None:
            await processor.stop(timeout=10)
        await sched.close()


app = Starlette(routes=[
    Route("/analyses", create, methods=["POST"]),
    Route("/analyses/{id}", progress),
    Route("/analyses/{id}/events", events),
    Route("/analyses/{id}/summary", summary),
], lifespan=lifespan)
