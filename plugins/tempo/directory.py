"""The directory: people, units, roles, counterparties and absences, and who is responsible for
what.

It is loaded from a YAML file (``tempo directory load FILE``) and answers the questions assignment
and escalation ask: who heads this unit, who is this person's manager, who holds this role, who is
responsible for this counterparty, who stands in for someone who is away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tempo.absences import DAG_ID_PATTERN, AbsenceSpec, in_scope, problems, window
from tempo.store.models import Absence, Counterparty, Person, PersonRole, Role, Unit, utcnow
from tempo.yaml_lines import YamlFileError, validate_yaml

if TYPE_CHECKING:
    from tempo.working_hours import WorkingCalendar

_CODE = r"^[A-Za-z0-9_.\-]{1,64}$"
_EMAIL = r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CalendarEntry(_Entry):
    """A unit's working hours; see ``tempo.working_hours``."""

    timezone: str = "UTC"
    days: str = "mon-fri"
    hours: str = "09:00-17:00"
    holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> CalendarEntry:
        from tempo.working_hours import CalendarError, WorkingCalendar

        try:
            WorkingCalendar.parse(
                timezone=self.timezone, days=self.days, hours=self.hours, holidays=self.holidays
            )
        except (CalendarError, ValueError, KeyError) as exc:  # ZoneInfo raises KeyError subclasses
            raise ValueError(f"invalid calendar: {exc}") from None
        return self


class UnitEntry(_Entry):
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = None
    head: str | None = None
    calendar: CalendarEntry | None = None


class RoleEntry(_Entry):
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=200)


class PersonEntry(_Entry):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@\-]{1,150}$")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=_EMAIL, max_length=320)
    unit: str | None = None
    manager: str | None = None
    roles: list[str] = Field(default_factory=list)
    active: bool = True


class CounterpartyEntry(_Entry):
    code: str = Field(pattern=_CODE)
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=_EMAIL, max_length=320)
    responsible: str | None = None


class AbsenceEntry(_Entry):
    """A person away on ``first_day`` to ``last_day`` (their calendar's days), ``deputy`` standing in,
    for every process or the templates ``scope`` names."""

    person: str
    first_day: date
    last_day: date
    deputy: str
    scope: list[str] | None = Field(default=None, min_length=1)
    move_tasks: bool = False

    @model_validator(mode="after")
    def _valid_scope(self) -> AbsenceEntry:
        import re

        bad = [d for d in self.scope or [] if not re.fullmatch(DAG_ID_PATTERN, d)]
        if bad:
            raise ValueError(f"scope: {bad[0]!r} is not a dag_id")
        return self

    def spec(self) -> AbsenceSpec:
        scope = tuple(self.scope) if self.scope is not None else None
        return AbsenceSpec(self.person, self.first_day, self.last_day, self.deputy, scope, self.move_tasks)


class DirectoryFile(_Entry):
    units: list[UnitEntry] = Field(default_factory=list)
    roles: list[RoleEntry] = Field(default_factory=list)
    people: list[PersonEntry] = Field(default_factory=list)
    counterparties: list[CounterpartyEntry] = Field(default_factory=list)
    absences: list[AbsenceEntry] = Field(default_factory=list)


class DirectoryError(YamlFileError):
    """A directory file that cannot be loaded; the message names the file, line and field."""


@dataclass(frozen=True)
class LoadSummary:
    units: int
    roles: int
    people: int
    counterparties: int
    absences: int = 0


@dataclass(frozen=True)
class Known:
    """What the store already holds, so a file may reference entries loaded earlier (and its
    absences keep clear of those already recorded)."""

    units: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    absences: tuple[AbsenceSpec, ...] = ()


def parse_directory(text: str, source: str = "<directory>", known: Known = Known()) -> DirectoryFile:
    """Validate a directory document; every problem is reported with its line and field."""
    parsed, where = validate_yaml(text, source, DirectoryFile, DirectoryError)
    problems = [where(loc, msg) for loc, msg in _reference_problems(parsed, known)]
    if problems:
        raise DirectoryError(problems)
    return parsed


def _duplicates(values: list[str]) -> set[str]:
    seen: set[str] = set()
    return {v for v in values if v in seen or seen.add(v)}  # type: ignore[func-returns-value]


