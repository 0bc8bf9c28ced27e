"""lua/schedule.lua and lua/fire.lua on both backends, time injected: each tick fires once,
overlap, catch-up and missed ticks, pause, resume, trigger, remove, a change of cadence, and
bad input that writes nothing. DST is in test_schedule_dst.py."""

from __future__ import annotations

import pytest

import luasched
from luasched.core import schedules as cs
from luasched.core.schedules import LATE_GRACE_MS

from .util import ack, audit_ok, queue_ids, start

T0 = 1_700_000_000.0  # the FakeClock's start: a multiple of 1 s and of 5 s


@pytest.fixture
def tasks(sched):
    @sched.task
    def add(a: int, b: int) -> int:
        return a + b

    return add


def made(sched) -> list[str]:
    return sorted(i for i in queue_ids(sched) if "@" in i)


def test_each_tick_of_an_interval_makes_one_task_however_often_loops_fire(sched, make_sched, clock, tasks):
    info = sched.schedule("five", tasks, (1, 2), every=5, overlap="allow")
    assert info.next_ms == int(T0 * 1000) + 5000 and info.spec == "every 5s" and info.runs == 0
    other = make_sched(clock=clock)
    assert sched.fire_schedules().created == []  # nothing due yet
    for _ in range(3):
        clock.advance(5)
        for s in (sched, other, sched):  # three loops at the same moment
            s.fire_schedules()
    assert made(sched) == [f"five@{int(T0 * 1000) + k * 5000}" for k in (1, 2, 3)]
    assert sched.handle("five@1700000005000").state == "queued"
    info = sched.schedule_info("five")
    assert (info.runs, info.skipped, info.missed) == (3, 0, 0)
    audit_ok(sched)


def test_overlap_allow_fires_while_the_last_task_runs(sched, clock, tasks):
    sched.schedule("a", tasks, (1, 2), every=1, overlap="allow")
    for _ in range(3):
        clock.advance(1)
        sched.fire_schedules()
    assert len(made(sched)) == 3
    assert sched.schedule_info("a").runs == 3
    audit_ok(sched)


def test_overlap_skip_fires_again_once_the_last_task_finished(sched, clock, tasks):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    sched.schedule("s", tasks, (1, 2), every=1)
    clock.advance(1)
    sched.fire_schedules()
    assert sched.dispatch() == [("s@1700000001000", p.id)]
    started = start(sched, p.id).task
    clock.advance(1)
    sched.fire_schedules()  # the first still runs: skipped
    assert sched.schedule_info("s").skipped == 1
    ack(sched, p.id, started)
    clock.advance(1)
    sched.fire_schedules()
    info = sched.schedule_info("s")
    assert (info.runs, info.skipped, info.last_task_id, info.last_state) == (2, 1, "s@1700000003000", "queued")
    audit_ok(sched)


def test_buffer_one_keeps_one_tick_behind_a_running_task_and_fires_it_when_that_ends(sched, clock, tasks):
    p = sched.processor(capacity=1, lease=60)
    assert p.register()
    sched.schedule("b", tasks, (1, 2), every=10, overlap="buffer_one")
    clock.advance(10)
    sched.fire_schedules()
    sched.dispatch()
    started = start(sched, p.id).task
    clock.advance(10)
    sched.fire_schedules()  # buffered behind the running one
    clock.advance(10)
    sched.fire_schedules()  # one is buffered already: skipped
    info = sched.schedule_info("b")
    assert (info.runs, info.skipped, info.buffered_ms) == (1, 1, 1_700_000_020_000)
    audit_ok(sched)
    sched.client.delete(sched.keys.wake)
    clock.advance(3)
    ack(sched, p.id, started)  # the end of the task makes the schedule due now, and wakes the loops
    assert sched.client.llen(sched.keys.wake) == 1
    assert sched.client.zscore(sched.keys.schedules, "b") == int(clock.now * 1000)
    assert sched.fire_schedules().created == ["b@1700000020000"]  # the buffered tick's own id
    info = sched.schedule_info("b")
    assert (info.runs, info.buffered_ms, info.next_ms) == (2, None, 1_700_000_040_000)
    audit_ok(sched)


