"""The public surface: __all__ matches what the package exports, and a task can see itself."""

from __future__ import annotations

import types

import luasched


def test_all_names_exist_and_are_exported():
    public = {name for name in dir(luasched) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(luasched, name), types.ModuleType)}
    assert set(luasched.__all__) == public - modules
    for name in luasched.__all__:
        assert getattr(luasched, name) is not None


def test_every_exception_derives_from_the_root():
    for name in luasched.__all__:
        obj = getattr(luasched, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, luasched.LuaschedError), name


def test_a_running_task_sees_its_id_attempt_and_processor(sched, clock):
    seen = []

    @sched.task(max_attempts=2, retry_backoff=0)
    def who() -> str:
        info = luasched.current_task()
        seen.append(info)
        if info.attempt == 1:
            raise RuntimeError("first attempt fails")
        return info.id

    assert luasched.current_task() is None
    h = sched.submit(who)
    p = sched.processor()
    p.register()
    sched.dispatch()
    p.process_available()
    sched.dispatch()
    p.process_available()
    assert h.result(timeout=1) == h.id
    assert [(i.id, i.name, i.attempt, i.processor) for i in seen] == [(h.id, "who", 1, p.id),
                                                                      (h.id, "who", 2, p.id)]
    assert luasched.current_task() is None


def test_task_ids_never_look_like_command_line_options():
    from luasched.core.tasks import new_task_id

    ids = [new_task_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000 and {len(i) for i in ids} == {12}
