"""Nothing runs what it reads from Redis beyond looking a name up in the registry: a task named
like an importable callable, submitted by name or planted into a record, fails with UnknownTask
and nothing runs. On the embedded server and on a real one."""

from __future__ import annotations

from pathlib import Path

import pytest

import luasched


def test_a_planted_task_name_is_looked_up_never_imported(sched: luasched.Scheduler, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    @sched.task(max_attempts=1)
    def harmless(command: str) -> str:
        return "looked"

    by_name = sched.submit("os.system", f"touch {marker}", _max_attempts=1)
    planted = sched.submit(harmless, f"touch {marker}")
    # Rewrite the record behind luasched's back, as someone with write access to Redis could.
    sched.client.hset(sched.keys.task(planted.id), "f", "subprocess.getoutput")
    p = sched.processor(capacity=2)
    assert p.register()
    assert len(sched.dispatch()) == 2
    assert p.process_available() == 2
    for handle, name in ((by_name, "os.system"), (planted, "subprocess.getoutput")):
        with pytest.raises(luasched.TaskFailed) as failed:
            handle.result(timeout=1)
        assert failed.value.error_type == "UnknownTask"
        assert f"no task named {name!r} is registered" in failed.value.message
    assert not marker.exists()
    assert sched.audit().ok
