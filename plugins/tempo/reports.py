"""Managers' reports: the funnel, the overdue board, performance by person and unit, the process log.

One function per report returns typed rows; the pages, the JSON API and the CSV export all call the
same function. Aggregation happens in SQL (GROUP BY, conditional sums). Medians and p90s are the
continuous percentile (linear interpolation, PostgreSQL's ``percentile_cont``): PostgreSQL computes
them in the query; SQLite has no percentile function, so there the report fetches the one column it
needs and interpolates the same way in Python. Both backends give the same numbers.

Definitions the pages and the README repeat:

- A task's *performer* is who answered it (``completed_by``, unless the SLA engine closed it), else
  who holds it (``claimed_by``, else ``assignee``). Its *unit* is the performer's unit, else the
  task's queue unit (``candidate_unit``).
- *On time*: answered (completed or rejected) at or before ``due_at``; a task without ``due_at`` is
  on time when answered. An expired task is never on time. On-time % = on time / (answered + expired).
- *Completion time*: ``completed_at - created_at`` of answered tasks.
- A process's *unit* is its own ``unit_code``, else its requester's unit.
- *Escalation level*: how many escalation timers fired for the task (``tempo_sla_fired``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, false, func, literal, or_, select, true, tuple_
from sqlalchemy.orm import Session, aliased

from tempo.sla import SLA_ACTOR
from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    Counterparty,
    Person,
    PersonRole,
    Process,
    ProcessStatus,
    SlaFired,
    Task,
    TaskStatus,
    Unit,
)

#: At most this many rows in a listing (process log page, drill-down, overdue tasks).
MAX_ROWS = 500
#: The step of a running process that has no human step waiting (an automated step is running).
NO_HUMAN_STEP = "(automated)"
NONE_LABEL = "(none)"

GROUP_BY_VALUES: tuple[str, ...] = ("manager", "unit", "counterparty")
MEASURES: tuple[str, ...] = ("assigned", "completed", "rejected", "expired", "late", "open_overdue")


class ReportError(ValueError):
    """Invalid report filters: ``errors`` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- who sees what ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a viewer may see: everything (admins), or their units' work plus their own.

    ``roles`` and ``unit`` (the viewer's own) name the queues they work from: the reports count
    work by who did it, but a process record may also be opened by whoever its waiting step's
    queue holds (``visible_processes``).
    """

    everything: bool = False
    units: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    username: str | None = None
    roles: frozenset[str] = frozenset()
    unit: str | None = None

    @classmethod
    def admin(cls) -> Scope:
        return cls(everything=True)


def scope_for(session: Session, username: str | None, *, admin: bool) -> Scope:
    """Admins see everything; heads of unit their units and sub-units; everyone else their own work.

    ``username`` is an active person of the directory, or ``None`` for a login that is nobody there.
    """
    if admin:
        return Scope.admin()
    if username is None:
        return Scope()
    units = unit_closure(
        session, set(session.scalars(select(Unit.code).where(Unit.head_username == username)))
    )
    people = (
        set(session.scalars(select(Person.username).where(Person.unit_code.in_(units)))) if units else set()
    )
    return Scope(
        units=frozenset(units),
        people=frozenset(people | {username}),
        username=username,
        roles=frozenset(session.scalars(select(PersonRole.role_code).where(PersonRole.username == username))),
        unit=session.scalar(select(Person.unit_code).where(Person.username == username)),
    )


def visible_processes(scope: Scope) -> ColumnElement[bool]:
    """The processes a viewer may open, with their steps and files: those the reports show them
    (requested by them or by their units), those with a step they perform or one their units'
    people perform, those with a step waiting in one of their queues (role and unit), and those
    with a step a deputy holds for them."""
    if scope.everything:
        return true()
    requester_unit = (
        select(_Requester.unit_code).where(_Requester.username == Process.requester).scalar_subquery()
    )
    performer_unit = select(_Performer.unit_code).where(_Performer.username == _performer()).scalar_subquery()
    steps = select(Task.process_id).where(
        or_(
            _task_scope(scope, func.coalesce(performer_unit, Task.candidate_unit)),
            _in_queue(scope),
            # An absent person still reads the tasks a deputy holds for them.
            Task.acting_for == scope.username if scope.username else false(),
        )
    )
    return or_(_process_scope(scope, func.coalesce(Process.unit_code, requester_unit)), Process.id.in_(steps))


def _in_queue(scope: Scope) -> ColumnElement[bool]:
    """Tasks of a queue the viewer is in, open or closed (``web.policy.may_act`` decides who may
    take an open one)."""
    if scope.username is None:
        return false()
    role = Task.candidate_role.is_(None) | Task.candidate_role.in_(sorted(scope.roles))
    unit = Task.candidate_unit.is_(None) | (
        Task.candidate_unit == scope.unit if scope.unit is not None else false()
    )
    queued = Task.candidate_role.is_not(None) | Task.candidate_unit.is_not(None)
    return and_(queued, role, unit)


def may_act_for(
    session: Session, username: str, *, person: str | None = None, counterparty: str | None = None
) -> bool:
    """Whether ``username`` may name ``person`` (or ``counterparty``) as the one a process is for:
    themself, and the people of the units they head and of the units below; a counterparty when the
    person responsible for it is one of those. A login that is no active person names nobody else."""
    me = session.get(Person, username)
    if me is None or not me.active:
        return person == username and counterparty is None
    people = scope_for(session, username, admin=False).people
    if person is not None and person not in people:
        return False
    if counterparty is not None:
        card = session.get(Counterparty, counterparty)
        return card is not None and card.responsible_username in people
    return True


def unit_closure(session: Session, roots: set[str]) -> set[str]:
    """``roots`` and every unit below them."""
    children: dict[str | None, list[str]] = defaultdict(list)
    for code, parent in session.execute(select(Unit.code, Unit.parent_code)):
        children[parent].append(code)
    found, todo = set(), list(roots)
    while todo:
        code = todo.pop()
        if code not in found:
            found.add(code)
            todo.extend(children.get(code, []))
    return found


# --- filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``[start, end)``; built from inclusive calendar dates (UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def days(cls, first: date, last: date) -> Period:
        return cls(
            datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)
        )

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()


MAX_PERIOD_DAYS = 3660
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(9998, 12, 31)


def parse_period(first: str | None, last: str | None, today: date, default_days: int = 30) -> Period:
    """``from``/``to`` as YYYY-MM-DD (both inclusive); the last ``default_days`` days by default."""
    errors: dict[str, str] = {}
    parsed: dict[str, date | None] = {}
    for name, value in (("from", first), ("to", last)):
        parsed[name] = None
        if value:
            try:
                parsed[name] = date.fromisoformat(value)
            except ValueError:
                errors[name] = "Use a date like 2026-01-31."
                continue
            # Periods are computed a few days either side; near year 1 or 9999 that overflows.
            if not EARLIEST_DAY <= parsed[name] <= LATEST_DAY:  # type: ignore[operator]
                errors[name] = f"Use a date between {EARLIEST_DAY} and {LATEST_DAY}."
    if errors:
        raise ReportError(errors)
    end = parsed["to"] or today
    start = parsed["from"] or end - timedelta(days=default_days - 1)
    if start > end:
        raise ReportError({"to": "The end date is before the start date."})
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise ReportError({"from": f"Choose at most {MAX_PERIOD_DAYS} days."})
    return Period.days(start, end)


def check_template(session: Session, template: str | None) -> None:
    if template and session.scalar(select(literal(1)).where(Process.template == template).limit(1)) is None:
        raise ReportError({"template": "Unknown process template."})


def parse_process_status(value: str | None) -> ProcessStatus | None:
    if not value:
        return None
    try:
        return ProcessStatus(value)
    except ValueError:
        raise ReportError({"status": "Unknown status; use running, success or failed."}) from None


def parse_choice(name: str, value: str | None, choices: Sequence[str]) -> str | None:
    if not value:
        return None
    if value not in choices:
        raise ReportError({name: f"Unknown value; use one of {', '.join(choices)}."})
    return value


# --- percentiles -----------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The continuous percentile of sorted values (linear interpolation, as ``percentile_cont``)."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _epoch(column: Any) -> ColumnElement[Any]:
    return func.extract("epoch", column)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


# --- task attribution ------------------------------------------------------------------------------

_Performer = aliased(Person, name="performer_person")


def _performer() -> ColumnElement[Any]:
    answered_by = and_(Task.completed_by.is_not(None), Task.completed_by != SLA_ACTOR)
    return case((answered_by, Task.completed_by), else_=func.coalesce(Task.claimed_by, Task.assignee))


def _role_units() -> Any:
    """Each role queue's unit: where most of the role's active people work (ties: the first code),
    so that a task waiting in the queue counts under the unit that will answer it."""
    member = aliased(Person, name="role_member")
    ranked = (
        select(
            PersonRole.role_code,
            member.unit_code,
            func.row_number()
            .over(partition_by=PersonRole.role_code, order_by=(func.count().desc(), member.unit_code))
            .label("rank"),
        )
        .select_from(PersonRole)
        .join(member, member.username == PersonRole.username)
        .where(member.active.is_(True), member.unit_code.is_not(None))
        .group_by(PersonRole.role_code, member.unit_code)
        .subquery("ranked_role_unit")
    )
    return select(ranked.c.role_code, ranked.c.unit_code).where(ranked.c.rank == 1).subquery("role_unit")


_RoleUnit = _role_units()


def _task_unit() -> ColumnElement[Any]:
    return func.coalesce(_Performer.unit_code, Task.candidate_unit, _RoleUnit.c.unit_code)


def _task_scope(scope: Scope, unit: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """Tasks in ``scope``; ``unit`` is the task's unit when the query does not join its performer."""
    if scope.everything:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if scope.units:
        clauses.append((_task_unit() if unit is None else unit).in_(sorted(scope.units)))
    if scope.username:
        clauses.append(_performer() == scope.username)
    return or_(*clauses) if clauses else false()


def _tasks_with_performer(*columns: Any) -> Any:
    performer = _performer()
    return (
        select(*columns)
        .select_from(Task)
        .outerjoin(_Performer, _Performer.username == performer)
        .outerjoin(_RoleUnit, _RoleUnit.c.role_code == Task.candidate_role)
    )


_Requester = aliased(Person, name="requester_person")


def _process_unit() -> ColumnElement[Any]:
    return func.coalesce(Process.unit_code, _Requester.unit_code)


#: Not correlated with the task a report's query joins.
_HeldTask = aliased(Task, name="held_task")


def _process_scope(scope: Scope, unit: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """Processes in ``scope``; ``unit`` is the process's unit when the query does not join its requester."""
    if scope.everything:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if scope.units:
        clauses.append((_process_unit() if unit is None else unit).in_(sorted(scope.units)))
    if scope.username:
        clauses.append(Process.requester == scope.username)
        # The processes whose tasks the viewer holds or answered are their own work too.
        held = select(_HeldTask.process_id).where(
            or_(
                _HeldTask.assignee == scope.username,
                _HeldTask.claimed_by == scope.username,
                _HeldTask.completed_by == scope.username,
            )
        )
        clauses.append(Process.id.in_(held))
    return or_(*clauses) if clauses else false()


def _active() -> ColumnElement[bool]:
    return Task.status.in_(list(ACTIVE_TASK_STATUSES))


def _between(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


# --- rows ------------------------------------------------------------------------------------------


def row_dict(row: Any) -> dict[str, Any]:
    """A row as JSON-safe values (timestamps as ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in asdict(row).items()}


def columns_of(row_type: type) -> list[str]:
    return [f.name for f in fields(row_type)]


@dataclass(frozen=True)
class FunnelRow:
    template: str
    step: str
    group: str | None
    processes: int
    #: Of the template's running processes (in the same group); parallel steps can add up to more than 100.
    share_pct: float | None
    median_age_s: float | None
    median_wait_s: float | None


@dataclass(frozen=True)
class OpenClosedRow:
    template: str
    running: int
    started: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class ConversionRow:
    template: str
    step: str
    reached: int
    #: Of the processes that reached the step before (the started ones, for the first step).
    conversion_pct: float | None


@dataclass
class Funnel:
    period: Period
    group_by: str | None
    rows: list[FunnelRow] = field(default_factory=list)
    open_closed: list[OpenClosedRow] = field(default_factory=list)
    conversion: list[ConversionRow] = field(default_factory=list)


def _funnel_group(group_by: str | None) -> Any:
    if group_by == "manager":
        return Counterparty.responsible_username
    if group_by == "unit":
        return _process_unit()
    if group_by == "counterparty":
        return Process.counterparty_code
    return literal(None)


def funnel(
    session: Session,
    scope: Scope,
    period: Period,
    now: datetime,
    *,
    template: str | None = None,
    group_by: str | None = None,
) -> Funnel:
    """Running processes by template and waiting step; open vs closed and step-to-step conversion."""
    group = _funnel_group(group_by).label("grp")
    step = func.coalesce(Task.task_id, literal(NO_HUMAN_STEP)).label("step")
    where = [Process.status == ProcessStatus.RUNNING, _process_scope(scope)]
    if template:
        where.append(Process.template == template)

    def base(*columns: Any) -> Any:
        query = (
            select(*columns)
            .select_from(Process)
            .outerjoin(_Requester, _Requester.username == Process.requester)
            .outerjoin(Task, and_(Task.process_id == Process.id, _active()))
        )
        if group_by == "manager":
            query = query.outerjoin(Counterparty, Counterparty.code == Process.counterparty_code)
        return query.where(*where)

    postgres = _postgres(session)
    aggregates: list[Any] = [func.count(distinct(Process.id)).label("n")]
    if postgres:
        aggregates += [
            func.percentile_cont(0.5).within_group(_epoch(Process.started_at)).label("started_p50"),
            func.percentile_cont(0.5).within_group(_epoch(Task.created_at)).label("waiting_p50"),
        ]
    counted = session.execute(
        base(Process.template, step, group, *aggregates).group_by(Process.template, step, group)
    )
    cells = {(r.template, r.step, r.grp): r for r in counted}
    running = {
        (r.template, r.grp): r.n
        for r in session.execute(
            base(Process.template, group, func.count(distinct(Process.id)).label("n")).group_by(
                Process.template, group
            )
        )
    }
    ages: dict[tuple[Any, ...], tuple[float | None, float | None]] = {}
    now_s = now.timestamp()
    if postgres:
        for key, r in cells.items():
            ages[key] = (
                None if r.started_p50 is None else now_s - float(r.started_p50),
                None if r.waiting_p50 is None else now_s - float(r.waiting_p50),
            )
    else:
        # Same rows as PostgreSQL's percentile over the join (a mapped step's tasks each count).
        started: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        waiting: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        for r in session.execute(base(Process.template, step, group, Process.started_at, Task.created_at)):
            key = (r.template, r.step, r.grp)
            started[key].append(r.started_at.timestamp())
            if r.created_at is not None:
                waiting[key].append(r.created_at.timestamp())
        for key in cells:
            p_started = percentile(sorted(started[key]), 0.5)
            p_waiting = percentile(sorted(waiting[key]), 0.5)
            ages[key] = (
                None if p_started is None else now_s - p_started,
                None if p_waiting is None else now_s - p_waiting,
            )
    rows = [
        FunnelRow(
            template=t,
            step=s,
            group=(g or NONE_LABEL) if group_by else None,
            processes=r.n,
            share_pct=_share(r.n, running[(t, g)]),
            median_age_s=_seconds(ages[(t, s, g)][0]),
            median_wait_s=_seconds(ages[(t, s, g)][1]),
        )
        for (t, s, g), r in cells.items()
    ]
    rows.sort(key=lambda r: (r.template, r.group or "", -r.processes, r.step))
    result = Funnel(period=period, group_by=group_by, rows=rows)
    result.open_closed = _open_closed(session, scope, period, template)
    result.conversion = _conversion(session, scope, period, template)
    return result


def _open_closed(session: Session, scope: Scope, period: Period, template: str | None) -> list[OpenClosedRow]:
    finished_in = _between(Process.finished_at, period)
    query = (
        select(
            Process.template,
            func.sum(case((Process.status == ProcessStatus.RUNNING, 1), else_=0)).label("running"),
            func.sum(case((_between(Process.started_at, period), 1), else_=0)).label("started"),
            func.sum(case((and_(Process.status == ProcessStatus.SUCCESS, finished_in), 1), else_=0)).label(
                "ok"
            ),
            func.sum(case((and_(Process.status == ProcessStatus.FAILED, finished_in), 1), else_=0)).label(
                "failed"
            ),
        )
        .select_from(Process)
        .outerjoin(_Requester, _Requester.username == Process.requester)
        .where(
            _process_scope(scope),
            or_(Process.status == ProcessStatus.RUNNING, _between(Process.started_at, period), finished_in),
        )
        .group_by(Process.template)
        .order_by(Process.template)
    )
    if template:
        query = query.where(Process.template == template)
    return [
        OpenClosedRow(
            template=r.template, running=r.running, started=r.started, succeeded=r.ok, failed=r.failed
        )
        for r in session.execute(query)
    ]


def _conversion(session: Session, scope: Scope, period: Period, template: str | None) -> list[ConversionRow]:
    """Of the processes started in the period, how many reached each step."""
    where = [_process_scope(scope), _between(Process.started_at, period)]
    if template:
        where.append(Process.template == template)
    started = {
        r.template: r.n
        for r in session.execute(
            select(Process.template, func.count().label("n"))
            .select_from(Process)
            .outerjoin(_Requester, _Requester.username == Process.requester)
            .where(*where)
            .group_by(Process.template)
        )
    }
    # A step reached by a process has exactly one task with map_index -1 (unmapped) or 0 (the first
    # of a mapped step): the store keeps one task per (run, step, map index). Counting those counts
    # processes without COUNT(DISTINCT). A task of a process started in the period was created in
    # it too: that bound lets the created_at index narrow the tasks before the join.
    reached = session.execute(
        select(
            Process.template,
            Task.task_id,
            func.count().label("n"),
            func.min(Task.created_at).label("first_seen"),
        )
        .select_from(Process)
        .outerjoin(_Requester, _Requester.username == Process.requester)
        .join(Task, Task.process_id == Process.id)
        .where(*where, Task.created_at >= period.start, Task.map_index <= 0)
        .group_by(Process.template, Task.task_id)
    ).all()
    # Most reached first; a tie goes to the step that appeared first (the earlier one in the route).
    by_template: dict[str, list[tuple[int, datetime, str]]] = defaultdict(list)
    for r in reached:
        by_template[r.template].append((-r.n, _as_utc(r.first_seen), r.task_id))
    rows = []
    for name in sorted(by_template):
        before = started.get(name, 0)
        for minus_n, _, step_id in sorted(by_template[name]):
            n = -minus_n
            rows.append(
                ConversionRow(template=name, step=step_id, reached=n, conversion_pct=_share(n, before))
            )
            before = n
    return rows


# --- overdue board ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueTaskRow:
    task_id: int
    title: str
    process_id: int
    template: str
    person: str | None
    unit: str | None
    due_at: datetime
    late_s: float
    escalation_level: int


@dataclass(frozen=True)
class OverdueGroupRow:
    unit: str
    person: str
    overdue: int
    max_late_s: float
    escalated: int
    max_escalation_level: int


@dataclass
class OverdueBoard:
    total: int
    by_unit: list[OverdueGroupRow] = field(default_factory=list)
    by_person: list[OverdueGroupRow] = field(default_factory=list)
    tasks: list[OverdueTaskRow] = field(default_factory=list)


def _escalation_levels() -> Any:
    return (
        select(SlaFired.task_id, func.count().label("level"))
        .where(SlaFired.timer.like("escalate-%"))
        .group_by(SlaFired.task_id)
        .subquery("escalations")
    )


def overdue(session: Session, scope: Scope, now: datetime, *, template: str | None = None) -> OverdueBoard:
    """Tasks still in an inbox past their due date, by unit and person, most overdue first."""
    levels = _escalation_levels()
    level = func.coalesce(levels.c.level, 0)
    performer, unit = _performer(), _task_unit()
    where = [_active(), Task.due_at.is_not(None), Task.due_at < now, _task_scope(scope)]
    if template:
        where.append(Task.dag_id == template)

    def base(*columns: Any) -> Any:
        return _tasks_with_performer(*columns).outerjoin(levels, levels.c.task_id == Task.id).where(*where)

    now_s = now.timestamp()

    def groups(*keys: Any) -> list[OverdueGroupRow]:
        labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
        query = base(
            *labelled,
            func.count().label("n"),
            func.min(Task.due_at).label("oldest"),
            func.sum(case((level > 0, 1), else_=0)).label("escalated"),
            func.max(level).label("top"),
        ).group_by(*labelled)
        rows = [
            OverdueGroupRow(
                unit=(r.k0 or NONE_LABEL),
                person=(r.k1 or NONE_LABEL) if len(keys) > 1 else "",
                overdue=r.n,
                max_late_s=_seconds(now_s - _as_utc(r.oldest).timestamp()) or 0.0,
                escalated=r.escalated,
                max_escalation_level=r.top,
            )
            for r in session.execute(query)
        ]
        return sorted(rows, key=lambda g: (-g.overdue, -g.max_late_s, g.unit, g.person))

    by_unit = groups(unit)
    tasks = [
        OverdueTaskRow(
            task_id=r.id,
            title=r.title,
            process_id=r.process_id,
            template=r.dag_id,
            person=r.person,
            unit=r.unit,
            due_at=r.due_at,
            late_s=_seconds(now_s - r.due_at.timestamp()) or 0.0,
            escalation_level=r.level,
        )
        for r in session.execute(
            base(
                Task.id,
                Task.title,
                Task.process_id,
                Task.dag_id,
                Task.due_at,
                performer.label("person"),
                unit.label("unit"),
                level.label("level"),
            )
            .order_by(Task.due_at, Task.id)
            .limit(MAX_ROWS)
        )
    ]
    return OverdueBoard(
        total=sum(g.overdue for g in by_unit), by_unit=by_unit, by_person=groups(unit, performer), tasks=tasks
    )


def _as_utc(value: Any) -> datetime:
    """An aggregate's timestamp: PostgreSQL returns it aware, SQLite as text or a naive datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- performance -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceRow:
    #: The person's username, or the unit's code.
    key: str
    unit: str | None
    assigned: int
    completed: int
    rejected: int
    expired: int
    on_time: int
    on_time_pct: float | None
    median_completion_s: float | None
    p90_completion_s: float | None
    open_overdue: int


@dataclass
class Performance:
    period: Period
    people: list[PerformanceRow] = field(default_factory=list)
    units: list[PerformanceRow] = field(default_factory=list)


def _measures(period: Period, now: datetime) -> dict[str, ColumnElement[bool]]:
    finished = _between(Task.completed_at, period)
    answered = and_(Task.status.in_([TaskStatus.COMPLETED, TaskStatus.REJECTED]), finished)
    return {
        "assigned": _between(Task.created_at, period),
        "completed": and_(Task.status == TaskStatus.COMPLETED, finished),
        "rejected": and_(Task.status == TaskStatus.REJECTED, finished),
        "expired": and_(Task.status == TaskStatus.EXPIRED, finished),
        "answered": answered,
        "on_time": and_(answered, or_(Task.due_at.is_(None), Task.completed_at <= Task.due_at)),
        "late": or_(
            and_(answered, Task.due_at.is_not(None), Task.completed_at > Task.due_at),
            and_(Task.status == TaskStatus.EXPIRED, finished),
        ),
        "open_overdue": and_(_active(), Task.due_at.is_not(None), Task.due_at < now),
    }


def _in_period_or_overdue(measures: dict[str, ColumnElement[bool]], period: Period) -> ColumnElement[bool]:
    # Spelled as three index-friendly ranges so PostgreSQL can OR three index scans.
    return or_(measures["assigned"], _between(Task.completed_at, period), measures["open_overdue"])


def performance(
    session: Session, scope: Scope, period: Period, now: datetime, *, template: str | None = None
) -> Performance:
    """Per person and per unit: assigned, answered, expired, on-time %, completion time, open overdue."""
    measures = _measures(period, now)
    where = [_task_scope(scope), _in_period_or_overdue(measures, period)]
    if template:
        where.append(Task.dag_id == template)
    performer, unit = _performer(), _task_unit()
    counts = [
        func.sum(case((measures[name], 1), else_=0)).label(name)
        for name in ("assigned", "completed", "rejected", "expired", "answered", "on_time", "open_overdue")
    ]
    # (person or None for a unit row, unit) -> the row's counts and its completion-time percentiles
    cells: dict[tuple[Any, Any], tuple[Any, float | None, float | None]] = {}
    if _postgres(session):
        # One pass over the period's tasks for people and units alike (GROUPING SETS), sorting
        # narrow rows: flags and seconds computed first.
        seconds = case((measures["answered"], _epoch(Task.completed_at - Task.created_at)), else_=None)
        names = ("assigned", "completed", "rejected", "expired", "answered", "on_time", "open_overdue")
        narrow = (
            _tasks_with_performer(
                performer.label("person"),
                unit.label("unit"),
                *(case((measures[name], 1), else_=0).label(name) for name in names),
                seconds.label("seconds"),
            )
            .where(*where)
            .subquery("narrow")
        )
        c = narrow.c
        query = select(
            c.person,
            c.unit,
            func.grouping(c.person).label("unit_row"),
            *(func.sum(c[name]).label(name) for name in names),
            func.percentile_cont(0.5).within_group(c.seconds).label("p50"),
            func.percentile_cont(0.9).within_group(c.seconds).label("p90"),
        ).group_by(func.grouping_sets(tuple_(c.person, c.unit), tuple_(c.unit)))
        for r in session.execute(query):
            key = (None if r.unit_row else r.person or NONE_LABEL, r.unit)
            cells[key] = (r, r.p50, r.p90)
    else:
        for keys in ((performer, unit), (literal(None), unit)):
            labelled = [keys[0].label("person"), keys[1].label("unit")]
            durations: dict[tuple[Any, Any], list[float]] = defaultdict(list)
            fetched = _tasks_with_performer(*labelled, Task.created_at, Task.completed_at).where(
                *where, measures["answered"]
            )
            for r in session.execute(fetched):
                durations[(r.person, r.unit)].append((r.completed_at - r.created_at).total_seconds())
            grouped = _tasks_with_performer(*labelled, *counts).where(*where).group_by(*keys)
            for r in session.execute(grouped):
                values = sorted(durations.get((r.person, r.unit), []))
                unit_row = keys[0] is not performer
                key = (None if unit_row else r.person or NONE_LABEL, r.unit)
                cells[key] = (r, percentile(values, 0.5), percentile(values, 0.9))
    people: list[PerformanceRow] = []
    units: list[PerformanceRow] = []
    for (person, unit_code), (r, p50, p90) in cells.items():
        row = PerformanceRow(
            key=person if person is not None else unit_code or NONE_LABEL,
            unit=unit_code,
            assigned=r.assigned,
            completed=r.completed,
            rejected=r.rejected,
            expired=r.expired,
            on_time=r.on_time,
            on_time_pct=_share(r.on_time, r.answered + r.expired),
            median_completion_s=_seconds(p50),
            p90_completion_s=_seconds(p90),
            open_overdue=r.open_overdue,
        )
        (units if person is None else people).append(row)
    order = lambda row: (row.key == NONE_LABEL, row.key, row.unit or "")  # noqa: E731
    return Performance(period=period, people=sorted(people, key=order), units=sorted(units, key=order))


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    title: str
    process_id: int
    template: str
    status: str
    person: str | None
    unit: str | None
    created_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    completion_s: float | None
    on_time: bool | None


def performance_tasks(
    session: Session,
    scope: Scope,
    period: Period,
    now: datetime,
    *,
    person: str | None = None,
    unit: str | None = None,
    measure: str | None = None,
    template: str | None = None,
) -> list[TaskRow]:
    """The tasks behind one cell of the performance table (newest first, at most ``MAX_ROWS``)."""
    measures = _measures(period, now)
    where = [_task_scope(scope), measures[measure] if measure else _in_period_or_overdue(measures, period)]
    for value, column in ((person, _performer()), (unit, _task_unit())):
        if value == NONE_LABEL:
            where.append(column.is_(None))
        elif value:
            where.append(column == value)
    if template:
        where.append(Task.dag_id == template)
    query = (
        _tasks_with_performer(Task, _performer().label("person"), _task_unit().label("unit"))
        .where(*where)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(MAX_ROWS)
    )
    rows = []
    for task, who, where_unit in session.execute(query):
        answered = (
            task.status in (TaskStatus.COMPLETED, TaskStatus.REJECTED) and task.completed_at is not None
        )
        rows.append(
            TaskRow(
                task_id=task.id,
                title=task.title,
                process_id=task.process_id,
                template=task.dag_id,
                status=task.status.value,
                person=who,
                unit=where_unit,
                created_at=task.created_at,
                due_at=task.due_at,
                completed_at=task.completed_at,
                completion_s=_seconds((task.completed_at - task.created_at).total_seconds())
                if answered
                else None,
                on_time=(task.due_at is None or task.completed_at <= task.due_at)
                if answered
                else (False if task.status == TaskStatus.EXPIRED else None),
            )
        )
    return rows


# --- process log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRow:
    process_id: int
    template: str
    title: str
    business_key: str | None
    status: str
    requester: str | None
    counterparty: str | None
    unit: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float
    current_step: str | None


@dataclass(frozen=True)
class StatusCount:
    status: str
    processes: int


@dataclass
class ProcessLog:
    total: int
    statuses: list[StatusCount] = field(default_factory=list)
    rows: list[ProcessRow] = field(default_factory=list)


def process_log(
    session: Session,
    scope: Scope,
    period: Period,
    now: datetime,
    *,
    template: str | None = None,
    status: ProcessStatus | None = None,
    requester: str | None = None,
    counterparty: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> ProcessLog:
    """Processes started in the period, newest first, with their status, duration and current step."""
    where = [_process_scope(scope), _between(Process.started_at, period)]
    for value, column in ((template, Process.template), (requester, Process.requester)):
        if value:
            where.append(column == value)
    if counterparty:
        where.append(Process.counterparty_code == counterparty)

    def base(*columns: Any) -> Any:
        return (
            select(*columns)
            .select_from(Process)
            .outerjoin(_Requester, _Requester.username == Process.requester)
            .where(*where)
        )

    statuses = [
        StatusCount(status=r.status.value, processes=r.n)
        for r in session.execute(
            base(Process.status, func.count().label("n")).group_by(Process.status).order_by(Process.status)
        )
    ]
    if status is not None:
        where.append(Process.status == status)
    total = sum(s.processes for s in statuses if status is None or s.status == status.value)
    query = (
        base(Process, _process_unit().label("unit"))
        .order_by(Process.started_at.desc(), Process.id.desc())
        .limit(min(limit, MAX_ROWS))
        .offset(offset)
    )
    rows = [
        ProcessRow(
            process_id=p.id,
            template=p.template,
            title=p.title,
            business_key=p.business_key,
            status=p.status.value,
            requester=p.requester,
            counterparty=p.counterparty_code,
            unit=unit,
            started_at=p.started_at,
            finished_at=p.finished_at,
            duration_s=_seconds(((p.finished_at or now) - p.started_at).total_seconds()) or 0.0,
            current_step=p.current_step,
        )
        for p, unit in session.execute(query)
    ]
    return ProcessLog(total=total, statuses=statuses, rows=rows)