def _reference_problems(doc: DirectoryFile, known: Known) -> list[tuple[tuple[Any, ...], str]]:
    """Every reference must resolve to an entry of the file or one already in the store."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    units = {u.code for u in doc.units} | known.units
    people = {p.username for p in doc.people} | known.people
    roles = {r.code for r in doc.roles} | known.roles
    for section, key, entries in (
        ("units", "code", [u.code for u in doc.units]),
        ("roles", "code", [r.code for r in doc.roles]),
        ("people", "username", [p.username for p in doc.people]),
        ("counterparties", "code", [c.code for c in doc.counterparties]),
    ):
        for dup in _duplicates(entries):
            index = max(i for i, v in enumerate(entries) if v == dup)
            problems.append(((section, index, key), f"duplicate {key} {dup!r}"))
    for i, unit in enumerate(doc.units):
        if unit.parent and unit.parent not in units:
            problems.append((("units", i, "parent"), f"unknown unit {unit.parent!r}"))
        if unit.head and unit.head not in people:
            problems.append((("units", i, "head"), f"unknown person {unit.head!r}"))
    for i, person in enumerate(doc.people):
        if person.unit and person.unit not in units:
            problems.append((("people", i, "unit"), f"unknown unit {person.unit!r}"))
        if person.manager and person.manager not in people:
            problems.append((("people", i, "manager"), f"unknown person {person.manager!r}"))
        problems.extend(
            (("people", i, "roles", j), f"unknown role {role!r}")
            for j, role in enumerate(person.roles)
            if role not in roles
        )
    # A login without a directory username is mapped by its address: one person per address.
    # Requests find a counterparty by its email: one card per address.
    for section, emails in (
        ("people", [(p.email or "").strip().lower() for p in doc.people]),
        ("counterparties", [(cp.email or "").lower() for cp in doc.counterparties]),
    ):
        for dup in _duplicates([e for e in emails if e]):
            index = max(i for i, v in enumerate(emails) if v == dup)
            problems.append(((section, index, "email"), f"duplicate email {dup!r}"))
    for i, cp in enumerate(doc.counterparties):
        if cp.responsible and cp.responsible not in people:
            problems.append((("counterparties", i, "responsible"), f"unknown person {cp.responsible!r}"))
    problems.extend(_unit_cycles(doc))
    problems.extend(_absence_problems(doc, people, known))
    return problems


def _absence_problems(
    doc: DirectoryFile, people: set[str], known: Known
) -> list[tuple[tuple[Any, ...], str]]:
    """Each absence names known people and keeps the rules of ``absences.problems`` beside those
    recorded before it, in the store and earlier in the file."""
    found: list[tuple[tuple[Any, ...], str]] = []
    specs = [entry.spec() for entry in doc.absences]
    for i, spec in enumerate(specs):
        unknown = [
            (key, who) for key, who in (("person", spec.person), ("deputy", spec.deputy)) if who not in people
        ]
        found.extend((("absences", i, key), f"unknown person {who!r}") for key, who in unknown)
        if not unknown:
            others = [k for k in known.absences if not any(k.same_record(s) for s in specs)] + specs[:i]
            found.extend((("absences", i, key), msg) for key, msg in problems(spec, others).items())
    return found


def _unit_cycles(doc: DirectoryFile) -> list[tuple[tuple[Any, ...], str]]:
    parent = {u.code: u.parent for u in doc.units}
    problems = []
    for i, unit in enumerate(doc.units):
        seen, code = {unit.code}, unit.parent
        while code is not None and code in parent:
            if code in seen:
                problems.append((("units", i, "parent"), f"unit {unit.code!r} is its own ancestor"))
                break
            seen.add(code)
            code = parent[code]
    return problems


def load_directory(session: Session, doc: DirectoryFile) -> LoadSummary:
    """Upsert the document into the store. Idempotent: loading the same file twice changes nothing."""
    # Units first without heads (people need units), then people, then the heads.
    for entry in doc.units:
        unit = session.get(Unit, entry.code) or Unit(code=entry.code)
        unit.name, unit.parent_code = entry.name, None
        unit.calendar = entry.calendar.model_dump(mode="json") if entry.calendar else None
        session.add(unit)
    session.flush()
    for entry in doc.units:
        session.get_one(Unit, entry.code).parent_code = entry.parent
    for role_entry in doc.roles:
        role = session.get(Role, role_entry.code) or Role(code=role_entry.code)
        role.name = role_entry.name
        session.add(role)
    session.flush()
    for person_entry in doc.people:
        person = session.get(Person, person_entry.username) or Person(username=person_entry.username)
        person.name, person.email, person.unit_code, person.active = (
            person_entry.name,
            person_entry.email,
            person_entry.unit,
            person_entry.active,
        )
        person.manager_username = None
        session.add(person)
    session.flush()
    for person_entry in doc.people:
        session.get_one(Person, person_entry.username).manager_username = person_entry.manager
        session.execute(delete(PersonRole).where(PersonRole.username == person_entry.username))
        session.add_all(
            PersonRole(username=person_entry.username, role_code=code)
            for code in dict.fromkeys(person_entry.roles)
        )
    for entry in doc.units:
        session.get_one(Unit, entry.code).head_username = entry.head
    for cp_entry in doc.counterparties:
        cp = session.get(Counterparty, cp_entry.code) or Counterparty(code=cp_entry.code)
        cp.name, cp.email, cp.responsible_username = cp_entry.name, cp_entry.email, cp_entry.responsible
        session.add(cp)
    session.flush()
    for absence_entry in doc.absences:
        spec = absence_entry.spec()
        same = session.scalar(
            select(Absence).where(
                Absence.username == spec.person,
                Absence.first_day == spec.first_day,
                Absence.last_day == spec.last_day,
            )
        )
        store_absence(session, spec, recorded_by=None, row=same)
    session.flush()
    return LoadSummary(
        len(doc.units), len(doc.roles), len(doc.people), len(doc.counterparties), len(doc.absences)
    )


def store_absence(
    session: Session, spec: AbsenceSpec, *, recorded_by: str | None, row: Absence | None = None
) -> Absence:
    """Write ``spec`` (already checked) as a new absence, or over ``row``; its moments are its days
    in the person's time zone."""
    person = session.get_one(Person, spec.person)
    starts_at, ends_at = window(
        spec.first_day, spec.last_day, calendar_for(session, person.unit_code).timezone
    )
    row = row or Absence(username=spec.person, first_day=spec.first_day, last_day=spec.last_day)
    row.deputy, row.scope, row.move_tasks = (
        spec.deputy,
        list(spec.scope) if spec.scope else None,
        spec.move_tasks,
    )
    row.starts_at, row.ends_at, row.recorded_by = starts_at, ends_at, recorded_by
    session.add(row)
    return row


