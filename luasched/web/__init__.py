"""luasched's web dashboard (the ``web`` extra): ``create_app(sched)`` is a mountable ASGI app."""

from __future__ import annotations

from .app import create_app, stop_streams

__all__ = ["create_app", "stop_streams"]
