"""Counts and times in messages read as a person writes them."""

from __future__ import annotations

import pytest

from luasched.core.words import counted, duration


@pytest.mark.parametrize("n, says", [(0, "0 tasks"), (1, "1 task"), (2, "2 tasks")])
def test_counted_is_singular_for_one_only(n: int, says: str) -> None:
    assert counted(n, "task") == says


def test_an_irregular_plural_is_given() -> None:
    assert counted(3, "entry", "entries") == "3 entries" and counted(1, "entry", "entries") == "1 entry"


@pytest.mark.parametrize("seconds, says", [
    (0, "0.0 s"), (4.24, "4.2 s"), (59.9, "59.9 s"), (60, "1 min 0 s"), (725.5, "12 min 5 s"),
    (3600, "1 h 0 min"), (12000, "3 h 20 min"), (86400 * 2 + 3600 * 4 + 59, "2 d 4 h"),
])
def test_a_running_time_is_spelled_in_its_largest_units(seconds: float, says: str) -> None:
    assert duration(seconds) == says
