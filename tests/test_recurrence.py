"""Next fire times as a pure function: intervals on absolute time, cron in time zones, the DST rules,
and what happens to missed fires. No Redis, no clock: known dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from qw.exceptions import ConfigError
from qw.recurrence import GRACE, Recurrence, plan

UTC = timezone.utc


def at(*fields: int) -> float:
    """A UTC time as unix seconds."""
    return datetime(*fields, tzinfo=UTC).timestamp()


def fires(rule: Recurrence, start: float, n: int) -> list[float]:
    out, t = [], start
    for _ in range(n):
        t = rule.next_after(t)
        out.append(t)
    return out


def test_every_runs_on_absolute_time_shifted_by_its_offset() -> None:
    rule = Recurrence(every=300, offset=30)
    assert fires(rule, at(2026, 1, 1, 0, 0, 0), 3) == [at(2026, 1, 1, 0, 0, 30), at(2026, 1, 1, 0, 5, 30),
                                                      at(2026, 1, 1, 0, 10, 30)]
    # Strictly after: a time that is a fire time gives the next one.
    assert rule.next_after(at(2026, 1, 1, 0, 5, 30)) == at(2026, 1, 1, 0, 10, 30)
    # Daylight saving time never moves an interval: daily at 01:00 UTC across Paris's fall-back.
    daily = Recurrence(every=timedelta(days=1), offset=timedelta(hours=1))
    assert fires(daily, at(2026, 10, 24, 12), 3) == [at(2026, 10, 25, 1), at(2026, 10, 26, 1), at(2026, 10, 27, 1)]


def test_every_below_a_second_keeps_milliseconds() -> None:
    rule = Recurrence(every=0.2)
    assert fires(rule, 1000.0, 3) == [1000.2, 1000.4, 1000.6]


def test_cron_in_a_time_zone() -> None:
    rule = Recurrence(cron="30 6 * * 1-5", tz="America/New_York")
    # Friday 2026-12-04 -> Monday 2026-12-07 06:30 EST (11:30 UTC), skipping the weekend.
    assert rule.next_after(at(2026, 12, 4, 12)) == at(2026, 12, 7, 11, 30)


def test_nicknames() -> None:
    assert Recurrence(cron="@daily").next_after(at(2026, 5, 5, 10)) == at(2026, 5, 6)
    assert Recurrence(cron="@hourly").next_after(at(2026, 5, 5, 10, 1)) == at(2026, 5, 5, 11)


def test_spring_forward_a_daily_job_in_the_gap_runs_once_at_the_gap_end() -> None:
    # Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    rule = Recurrence(cron="30 2 * * *", tz="Europe/Paris")
    assert fires(rule, at(2026, 3, 28, 12), 2) == [
        at(2026, 3, 29, 1, 0),    # 03:00 CEST, the end of the gap
        at(2026, 3, 30, 0, 30),   # 02:30 CEST the day after
    ]


def test_fall_back_a_daily_job_in_the_repeated_hour_runs_once() -> None:
    # Paris, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    rule = Recurrence(cron="30 2 * * *", tz="Europe/Paris")
    assert fires(rule, at(2026, 10, 24, 12), 2) == [
        at(2026, 10, 25, 0, 30),  # 02:30 CEST, the first copy only
        at(2026, 10, 26, 1, 30),  # 02:30 CET the day after
    ]


def test_fall_back_an_hourly_job_runs_for_both_copies_of_the_repeated_hour() -> None:
    rule = Recurrence(cron="0 * * * *", tz="Europe/Paris")
    assert fires(rule, at(2026, 10, 24, 23, 30), 3) == [
        at(2026, 10, 25, 0),  # 02:00 CEST
        at(2026, 10, 25, 1),  # 02:00 CET, the repeated hour
        at(2026, 10, 25, 2),  # 03:00 CET
    ]


def test_lord_howe_half_hour_shift() -> None:
    # Australia/Lord_Howe moves by 30 minutes: +10:30 standard, +11:00 in summer.
    # 2026-10-04 02:00 -> 02:30: a daily 02:15 runs once, at 02:30 (+11:00).
    spring = Recurrence(cron="15 2 * * *", tz="Australia/Lord_Howe")
    assert fires(spring, at(2026, 10, 3, 0), 2) == [at(2026, 10, 3, 15, 30), at(2026, 10, 4, 15, 15)]
    # 2026-04-05 02:00 -> 01:30: a daily 01:45 runs once, at its first copy (+11:00).
    autumn = Recurrence(cron="45 1 * * *", tz="Australia/Lord_Howe")
    assert fires(autumn, at(2026, 4, 4, 0), 2) == [at(2026, 4, 4, 14, 45), at(2026, 4, 5, 15, 15)]


def test_an_on_time_fire_runs_and_moves_to_the_next() -> None:
    rule = Recurrence(every=60)
    assert plan(rule, 600.0, 600.004).fires == (600.0,)
    p = plan(rule, 600.0, 600.0 + GRACE)
    assert p.fires == (600.0,) and p.next_due == 660.0 and p.missed == 0


def test_missed_fires_follow_the_catchup_policy() -> None:
    now = 1000.0 + 5 * 60 + 7  # every manager was down from 1000 to 1307: fires at 1000, 1060, ... 1300
    skip = plan(Recurrence(every=60, offset=40), 1000.0, now)
    assert skip.fires == () and skip.next_due == 1360.0 and skip.missed == 6
    latest = plan(Recurrence(every=60, offset=40, catchup="latest"), 1000.0, now)
    assert latest.fires == (1300.0,) and latest.next_due == 1360.0 and latest.missed == 5
    every = plan(Recurrence(every=60, offset=40, catchup="all"), 1000.0, now)
    assert every.fires == (1000.0, 1060.0, 1120.0, 1180.0, 1240.0, 1300.0) and every.missed == 0
    capped = plan(Recurrence(every=60, offset=40, catchup="all", max_catchup=2), 1000.0, now)
    assert capped.fires == (1240.0, 1300.0) and capped.missed == 4


@pytest.mark.parametrize(("options", "message"), [
    ({"cron": "61 * * * *"}, "bad minute field '61'"),
    ({"cron": "0 25 * * *"}, "bad hour field '25'"),
    ({"cron": "0 0 * 13 *"}, "bad month field '13'"),
    ({"cron": "0 0 * * 1 2"}, "has 6 field(s); it needs 5"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"every": 0}, "every must be positive"),
    ({"every": -5}, "every must be positive"),
    ({"every": 60, "offset": 60}, "offset must be at least 0 and smaller than every"),
    ({"every": 60, "catchup": "some"}, "unknown catch-up policy 'some'"),
    ({}, "every= or cron="),
    ({"every": 60, "cron": "* * * * *"}, "every= or cron="),
    ({"every": 60, "tz": "Europe/Paris"}, "tz is for cron"),
])
def test_bad_schedules_are_refused_saying_why(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Recurrence(**options)
    assert message in str(info.value)
