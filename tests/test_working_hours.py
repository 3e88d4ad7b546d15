from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tempo.sla import SLA, Escalate, timers
from tempo.working_hours import CalendarError, WorkingCalendar

OFFICE = WorkingCalendar.parse(timezone="UTC", days="mon-fri", hours="09:00-17:00", holidays=["2026-12-25"])
AMSTERDAM = WorkingCalendar.parse(timezone="Europe/Amsterdam", days="mon-fri", hours="09:00-17:00")
SPLIT = WorkingCalendar.parse(timezone="UTC", days="mon-fri", hours="08:30-12:30,13:00-17:00")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [
        (
            OFFICE,
            "2026-11-20 16:00",
            timedelta(hours=8),
            "2026-11-23 16:00",
        ),  # Friday 16:00 + 1 day -> Monday 16:00
        (OFFICE, "2026-11-23 10:00", timedelta(hours=2), "2026-11-23 12:00"),  # within the day
        (OFFICE, "2026-11-23 16:30", timedelta(hours=1), "2026-11-24 09:30"),  # runs over the evening
        (
            OFFICE,
            "2026-11-21 11:00",
            timedelta(hours=1),
            "2026-11-23 10:00",
        ),  # Saturday start waits for Monday
        (OFFICE, "2026-11-23 06:00", timedelta(hours=1), "2026-11-23 10:00"),  # before hours
        (OFFICE, "2026-11-23 17:00", timedelta(minutes=1), "2026-11-24 09:01"),  # exactly at closing
        (OFFICE, "2026-12-24 16:00", timedelta(hours=2), "2026-12-28 10:00"),  # over a holiday and a weekend
        (OFFICE, "2026-11-23 09:00", timedelta(0), "2026-11-23 09:00"),
        (SPLIT, "2026-11-23 12:00", timedelta(hours=1), "2026-11-23 13:30"),  # lunch does not count
        # Amsterdam: 09:00 local is 08:00 UTC in winter and 07:00 UTC in summer.
        (
            AMSTERDAM,
            "2026-03-27 15:00",
            timedelta(hours=2),
            "2026-03-30 08:00",
        ),  # over the spring DST weekend
        (
            AMSTERDAM,
            "2026-10-23 14:00",
            timedelta(hours=2),
            "2026-10-26 09:00",
        ),  # over the autumn DST weekend
        (WorkingCalendar.always(), "2026-11-21 23:00", timedelta(hours=3), "2026-11-22 02:00"),
    ],
    ids=[
        "friday-plus-a-day",
        "same-day",
        "overnight",
        "weekend-start",
        "before-hours",
        "at-closing",
        "holiday",
        "zero",
        "lunch-break",
        "dst-spring",
        "dst-autumn",
        "always",
    ],
)
def test_business_time_addition(calendar, start, duration, expected):
    assert calendar.add(utc(start), duration) == utc(expected)


def test_working_time_between_counts_only_working_hours():
    assert OFFICE.working_time_between(utc("2026-11-20 16:00"), utc("2026-11-23 16:00")) == timedelta(hours=8)
    assert OFFICE.working_time_between(utc("2026-11-23 16:00"), utc("2026-11-23 10:00")) == timedelta(0)


def test_is_working():
    assert OFFICE.is_working(utc("2026-11-23 09:00"))
    assert not OFFICE.is_working(utc("2026-11-23 17:00"))
    assert not OFFICE.is_working(utc("2026-11-22 12:00"))
    assert not OFFICE.is_working(utc("2026-12-25 12:00"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": "17:00-09:00"}, "end before"),
        ({"hours": "9-5"}, "look like"),
        ({"days": "funday"}, "unknown day"),
        ({"hours": "09:00-13:00,12:00-17:00"}, "overlap"),
    ],
    ids=["reversed", "format", "day", "overlap"],
)
def test_bad_calendars_are_refused(kwargs, message):
    with pytest.raises(CalendarError, match=message):
        WorkingCalendar.parse(**kwargs)


def test_calendar_round_trips_through_json():
    assert WorkingCalendar.from_dict(SPLIT.to_dict()) == SPLIT
    assert WorkingCalendar.from_dict(OFFICE.to_dict()) == OFFICE


def test_sla_due_date_with_frozen_time_counts_business_time():
    policy = SLA(due=timedelta(hours=8), calendar=OFFICE)
    with time_machine.travel(utc("2026-11-20 16:00"), tick=False):
        assert policy.due_at(datetime.now(UTC)) == utc("2026-11-23 16:00")
    plain = SLA(due=timedelta(hours=8), business_time=False)
    with time_machine.travel(utc("2026-11-20 16:00"), tick=False):
        assert plain.due_at(datetime.now(UTC)) == utc("2026-11-21 00:00")


def test_timers_in_order_with_names_and_kinds():
    policy = SLA(
        due=timedelta(seconds=20),
        remind_before=timedelta(seconds=10),
        repeat_every=timedelta(minutes=5),
        max_reminders=2,
        escalations=(
            Escalate(after=timedelta(seconds=10)),
            Escalate(after=timedelta(hours=1), to="role:customer_service"),
        ),
        expire_after=timedelta(days=1),
        business_time=False,
    )
    due = utc("2026-11-23 10:00")
    schedule = timers(policy, due)
    assert [t.name for t in schedule] == [
        "remind-before",
        "due",
        "escalate-1",
        "remind-overdue-1",
        "remind-overdue-2",
        "escalate-2",
        "expire",
    ]
    assert schedule[0].at == due - timedelta(seconds=10) and schedule[2].at == due + timedelta(seconds=10)
    assert SLA.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    "kwargs",
    [
        {"due": timedelta(0)},
        {"due": timedelta(hours=1), "on_expiry": "explode"},
        {"due": timedelta(hours=1), "remind_before": timedelta(0)},
    ],
    ids=["zero-due", "bad-expiry", "zero-reminder"],
)
def test_bad_policies_fail_when_declared(kwargs):
    with pytest.raises(ValueError):
        SLA(**kwargs)


def test_bad_escalation_target():
    with pytest.raises(ValueError, match="escalate to"):
        Escalate(after=timedelta(0), to="the boss")
