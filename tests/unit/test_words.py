"""Counts in messages read as a person writes them."""

from __future__ import annotations

import pytest

from luasched.core.words import counted


@pytest.mark.parametrize("n, says", [(0, "0 tasks"), (1, "1 task"), (2, "2 tasks")])
def test_counted_is_singular_for_one_only(n: int, says: str) -> None:
    assert counted(n, "task") == says


def test_an_irregular_plural_is_given() -> None:
    assert counted(3, "entry", "entries") == "3 entries" and counted(1, "entry", "entries") == "1 entry"
