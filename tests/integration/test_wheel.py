"""The wheel: it carries every Lua script, py.typed and the LICENSE, and works installed outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from luasched.scripts import LIB_DIR, NAMES, lua_dir

ROOT = Path(__file__).resolve().parents[2]

# Building fetches hatchling into an isolated environment: slow, but part of every run.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Run by the installed copy, from a folder outside the repo: imports, finds its scripts, and does
# a whole round trip on the embedded server.
ROUND_TRIP = """
import sys
from pathlib import Path
import luasched, luasched.scripts
target = Path(sys.argv[1]).resolve()
assert Path(luasched.__file__).resolve().is_relative_to(target), luasched.__file__
assert luasched.scripts.lua_dir().resolve().is_relative_to(target), luasched.scripts.lua_dir()
sched = luasched.Scheduler(namespace="wheel")
@sched.task
def add(a, b):
    return a + b
handle = sched.submit(add, 2, 3)
processor = sched.processor()
assert processor.register()
assert sched.dispatch() == [(handle.id, processor.id)]
assert processor.process_available() == 1
assert handle.result(timeout=5) == 5
assert sched.audit().ok
print("round trip ok from", luasched.__file__)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out)],
                           cwd=ROOT, capture_output=True, text=True, check=False, timeout=540)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (found,) = out.glob("luasched-*.whl")
    return found


def test_wheel_carries_the_scripts_and_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    libs = {f"luasched/lua/{LIB_DIR}/{p.name}" for p in (lua_dir() / LIB_DIR).glob("*.lua")}
    wanted = {f"luasched/lua/{name}.lua" for name in NAMES} | libs | {"luasched/py.typed"}
    wanted |= {f"luasched-{version('luasched')}.dist-info/licenses/LICENSE"}
    web = ROOT / "luasched" / "web"
    wanted |= {f"luasched/web/{p.relative_to(web).as_posix()}" for p in web.rglob("*.*") if p.suffix != ".pyc"}
    assert "luasched/web/templates/overview.html" in wanted and "luasched/web/static/live.js" in wanted
    assert len(libs) >= 5
    assert wanted <= names, sorted(wanted - names)


def test_installed_wheel_runs_a_round_trip(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                              "--disable-pip-version-check", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, check=False, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", ROUND_TRIP, str(target)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "round trip ok" in run.stdout