def recorded_absences(session: Session) -> tuple[AbsenceSpec, ...]:
    """The absences not over yet: those a new one must keep clear of."""
    rows = session.scalars(select(Absence).where(Absence.ends_at > utcnow()))
    return tuple(AbsenceSpec.of(row) for row in rows)


def load_directory_file(path: str | Path, url: str | None = None) -> LoadSummary:
    """Validate the whole file, then write it in one transaction: a bad file changes nothing."""
    from tempo.store.engine import write_session

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read: {exc.strerror}") from None
    with write_session(url) as session:
        known = Known(
            units=frozenset(session.scalars(select(Unit.code))),
            roles=frozenset(session.scalars(select(Role.code))),
            people=frozenset(session.scalars(select(Person.username))),
            absences=recorded_absences(session),
        )
        doc = parse_directory(text, source=str(path), known=known)
        return load_directory(session, doc)


# --- questions the engine asks ---------------------------------------------------------------------


def get_person(session: Session, username: str) -> Person | None:
    return session.get(Person, username)


def active_person(session: Session, username: str) -> Person | None:
    """The person unless unknown or deactivated (``active: false``): only active people are
    assigned, notified and escalated to."""
    person = session.get(Person, username)
    return person if person is not None and person.active else None


def person_by_email(session: Session, email: str) -> Person | None:
    """The one person with this address (case ignored); nobody when it is unknown or shared."""
    matches = session.scalars(
        select(Person).where(func.lower(Person.email) == email.strip().lower()).limit(2)
    ).all()
    return matches[0] if len(matches) == 1 else None


def absence_of(
    session: Session, username: str, dag_id: str | None, at: datetime | None = None
) -> Absence | None:
    """The person's absence on at ``at`` (now) that covers a task of ``dag_id``, if any."""
    at = at or utcnow()
    rows = session.scalars(
        select(Absence).where(Absence.username == username, Absence.starts_at <= at, Absence.ends_at > at)
    )
    return next((row for row in rows if in_scope(row.scope, dag_id)), None)


