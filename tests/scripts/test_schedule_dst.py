"""A cron in a time zone follows its wall clock across DST (an injected clock jumping over the
days the clocks change, in Europe and in America): a time that does not exist fires once, at the
instant the clocks jumped; a time that occurs twice fires once, at its first occurrence."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from luasched.core.schedules import cron_times

from .util import audit_ok, queue_ids


def ms(zone: str, *wall: int, fold: int = 0) -> int:
    return int(datetime(*wall, tzinfo=ZoneInfo(zone), fold=fold).timestamp() * 1000)  # type: ignore[misc]


def utc_ms(*wall: int) -> int:
    return int(datetime(*wall, tzinfo=timezone.utc).timestamp() * 1000)  # type: ignore[misc]


CASES = [
    # zone, cron, from (UTC), the fire times expected (UTC)
    ("Europe/Berlin", "30 2 * * *", (2024, 3, 30, 12), [  # 02:30 does not exist on the 31st
        utc_ms(2024, 3, 31, 1, 0), ms("Europe/Berlin", 2024, 4, 1, 2, 30)]),
    ("Europe/Berlin", "30 * * * *", (2024, 3, 30, 23, 15), [  # 00:30 and 01:30 CET, 02:30 -> 03:00, 03:30 CEST
        utc_ms(2024, 3, 30, 23, 30), utc_ms(2024, 3, 31, 0, 30), utc_ms(2024, 3, 31, 1, 0),
        utc_ms(2024, 3, 31, 1, 30)]),
    ("Europe/Berlin", "30 2 * * *", (2024, 10, 26, 12), [  # 02:30 occurs twice on the 27th: its first
        utc_ms(2024, 10, 27, 0, 30), ms("Europe/Berlin", 2024, 10, 28, 2, 30)]),
    ("Europe/Berlin", "*/30 * * * *", (2024, 10, 27, 0, 15), [  # 02:00 and 02:30 CEST once each, then 03:00 CET
        utc_ms(2024, 10, 27, 0, 30), utc_ms(2024, 10, 27, 2, 0)]),
    ("America/New_York", "30 2 * * *", (2024, 3, 9, 12), [  # 02:30 does not exist on the 10th
        utc_ms(2024, 3, 10, 7, 0), ms("America/New_York", 2024, 3, 11, 2, 30)]),
    ("America/New_York", "30 1 * * *", (2024, 11, 2, 12), [  # 01:30 occurs twice on Nov 3rd: its first
        utc_ms(2024, 11, 3, 5, 30), ms("America/New_York", 2024, 11, 4, 1, 30)]),
]


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), CASES)
def test_cron_times_follow_the_wall_clock(zone, cron, start, expected):
    assert cron_times(cron, zone, utc_ms(*start), len(expected)) == expected


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), CASES[::2] + [CASES[3]])
def test_a_loop_jumping_over_dst_days_fires_each_wall_clock_time_once(make_sched, clock, zone, cron, start, expected):
    clock.now = utc_ms(*start) / 1000
    sched = make_sched(clock=clock)

    @sched.task
    def job() -> None:
        return None

    sched.schedule("d", job, cron=cron, tz=zone, overlap="allow")
    for at in expected:  # the clock jumps to each fire time, and a little past it, and calls again
        clock.now = at / 1000
        sched.fire_schedules()
        clock.now += 1.5
        sched.fire_schedules()
    assert queue_ids(sched) == [f"d@{at}" for at in expected]
    info = sched.schedule_info("d")
    assert (info.runs, info.missed, info.skipped) == (len(expected), 0, 0)
    audit_ok(sched)