def test_after_a_gap_ticks_within_catchup_fire_oldest_first_and_older_ones_are_missed(sched, clock, tasks):
    sched.schedule("c", tasks, (1, 2), every=1, overlap="allow", catchup=3.5)
    clock.advance(10)  # ticks 1..10 due; 7..10 are due less than 3.5 s ago
    sched.fire_schedules()
    assert made(sched) == [f"c@{int(T0 * 1000) + k * 1000}" for k in (7, 8, 9, 10)]
    assert queue_ids(sched)[:4] == made(sched)  # oldest first
    info = sched.schedule_info("c")
    assert (info.runs, info.missed) == (4, 6)
    audit_ok(sched)


def test_with_no_catchup_only_the_newest_tick_fires_after_a_gap_and_not_too_late(sched, clock, tasks):
    first = sched.schedule("n", tasks, (1, 2), every=60).next_ms
    assert first % 60_000 == 0  # an interval ticks at the multiples of it since the epoch
    clock.now = first / 1000 + 240 + 2
    sched.fire_schedules()
    assert made(sched) == [f"n@{first + 240_000}"]
    assert sched.schedule_info("n").missed == 4
    clock.advance(60 + LATE_GRACE_MS / 1000)  # the next one is as late as the grace: missed too
    sched.fire_schedules()
    assert sched.schedule_info("n").missed == 5 and len(made(sched)) == 1


def test_a_cron_fires_its_listed_times_and_refills_them_once(sched, make_sched, clock, tasks):
    sched.schedule("m", tasks, (1, 2), cron="* * * * * *", overlap="allow", catchup=1000)  # every second
    other = make_sched(clock=clock)
    for _ in range(5):
        clock.advance(20)  # past the 32 listed times now and then: refills
        other.fire_schedules()
        sched.fire_schedules()
    ids = made(sched)
    assert ids == [f"m@{int(T0 * 1000) + k * 1000}" for k in range(1, 101)]
    audit_ok(sched)


def test_a_long_cron_gap_is_counted_missed_in_few_calls(sched, clock, tasks):
    sched.schedule("g", tasks, (1, 2), cron="*/10 * * * * *")
    clock.advance(86400 + 5)  # a day: 8640 ticks
    fired = sched.fire_schedules()
    info = sched.schedule_info("g")
    assert info.missed == 8639 and info.runs == 1 and fired.next_due_ms == info.next_ms
    audit_ok(sched)


def test_pause_resume_trigger_and_remove(sched, clock, tasks):
    sched.schedule("p", tasks, (1, 2), every=1, overlap="allow")
    assert sched.pause_schedule("p") is True and sched.pause_schedule("p") is False
    assert sched.schedule_info("p").paused
    clock.advance(5)
    assert sched.fire_schedules().created == []
    handle = sched.trigger("p")  # a paused schedule can still be triggered
    assert handle.id.startswith("p@trigger-") and handle.state == "queued"
    assert sched.schedule_info("p").last_task_id == handle.id
    audit_ok(sched)
    sched.client.delete(sched.keys.wake)
    assert sched.resume_schedule("p") is True and sched.resume_schedule("p") is False
    assert sched.client.llen(sched.keys.wake) == 1
    info = sched.schedule_info("p")
    assert info.next_ms == int(clock.now * 1000) + 1000 and not info.paused  # the paused ticks are gone
    assert (info.runs, info.missed, info.skipped) == (1, 0, 0)
    clock.advance(1)
    assert sched.fire_schedules().created == [f"p@{int(clock.now * 1000)}"]
    sched.remove_schedule("p")
    assert sched.schedules() == []
    with pytest.raises(luasched.ScheduleNotFound):
        sched.remove_schedule("p")
    with pytest.raises(luasched.ScheduleNotFound):
        sched.trigger("p")
    with pytest.raises(luasched.ScheduleNotFound):
        sched.pause_schedule("p")
    assert handle.state == "queued"  # its tasks stay
    audit_ok(sched)


def test_an_upsert_that_changes_the_cadence_starts_again_and_keeps_the_counters(sched, clock, tasks):
    sched.schedule("u", tasks, (1, 2), every=10, overlap="allow")
    clock.advance(10)
    sched.fire_schedules()
    sched.client.delete(sched.keys.wake)
    same = sched.schedule("u", tasks, (5, 6), every=10, overlap="allow", queue="other")
    assert same.next_ms == 1_700_000_020_000 and same.runs == 1  # same cadence: same pending tick
    assert sched.client.llen(sched.keys.wake) == 1
    changed = sched.schedule("u", tasks, (5, 6), cron="0 * * * *", tz="Europe/Paris", overlap="allow",
                             queue="other")
    assert changed.spec == "cron 0 * * * *" and changed.next_ms == 1_700_002_800_000 and changed.runs == 1
    clock.advance(2790)
    assert sched.fire_schedules().created == ["u@1700002800000"]
    assert queue_ids(sched, "other") == ["u@1700002800000"]
    audit_ok(sched)