def stand_in(session: Session, person: Person, dag_id: str | None, at: datetime | None = None) -> Person:
    """Who acts for ``person`` on a task of ``dag_id`` at ``at`` (now): the person, or while they are
    away their deputy, or the deputy's deputy while the deputy is away too. A deputy who is
    deactivated stands in for nobody, and a circle (recorded absences refuse one, but their days may
    shift with a calendar) ends at the last person before it closes."""
    seen = {person.username}
    while (absence := absence_of(session, person.username, dag_id, at)) is not None:
        deputy = active_person(session, absence.deputy)
        if deputy is None or deputy.username in seen:
            break
        seen.add(deputy.username)
        person = deputy
    return person


def stood_in_for(
    session: Session, username: str, at: datetime | None = None
) -> list[tuple[str, tuple[str, ...] | None]]:
    """Whom ``username`` stands in for at ``at`` (now), each with the templates it covers (None:
    every process): the tasks those absent people still hold are theirs to act on meanwhile."""
    at = at or utcnow()
    away = session.scalars(select(Absence).where(Absence.starts_at <= at, Absence.ends_at > at)).all()
    covered: list[tuple[str, tuple[str, ...] | None]] = []
    for absence in away:
        person = session.get_one(Person, absence.username)
        if absence.scope is None:
            if stand_in(session, person, None, at).username == username:
                covered.append((person.username, None))
            continue
        dags = tuple(d for d in absence.scope if stand_in(session, person, d, at).username == username)
        if dags:
            covered.append((person.username, dags))
    return covered


def manager_of(session: Session, username: str) -> Person | None:
    """The person's active manager; without one (none named, or deactivated), the active head of
    their unit or of the nearest unit above."""
    person = session.get(Person, username)
    if person is None:
        return None
    manager = active_person(session, person.manager_username) if person.manager_username else None
    if manager is not None:
        return manager
    unit_code = person.unit_code
    while unit_code:
        unit = session.get(Unit, unit_code)
        if unit is None:
            return None
        head = active_person(session, unit.head_username) if unit.head_username else None
        if head is not None and head.username != username:
            return head
        unit_code = unit.parent_code
    return None


def get_unit(session: Session, unit_code: str) -> Unit | None:
    return session.get(Unit, unit_code)


def head_of_unit(session: Session, unit_code: str) -> Person | None:
    """The unit's head; when the head is deactivated, the active head of the nearest unit above."""
    unit = session.get(Unit, unit_code)
    while unit is not None and unit.head_username:
        head = active_person(session, unit.head_username)
        if head is not None:
            return head
        unit = session.get(Unit, unit.parent_code) if unit.parent_code else None
    return None


def people_with_role(session: Session, role_code: str) -> list[Person]:
    return list(
        session.scalars(
            select(Person)
            .join(PersonRole, PersonRole.username == Person.username)
            .where(PersonRole.role_code == role_code, Person.active.is_(True))
            .order_by(Person.username)
        )
    )


def people_in_unit(session: Session, unit_code: str) -> list[Person]:
    return list(
        session.scalars(
            select(Person)
            .where(Person.unit_code == unit_code, Person.active.is_(True))
            .order_by(Person.username)
        )
    )


def responsible_for(session: Session, counterparty_code: str) -> Person | None:
    """The active person responsible for the counterparty."""
    cp = session.get(Counterparty, counterparty_code)
    if cp is None or not cp.responsible_username:
        return None
    return active_person(session, cp.responsible_username)


def roles_of(session: Session, username: str) -> list[str]:
    return list(session.scalars(select(PersonRole.role_code).where(PersonRole.username == username)))


def calendar_for(session: Session, unit_code: str | None) -> WorkingCalendar:
    """The working hours of a unit: its own, else its parent's, else ``[tempo]``'s."""
    from tempo import config
    from tempo.working_hours import WorkingCalendar

    code = unit_code
    while code:
        unit = session.get(Unit, code)
        if unit is None:
            break
        if unit.calendar:
            return WorkingCalendar.from_dict(unit.calendar)
        code = unit.parent_code
    return config.default_calendar()
