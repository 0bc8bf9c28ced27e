"""``luasched demo``: runs on the embedded server, as a subprocess, on a real Redis; bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest
from click.testing import CliRunner, Result

from luasched.cli import demo as demo_command
from luasched.cli import main
from tests.servers import RedisServer, free_port

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RESULT_LINE = re.compile(r"^(?P<processor>\S+)  task (?P<task>\S+)  -> (?P<value>\d+)$",
                         re.MULTILINE)
TABLE_ROW = re.compile(r"^[│|] (?P<processor>\S+) +[│|] +(?P<tasks>\d+) [│|]$", re.MULTILINE)


def demo(*args: str) -> Result:
    return CliRunner().invoke(main, ["demo", *args])


def summary(output: str, name: str) -> str:
    found = re.search(rf"^{name} +(\S+)", output, re.MULTILINE)
    assert found, f"no {name!r} line in:\n{output}"
    return found.group(1)


def check_report(output: str, tasks: int, processors: int) -> list[int]:
    """Check a demo's stdout against itself: every result once, the summary adds up. Returns
    the values, in arrival order."""
    output = ANSI.sub("", output)
    lines = [m.groupdict() for m in RESULT_LINE.finditer(output)]
    assert len(lines) == tasks, output
    for line in lines:
        assert output.count(line["task"]) == 1, f"task {line['task']} not named exactly once"
    values = [int(line["value"]) for line in lines]
    assert all(0 <= v <= 10 for v in values)
    assert int(summary(output, "count")) == tasks
    assert int(summary(output, "failed")) == 0
    assert int(summary(output, "sum")) == sum(values)
    assert summary(output, "mean") == f"{sum(values) / tasks:.2f}"
    assert float(summary(output, "speed-up").rstrip("x")) > 1
    # The per-processor table agrees with the result lines, and lists every processor.
    rows = {m["processor"]: int(m["tasks"]) for m in TABLE_ROW.finditer(output)}
    ran = Counter(line["processor"] for line in lines)
    assert len(rows) == processors
    assert {p: n for p, n in rows.items() if n} == dict(ran)
    # the summary is a chord callback's result, and a processor of the run computed it
    summarised_on = re.search(r"^summarised on processor (\S+) by a chord callback", output, re.MULTILINE)
    assert summarised_on and summarised_on[1] in rows, output
    assert "audit ok" in output
    return values


def test_embedded_run_reports_every_task_and_a_speed_up() -> None:
    result = demo("--tasks", "8", "--processors", "4", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    values = check_report(result.stdout, tasks=8, processors=4)
    # The same seed draws the same tasks, whichever processor ran which.
    again = demo("--tasks", "8", "--processors", "2", "--seed", "7")
    assert again.exit_code == 0, again.output
    assert sorted(check_report(again.stdout, tasks=8, processors=2)) == sorted(values)


def test_a_failed_task_means_exit_code_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def run_task(delay_s: float, seed: int) -> int:
        raise RuntimeError(f"no luck with seed {seed}")

    monkeypatch.setattr(demo_command, "run_task", run_task)
    result = demo("--tasks", "2", "--processors", "2")
    assert result.exit_code == 1, result.output
    assert result.stdout.count("FAILED RuntimeError: no luck with seed") == 2
    assert re.search(r"^failed +2$", result.stdout, re.MULTILINE)
    assert "audit ok" in result.stdout  # a failed task is still in exactly one place


def test_python_dash_m_runs_the_demo(tmp_path) -> None:
    command = [sys.executable, "-m", "luasched", "demo", "--tasks", "6", "--processors", "3"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    check_report(run.stdout, tasks=6, processors=3)


def test_runs_on_real_redis_in_its_own_namespace(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        client.set("luasched:{not-the-demo}:stats", "keep")
        result = demo("--tasks", "6", "--processors", "3", "--redis", redis_server.url)
        assert result.exit_code == 0, result.output
        check_report(result.stdout, tasks=6, processors=3)
        assert client.get("luasched:{not-the-demo}:stats") == b"keep"
        assert list(client.scan_iter(match="luasched:{demo-*")) == []
    finally:
        client.delete("luasched:{not-the-demo}:stats")
        client.close()


@pytest.mark.parametrize("args, says", [
    (["--tasks", "0"], "--tasks must be at least 1"),
    (["--processors", "-1"], "--processors must be at least 1"),
    (["--redis", "http://127.0.0.1:1"], "must start with memory://, redis://"),
    (["--redis", "redis://127.0.0.1:port/0"], "Port could not be cast"),
    (["--redis", "UNREACHABLE"], "cannot reach Redis"),
])
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], says: str) -> None:
    # A port found free now, not at collection time, so nothing has taken it since.
    args = [f"redis://127.0.0.1:{free_port()}/0" if a == "UNREACHABLE" else a for a in args]
    result = demo(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # nothing escaped the CLI boundary
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert says in result.stderr
    assert "Traceback" not in result.output