def test_a_tick_refused_by_its_queue_cap_is_counted_skipped(sched, clock, tasks):
    sched.set_queue("default", max_pending=0)
    sched.schedule("f", tasks, (1, 2), every=1)
    clock.advance(1)
    assert sched.fire_schedules().created == []
    assert sched.schedule_info("f").skipped == 1
    with pytest.raises(luasched.ScriptError, match="full"):
        sched.trigger("f")
    audit_ok(sched)


def test_a_schedule_task_is_what_submit_makes(sched, clock, tasks):
    sched.limit("api", max_running=2)
    sched.schedule("o", tasks, (1, 2), every=1, priority=2, key="k1", limits=("api",), max_attempts=5, timeout=3,
                   expires=60, queue="q1")
    submitted = sched.submit(tasks, 1, 2, _priority=2, _key="k1", _limits=("api",), _max_attempts=5, _timeout=3,
                             _expires=60, _queue="q1")
    clock.advance(1)
    sched.fire_schedules()
    ours, theirs = sched.task_record("o@1700000001000"), sched.task_record(submitted.id)
    for field in ("name", "queue", "priority", "key", "limits", "max_attempts", "timeout_s", "args"):
        assert getattr(ours, field) == getattr(theirs, field), field
    audit_ok(sched)


BAD = [
    (dict(cron="* * *"), ValueError, "fields"),
    (dict(cron="61 * * * *"), ValueError, "cron"),
    (dict(cron="* * * * *", tz="Mars/Olympus"), ValueError, "time zone"),
    (dict(cron="* * * * *", every=5), ValueError, "exactly one"),
    ({}, ValueError, "exactly one"),
    (dict(every=5, overlap="queue"), ValueError, "overlap"),
    (dict(every=5, catchup=-1), ValueError, "catchup"),
    (dict(every=0.5), ValueError, "every"),
    (dict(every=5, colour="red"), TypeError, "colour"),
]


@pytest.mark.parametrize(("kwargs", "exc", "word"), BAD)
def test_bad_input_raises_and_writes_nothing(sched, tasks, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        sched.schedule("bad", tasks, (1, 2), **kwargs)
    assert sched.schedules() == [] and sched.client.exists(sched.keys.schedule("bad")) == 0


def test_an_unregistered_task_name_or_bad_arguments_are_refused(sched, tasks):
    with pytest.raises(luasched.UnknownTask):
        sched.schedule("bad", "nobody", every=5)
    with pytest.raises(TypeError):
        sched.schedule("bad", tasks, (1,), every=5)
    with pytest.raises(ValueError, match="schedule name"):
        sched.schedule("bad name", tasks, (1, 2), every=5)
    assert sched.schedules() == []


def test_a_cron_that_never_fires_again_fires_its_last_tick_and_retires(sched, clock, tasks, monkeypatch):
    """A cron's times run out for good (cronsim stops some years ahead; here, after 5 s): the
    pending tick fires as its last, and the schedule is due never, so no loop wakes for it."""
    real = cs.cron_times
    last_ms = int(T0 * 1000) + 5000
    monkeypatch.setattr(cs, "cron_times", lambda *a: [t for t in real(*a) if t <= last_ms])
    sched.schedule("ends", tasks, (1, 2), cron="* * * * * *", overlap="allow", catchup=1000)
    for _ in range(4):
        clock.advance(2)
        fired = sched.fire_schedules()
    assert made(sched) == [f"ends@{int(T0 * 1000) + k * 1000}" for k in range(1, 6)]
    assert fired.refills == [] and fired.next_due_ms is None
    info = sched.schedule_info("ends")
    assert info.next_ms is None and info.runs == 5 and not info.paused
    assert sched.client.zscore(sched.keys.schedules, "ends") == float("inf")
    clock.advance(60)
    assert sched.fire_schedules().created == []
    audit_ok(sched)
