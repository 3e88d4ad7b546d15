"""SLA policies of human steps: when a task is due, who is reminded, who it escalates to, how it ends.

A policy is declared on the step (``HumanStep(sla=SLA(...))``), stored with the task as JSON
(``to_dict``), and turned into a schedule of timers (``timers``); the task row keeps the moment of
the next one (``sla_next_at``), by which the clock (``tempo.clock``) finds what is due. Each timer
fires at most once per task: ``tempo.sla_timers`` records it in ``tempo_sla_fired`` (primary key
task + timer) in the same transaction as its emails, so a restarted or second clock never repeats
one and never loses one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from tempo.working_hours import WorkingCalendar

TimerKind = Literal["remind", "due", "escalate", "expire"]

#: Who the history, the task and the reports name for what time did rather than a person: SLA timers
#: (reminders, escalations, a task expired with its default outcome) and missed process deadlines.
SLA_ACTOR = "tempo-sla"


@dataclass(frozen=True)
class Escalate:
    """When the task is ``after`` overdue, tell ``to`` (and with ``reassign``, give it to them).

    ``to``: ``"manager"`` (the holder's manager), ``"unit_head"`` (head of the task's unit),
    ``"role:<code>"`` or ``"person:<username>"``.
    """

    after: timedelta
    to: str = "manager"
    reassign: bool = False

    def __post_init__(self) -> None:
        if self.after < timedelta(0):
            raise ValueError("escalate after a non-negative time past due")
        kind, _, value = self.to.partition(":")
        if self.to not in ("manager", "unit_head") and not (kind in ("role", "person") and value):
            raise ValueError(
                f"escalate to 'manager', 'unit_head', 'role:<code>' or 'person:<username>', not {self.to!r}"
            )


@dataclass(frozen=True)
class SLA:
    """How long the assignee has, and what happens as time runs out.

    :param due: time allowed, counted in working hours of the calendar (``business_time``).
    :param remind_before: remind the assignee this long before the due date.
    :param repeat_every: after the due date, remind again this often ...
    :param max_reminders: ... at most this many times.
    :param escalations: ``Escalate`` levels, each once, ordered by how late they fire.
    :param expire_after: when this overdue, the task ends ...
    :param on_expiry: ... failing the step (``"fail"``) or with a default outcome (``"outcome:<name>"``).
    :param calendar: working hours for ``due``; None means the unit's calendar, else ``[tempo]``'s.
    :param business_time: count ``due`` in working hours (True) or in plain elapsed time (False).
    """

    due: timedelta
    remind_before: timedelta | None = None
    repeat_every: timedelta | None = None
    max_reminders: int = 3
    escalations: tuple[Escalate, ...] = ()
    expire_after: timedelta | None = None
    on_expiry: str = "fail"
    calendar: WorkingCalendar | None = None
    business_time: bool = True

    def __post_init__(self) -> None:
        if self.due <= timedelta(0):
            raise ValueError("SLA due must be a positive duration")
        for name in ("remind_before", "repeat_every", "expire_after"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"SLA {name} must be a positive duration")
        if self.on_expiry != "fail" and not (self.on_expiry.startswith("outcome:") and self.on_expiry[8:]):
            raise ValueError("on_expiry is 'fail' or 'outcome:<name>'")
        if self.max_reminders < 0:
            raise ValueError("max_reminders cannot be negative")
        object.__setattr__(self, "escalations", tuple(sorted(self.escalations, key=lambda e: e.after)))

    @property
    def default_outcome(self) -> str | None:
        return self.on_expiry[8:] if self.on_expiry.startswith("outcome:") else None

    def due_at(self, start: datetime, calendar: WorkingCalendar | None = None) -> datetime:
        if not self.business_time:
            return start + self.due
        return (self.calendar or calendar or WorkingCalendar.always()).add(start, self.due)

    def to_dict(self) -> dict[str, Any]:
        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return {
            "due_seconds": self.due.total_seconds(),
            "remind_before_seconds": seconds(self.remind_before),
            "repeat_every_seconds": seconds(self.repeat_every),
            "max_reminders": self.max_reminders,
            "escalations": [
                {"after_seconds": e.after.total_seconds(), "to": e.to, "reassign": e.reassign}
                for e in self.escalations
            ],
            "expire_after_seconds": seconds(self.expire_after),
            "on_expiry": self.on_expiry,
            "calendar": self.calendar.to_dict() if self.calendar else None,
            "business_time": self.business_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SLA:
        def span(value: float | None) -> timedelta | None:
            return timedelta(seconds=value) if value is not None else None

        return cls(
            due=timedelta(seconds=data["due_seconds"]),
            remind_before=span(data.get("remind_before_seconds")),
            repeat_every=span(data.get("repeat_every_seconds")),
            max_reminders=int(data.get("max_reminders", 3)),
            escalations=tuple(
                Escalate(
                    after=timedelta(seconds=e["after_seconds"]), to=e["to"], reassign=bool(e.get("reassign"))
                )
                for e in data.get("escalations", [])
            ),
            expire_after=span(data.get("expire_after_seconds")),
            on_expiry=data.get("on_expiry", "fail"),
            calendar=WorkingCalendar.from_dict(data["calendar"]) if data.get("calendar") else None,
            business_time=bool(data.get("business_time", True)),
        )


@dataclass(frozen=True, order=True)
class Timer:
    at: datetime
    name: str = field(compare=False)
    kind: TimerKind = field(compare=False)
    escalation: int | None = field(default=None, compare=False)


def timers(policy: SLA, due_at: datetime) -> list[Timer]:
    """Every timer of a task due at ``due_at``, in firing order."""
    schedule = [Timer(due_at, "due", "due")]
    if policy.remind_before is not None:
        schedule.append(Timer(due_at - policy.remind_before, "remind-before", "remind"))
    if policy.repeat_every is not None:
        schedule.extend(
            Timer(due_at + policy.repeat_every * n, f"remind-overdue-{n}", "remind")
            for n in range(1, policy.max_reminders + 1)
        )
    schedule.extend(
        Timer(due_at + level.after, f"escalate-{i + 1}", "escalate", escalation=i)
        for i, level in enumerate(policy.escalations)
    )
    if policy.expire_after is not None:
        schedule.append(Timer(due_at + policy.expire_after, "expire", "expire"))
    return sorted(schedule)


def next_timer_at(policy: SLA, due_at: datetime, fired: Collection[str] = ()) -> datetime | None:
    """When the first timer not in ``fired`` is due; None once every timer has fired."""
    return next((timer.at for timer in timers(policy, due_at) if timer.name not in fired), None)
