"""Working-hours calendars: when people work, so due dates count business time.

A calendar has a timezone, working days, working hours (one or more intervals a day) and holidays.
``add(start, duration)`` counts ``duration`` of working time from ``start``: 1 working day (8 hours)
from Friday 16:00 with Monday-Friday 09:00-17:00 ends Monday 16:00. Arithmetic happens in the
calendar's timezone on wall-clock times, so a day with a DST change still has its 09:00-17:00.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS = 3660  # ten years of searching for working time means the calendar has none


class CalendarError(ValueError):
    pass


def _parse_hours(text: str) -> tuple[tuple[time, time], ...]:
    """``"09:00-12:00,13:00-17:00"`` -> intervals."""
    intervals = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", part)
        if not match:
            raise CalendarError(f"working hours {part!r} must look like 09:00-17:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        end = time.max if h2 == 24 and m2 == 0 else time(h2, m2)
        start = time(h1, m1)
        if start >= end:
            raise CalendarError(f"working hours {part!r} end before they start")
        intervals.append((start, end))
    intervals.sort()
    for (_, end), (start, _) in itertools.pairwise(intervals):
        if start < end:
            raise CalendarError("working hours overlap")
    return tuple(intervals)


def _parse_days(text: str) -> frozenset[int]:
    """``"mon-fri"`` or ``"mon,tue,thu"`` -> weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise CalendarError(f"unknown day in {part!r}")
            i, j = DAY_NAMES.index(first), DAY_NAMES.index(last)
            days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAY_NAMES:
            days.add(DAY_NAMES.index(part))
        else:
            raise CalendarError(f"unknown day {part!r}")
    return frozenset(days)


@dataclass(frozen=True)
class WorkingCalendar:
    timezone: str = "UTC"
    days: frozenset[int] = frozenset(range(5))
    hours: tuple[tuple[time, time], ...] = ((time(9), time(17)),)
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # an unknown zone fails here, where the calendar is declared
        if not self.days or not self.hours:
            raise CalendarError("a calendar needs working days and working hours")

    @classmethod
    def parse(
        cls,
        *,
        timezone: str = "UTC",
        days: str = "mon-fri",
        hours: str = "09:00-17:00",
        holidays: Iterable[str | date] = (),
    ) -> WorkingCalendar:
        return cls(
            timezone=timezone,
            days=_parse_days(days),
            hours=_parse_hours(hours),
            holidays=frozenset(h if isinstance(h, date) else date.fromisoformat(str(h)) for h in holidays),
        )

    @classmethod
    def always(cls) -> WorkingCalendar:
        """Every minute counts: plain elapsed time."""
        return cls(days=frozenset(range(7)), hours=((time(0), time.max),))

    def to_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "days": ",".join(DAY_NAMES[d] for d in sorted(self.days)),
            "hours": ",".join(
                f"{s:%H:%M}-{'24:00' if e == time.max else f'{e:%H:%M}'}" for s, e in self.hours
            ),
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkingCalendar:
        return cls.parse(**data)

    # --- arithmetic -------------------------------------------------------------------------------

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of ``day`` as aware datetimes (empty on days off)."""
        if day.weekday() not in self.days or day in self.holidays:
            return []
        zone = self._zone()
        windows = []
        for start, end in self.hours:
            begin = datetime.combine(day, start, zone)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), zone)
                if end == time.max
                else (datetime.combine(day, end, zone))
            )
            windows.append((begin, finish))
        return windows

    def is_working(self, moment: datetime) -> bool:
        local = moment.astimezone(self._zone())
        return any(begin <= local < end for begin, end in self._windows(local.date()))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """``start`` plus ``duration`` of working time (returned in UTC)."""
        if start.tzinfo is None:
            raise CalendarError("calendar arithmetic needs an aware datetime")
        if duration < timedelta(0):
            raise CalendarError("cannot add a negative duration")
        remaining = duration
        local = start.astimezone(self._zone())
        day = local.date()
        for _ in range(_MAX_DAYS):
            for begin, end in self._windows(day):
                if end <= local:
                    continue
                begin = max(begin, local)
                # Elapsed time between aware datetimes of one zone is real time, DST included.
                available = end.astimezone(UTC) - begin.astimezone(UTC)
                if remaining <= available:
                    return (begin.astimezone(UTC) + remaining).astimezone(UTC)
                remaining -= available
            day += timedelta(days=1)
            local = datetime.combine(day, time(0), self._zone())
        raise CalendarError("this calendar has no working time in the next ten years")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much working time lies between two moments (for on-time reports)."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        local_start, local_end = start.astimezone(self._zone()), end.astimezone(self._zone())
        day = local_start.date()
        while day <= local_end.date():
            for begin, finish in self._windows(day):
                lo, hi = max(begin, local_start), min(finish, local_end)
                if lo < hi:
                    total += hi.astimezone(UTC) - lo.astimezone(UTC)
            day += timedelta(days=1)
        return total
