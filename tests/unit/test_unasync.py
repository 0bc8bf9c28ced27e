"""tools/unasync.py: the threaded front end is generated from the asyncio one, and stays so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools import unasync


def test_the_generated_code_is_in_step_with_its_source() -> None:
    assert unasync.check() == []


@pytest.mark.parametrize("line, want", [
    ("    async def submit(self) -> None:\n", "    def submit(self) -> None:\n"),
    ("        return await self.call(c)\n", "        return self.call(c)\n"),
    ("        x = (await self.drive(flow)).value()\n", "        x = (self.drive(flow)).value()\n"),
    ("        async with self._id_lock:\n", "        with self._id_lock:\n"),
    ("            async for key in scan():\n", "            for key in scan():\n"),
    ("from .._backends import aio as backend\n", "from .._backends import threads as backend\n"),
    ("import asyncio\n", "import threading\n"),
    ("    stop: asyncio.Event | None = None\n", "    stop: threading.Event | None = None\n"),
    ("        self._lock = asyncio.Lock()\n", "        self._lock = threading.Lock()\n"),
    ("    def f(self) -> AsyncIterator[int]:\n", "    def f(self) -> Iterator[int]:\n"),
    ("    async def __aenter__(self) -> S:\n", "    def __enter__(self) -> S:\n"),
    ("    # unasync: @property\n", "    @property\n"),
    # words that only contain a keyword are left alone
    ("    self.awaited = nonasync def_ault\n", "    self.awaited = nonasync def_ault\n"),
    ("    x = my.asyncio.Event\n", "    x = my.asyncio.Event\n"),
])
def test_each_line_is_rewritten_by_the_table(line: str, want: str) -> None:
    assert unasync.unasync_line(line) == want


def test_a_generated_file_says_where_it_comes_from() -> None:
    text = unasync.unasync_text("x.py", "async def f():\n    await g()\n")
    assert text.splitlines() == [unasync.HEADER.format(name="x.py").rstrip("\n"), "def f():", "    g()"]


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    source, target = tmp_path / "_async", tmp_path / "_sync"
    shutil.copytree(unasync.SOURCE, source)
    shutil.copytree(unasync.TARGET, target)
    return source, target


def test_an_edit_by_hand_of_the_generated_code_is_caught(tmp_path: Path) -> None:
    source, target = _tree(tmp_path)
    assert unasync.check(source, target) == []
    generated = target / "scheduler.py"
    generated.write_text(generated.read_text().replace("def dispatch(", "def dispatch_(", 1))
    problems = unasync.check(source, target)
    assert len(problems) == 1 and "scheduler.py:" in problems[0] and "dispatch_" in problems[0]


def test_an_edit_of_the_source_not_generated_is_caught(tmp_path: Path) -> None:
    source, target = _tree(tmp_path)
    written = source / "handles.py"
    written.write_text(written.read_text() + "\n\ndef extra() -> None:\n    pass\n")
    assert any("handles.py" in p for p in unasync.check(source, target))
    (target / "stray.py").write_text("")
    assert any("stray.py has no source" in p for p in unasync.check(source, target))


def test_the_check_command_fails_when_out_of_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert unasync.main(["--check"]) == 0
    source, target = _tree(tmp_path)
    (target / "transport.py").unlink()
    monkeypatch.setattr(unasync, "SOURCE", source)
    monkeypatch.setattr(unasync, "TARGET", target)
    monkeypatch.setattr(unasync.check, "__defaults__", (source, target))
    assert unasync.main(["--check"]) == 1
    assert "transport.py is missing" in capsys.readouterr().err
