"""Absences and their deputies: the rules an absence must keep, wherever it is recorded (the
absence page, the JSON API, the directory file), and the moments its days stand for.

An absence covers whole days of the person's calendar, ``first_day`` to ``last_day`` both
included, in the time zone of the person's working hours. While it is on, the person's tasks go
to the deputy (``directory.stand_in``), and a deputy who is away too passes them on down the chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tempo.store.models import Absence

#: Who the history names for the hand-overs an absence makes at its start and end.
ABSENCE_ACTOR = "tempo-absences"

#: What a template's dag_id in a scope looks like (Airflow's own rule for DAG ids).
DAG_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"


@dataclass(frozen=True)
class AbsenceSpec:
    """An absence as recorded: whose, which days, who stands in, for which templates (None: all)."""

    person: str
    first_day: date
    last_day: date
    deputy: str
    scope: tuple[str, ...] | None = None
    move_tasks: bool = False

    @classmethod
    def of(cls, row: Absence) -> AbsenceSpec:
        return cls(
            person=row.username,
            first_day=row.first_day,
            last_day=row.last_day,
            deputy=row.deputy,
            scope=tuple(row.scope) if row.scope is not None else None,
            move_tasks=row.move_tasks,
        )

    def same_record(self, other: AbsenceSpec) -> bool:
        """Whether ``other`` is this absence recorded again (a directory file loaded twice)."""
        return (self.person, self.first_day, self.last_day) == (other.person, other.first_day, other.last_day)

    def meets(self, other: AbsenceSpec) -> bool:
        """Whether the two are on on a common day for a common template."""
        days = self.first_day <= other.last_day and other.first_day <= self.last_day
        return days and scopes_meet(self.scope, other.scope)


def scopes_meet(a: Iterable[str] | None, b: Iterable[str] | None) -> bool:
    return a is None or b is None or bool(set(a) & set(b))


def in_scope(scope: Iterable[str] | None, dag_id: str | None) -> bool:
    """Whether an absence of this scope covers a task of ``dag_id`` (one of no template: only an
    absence of every process)."""
    return scope is None or (dag_id is not None and dag_id in scope)


def window(first_day: date, last_day: date, timezone: str) -> tuple[datetime, datetime]:
    """The absence's start and end in UTC: midnight opening ``first_day`` and closing ``last_day``
    in ``timezone``."""
    zone = ZoneInfo(timezone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)

    return midnight(first_day), midnight(last_day + timedelta(days=1))


def problems(spec: AbsenceSpec, others: Iterable[AbsenceSpec]) -> dict[str, str]:
    """What is wrong with recording ``spec`` beside ``others`` (the absences already recorded),
    by field: days out of order, oneself as deputy, an absence of the person's own on the same days
    and templates, and a deputy whose own absences lead back to the person (a cycle)."""
    found: dict[str, str] = {}
    if spec.last_day < spec.first_day:
        found["last_day"] = "The last day comes before the first day."
    if spec.deputy == spec.person:
        found["deputy"] = "Choose someone else as the deputy."
    if found:
        return found
    meeting = [o for o in others if not spec.same_record(o) and spec.meets(o)]
    own = next((o for o in meeting if o.person == spec.person), None)
    if own is not None:
        found["first_day"] = (
            f"{spec.person} is already away from {own.first_day} to {own.last_day} for these processes."
        )
    chain = _chain_back(spec, meeting)
    if chain is not None:
        found["deputy"] = (
            f"{' → '.join([spec.person, *chain])}: the deputies would hand the tasks round in a circle."
        )
    return found


def _chain_back(spec: AbsenceSpec, meeting: list[AbsenceSpec]) -> list[str] | None:
    """The chain of deputies from ``spec.deputy`` back to ``spec.person``, if there is one."""
    deputies: dict[str, list[str]] = {}
    for other in meeting:
        deputies.setdefault(other.person, []).append(other.deputy)
    paths = [[spec.deputy]]
    seen = {spec.deputy}
    while paths:
        path = paths.pop()
        for nxt in deputies.get(path[-1], []):
            if nxt == spec.person:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return None
