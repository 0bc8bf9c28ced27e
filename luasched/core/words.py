"""Counts in messages and log lines, spelled as a person would: "1 task", "2 tasks"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one: counted(1, "task") == "1 task"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
