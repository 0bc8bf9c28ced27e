"""Nothing runs what it reads from Redis beyond looking a name up in the registry: a task named
like an importable callable, submitted by name, is never placed (no processor has that task
name); planted into a record after placement, it fails with UnknownTask; nothing runs. On the
embedded server and on a real one."""

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
    p = sched.processor(capacity=2)
    assert p.register()
    # No processor has a task named os.system: it is never placed (routing reads the name).
    assert sched.dispatch() == [(planted.id, p.id)]
    # Rewrite the record behind luasched's back, as someone with write access to Redis could,
    # after placement: the processor looks the name up, never imports it.
    sched.client.hset(sched.keys.task(planted.id), "f", "subprocess.getoutput")
    assert p.process_available() == 1
    with pytest.raises(luasched.TaskFailed) as failed:
        planted.result(timeout=1)
    assert failed.value.error_type == "UnknownTask"
    assert "no task named 'subprocess.getoutput' is registered" in failed.value.message
    assert by_name.state == "queued"
    assert sched.explain(by_name.id).detail["condition"] == "task name"
    assert not marker.exists()
    assert sched.audit().ok
