"""The floors job of .ci/run pins every runtime dependency at the lowest version pyproject.toml
declares, so a floor raised in one place is raised in the other (issue 21: the declared floors
were false)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _version(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=]", requirement, maxsplit=1)[0].strip().lower()


def test_the_floors_job_pins_each_runtime_dependency_at_its_declared_floor() -> None:
    declared = {}
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert block is not None
    for requirement in re.findall(r'"([^"]+)"', block[1]):  # tomllib is 3.11+
        floor = re.search(r">=\s*([\d.]+)", requirement)
        assert floor is not None, f"{requirement}: every runtime dependency declares its floor"
        declared[_name(requirement)] = _version(floor[1])
    line = next(x for x in (ROOT / ".ci" / "run").read_text().splitlines() if x.startswith("FLOORS=("))
    pinned = {_name(p): _version(p.split("==")[1]) for p in re.findall(r'"([^"]+)"', line)}
    assert pinned == declared
