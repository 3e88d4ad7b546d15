"""Managers' report pages (``/tempo/reports/...``) and their JSON and CSV (``/tempo/api/v1/reports/...``).

Each report is computed once by ``tempo.reports``; the page, the JSON answer and the CSV export
show the same rows. CSV: the JSON route with ``?format=csv&table=<name>`` (one table per file).
Who sees what: Airflow's auth manager must let the user read human tasks (GET on ``HITL_DETAIL``);
then Airflow's ops and admins see everything, heads of unit their units and sub-units, everyone
else their own tasks and requests.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tempo import reports, wording
from tempo.reports import Period, ReportError, Scope
from tempo.store.engine import read_session
from tempo.store.models import utcnow
from tempo.web import URL_PREFIX, airflow_data
from tempo.web.charts import Bar, bar_chart
from tempo.web.common import render
from tempo.web.policy import viewer_scope
from tempo.web.security import CurrentUser, navigation, require_read, user_name

pages = APIRouter(prefix="/reports", include_in_schema=False, dependencies=[Depends(navigation)])
api = APIRouter(prefix="/api/v1/reports", tags=["Reports"])

_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or one table as CSV with ?format=csv"}
}
FromDate = Query(default=None, alias="from", description="first day, YYYY-MM-DD (default: 30 days ago)")
ToDate = Query(default=None, alias="to", description="last day, YYYY-MM-DD (default: today)")
Format = Query(default=None, description="json (default) or csv")
Table = Query(default=None, description="with format=csv: which table (default: the first)")


# --- the parts every report shares ----------------------------------------------------------------


def field_errors(exc: ReportError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": exc.errors})


class BadFilters(ReportError):
    """Filters a report cannot use: 422 with a message per filter; a page shows the report's
    filters again with the messages (``web/app.py``)."""

    def __init__(self, errors: dict[str, str], user: str, scope: Scope) -> None:
        super().__init__(errors)
        self.user = user
        self.scope = scope


@dataclass
class Viewer:
    session: Session
    scope: Scope
    name: str
    now: datetime
    #: people, units and counterparties by name on the pages (the JSON and CSV keep their codes)
    names: wording.Names


@contextmanager
def viewer(user: Any) -> Iterator[Viewer]:
    require_read(user)
    with read_session() as session:
        scope = viewer_scope(session, user)
        try:
            yield Viewer(
                session=session,
                scope=scope,
                name=user_name(user),
                now=utcnow(),
                names=wording.Names(session),
            )
        except ReportError as exc:
            raise BadFilters(exc.errors, user_name(user), scope) from None


@dataclass
class Report:
    """A computed report: its tables (name -> (row type, rows)) and what the page and JSON add."""

    name: str
    period: Period | None
    tables: dict[str, tuple[type, list[Any]]]
    extra: dict[str, Any] = field(default_factory=dict)


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    first_day: date = Field(alias="from")
    last_day: date = Field(alias="to")


def _period_json(period: Period | None) -> PeriodOut | None:
    return (
        None
        if period is None
        else PeriodOut.model_validate({"from": period.first_day, "to": period.last_day})
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def csv_response(report: Report, table: str | None) -> Response:
    name = table or next(iter(report.tables))
    if name not in report.tables:
        raise field_errors(ReportError({"table": f"Unknown table; use one of {', '.join(report.tables)}."}))
    row_type, rows = report.tables[name]
    columns = reports.columns_of(row_type)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        values = reports.row_dict(row)
        writer.writerow([_cell(values[c]) for c in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="tempo-{report.name}-{name}.csv"'},
    )


def answer(report: Report, out: Callable[[Report], BaseModel], fmt: str | None, table: str | None) -> Any:
    if fmt in (None, "", "json"):
        return out(report)
    if fmt == "csv":
        return csv_response(report, table)
    raise field_errors(ReportError({"format": "Use json or csv."}))


def _query(request: Request, **changes: Any) -> str:
    params = {k: v for k, v in request.query_params.items() if k not in changes}
    params.update({k: v for k, v in changes.items() if v not in (None, "")})
    return urlencode(params)


def duration(seconds: float | None) -> str:
    """A duration a person reads at a glance: 45 min, 6 h 30 min, 3 d 4 h."""
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def page(request: Request, template: str, view: Viewer, report: Report, **context: Any) -> Response:
    api_path = request.url.path.replace(f"{URL_PREFIX}/reports/", f"{URL_PREFIX}/api/v1/reports/", 1)
    return render(
        request,
        template,
        {
            "user": view.name,
            "report": report,
            "period": report.period,
            "now": view.now,
            "duration": duration,
            "csv": lambda table: f"{api_path}?{_query(request, format='csv', table=table)}",
            "query": lambda **changes: _query(request, **changes),
            "scope": view.scope,
            "names": view.names,
            **context,
        },
    )


# --- the funnel ------------------------------------------------------------------------------------


def funnel_report(
    view: Viewer, first: str | None, last: str | None, template: str | None, group_by: str | None
) -> Report:
    period = reports.parse_period(first, last, view.now.date())
    reports.check_template(view.session, template)
    grouping = reports.parse_choice("group_by", group_by, reports.GROUP_BY_VALUES)
    result = reports.funnel(view.session, view.scope, period, view.now, template=template, group_by=grouping)
    return Report(
        "funnel",
        period,
        {
            "steps": (reports.FunnelRow, result.rows),
            "open_closed": (reports.OpenClosedRow, result.open_closed),
            "conversion": (reports.ConversionRow, result.conversion),
        },
        {"group_by": grouping},
    )


class FunnelOut(BaseModel):
    period: PeriodOut | None
    group_by: str | None
    steps: list[reports.FunnelRow]
    open_closed: list[reports.OpenClosedRow]
    conversion: list[reports.ConversionRow]


def _funnel_out(report: Report) -> FunnelOut:
    return FunnelOut(
        period=_period_json(report.period),
        group_by=report.extra["group_by"],
        **{name: rows for name, (_, rows) in report.tables.items()},
    )


@api.get("/funnel", summary="Funnel: running processes by step", response_model=FunnelOut, responses=_CSV)
def funnel_json(
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
    group_by: str | None = Query(default=None, description="manager, unit or counterparty"),
    format: str | None = Format,
    table: str | None = Table,
) -> Any:
    with viewer(user) as view:
        return answer(funnel_report(view, first, last, template, group_by), _funnel_out, format, table)


@pages.get("")
def reports_home(user: CurrentUser) -> RedirectResponse:
    require_read(user)
    return RedirectResponse(f"{URL_PREFIX}/reports/funnel", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@pages.get("/funnel")
def funnel_page(
    request: Request,
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
    group_by: str | None = None,
) -> Response:
    with viewer(user) as view:
        report = funnel_report(view, first, last, template, group_by)
        rows: list[reports.FunnelRow] = report.tables["steps"][1]
        conversions: list[reports.ConversionRow] = report.tables["conversion"][1]
        step_names = {
            t: airflow_data.step_names(t)
            for t in {r.template for r in rows} | {c.template for c in conversions}
        }

        def step(template: str, task_id: str) -> str:
            """A step by its title: the funnel's rows name it by task_id, for programs."""
            if task_id == reports.NO_HUMAN_STEP:
                return "An automated step"
            return step_names[template].get(task_id) or wording.humanize(task_id)

        per_step: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in rows:
            per_step[row.template][step(row.template, row.step)] += row.processes
        charts = {
            name: bar_chart(
                [Bar(label, n) for label, n in sorted(steps.items(), key=lambda item: -item[1])],
                title=f"Running {name} processes by step",
                colour="funnel",
                centred=True,
            )
            for name, steps in sorted(per_step.items())
        }
        conversion: dict[str, list[Bar]] = defaultdict(list)
        for c in conversions:
            conversion[c.template].append(
                Bar(step(c.template, c.step), c.reached, f"{c.reached} · {c.conversion_pct} %")
            )
        conversion_charts = {
            name: bar_chart(
                bars, title=f"{name}: processes reaching each step", colour="funnel", centred=True
            )
            for name, bars in sorted(conversion.items())
        }
        return page(
            request,
            "reports_funnel.html",
            view,
            report,
            charts=charts,
            conversion_charts=conversion_charts,
            filters={"template": template or "", "group_by": group_by or ""},
            group_by_values=reports.GROUP_BY_VALUES,
            step=step,
        )


# --- the overdue board -----------------------------------------------------------------------------


def overdue_report(view: Viewer, template: str | None) -> Report:
    reports.check_template(view.session, template)
    board = reports.overdue(view.session, view.scope, view.now, template=template)
    return Report(
        "overdue",
        None,
        {
            "tasks": (reports.OverdueTaskRow, board.tasks),
            "by_unit": (reports.OverdueGroupRow, board.by_unit),
            "by_person": (reports.OverdueGroupRow, board.by_person),
        },
        {"total": board.total},
    )


class OverdueOut(BaseModel):
    total: int
    tasks: list[reports.OverdueTaskRow]
    by_unit: list[reports.OverdueGroupRow]
    by_person: list[reports.OverdueGroupRow]


def _overdue_out(report: Report) -> OverdueOut:
    return OverdueOut(
        total=report.extra["total"], **{name: rows for name, (_, rows) in report.tables.items()}
    )


@api.get("/overdue", summary="Overdue tasks by unit and person", response_model=OverdueOut, responses=_CSV)
def overdue_json(
    user: CurrentUser, template: str | None = None, format: str | None = Format, table: str | None = Table
) -> Any:
    with viewer(user) as view:
        return answer(overdue_report(view, template), _overdue_out, format, table)


@pages.get("/overdue")
def overdue_page(request: Request, user: CurrentUser, template: str | None = None) -> Response:
    with viewer(user) as view:
        report = overdue_report(view, template)
        by_unit: list[reports.OverdueGroupRow] = report.tables["by_unit"][1]
        chart = bar_chart(
            [
                Bar(view.names.unit(g.unit), g.overdue, f"{g.overdue} · up to {duration(g.max_late_s)} late")
                for g in by_unit
            ],
            title="Overdue tasks by unit",
            colour="bad",
        )
        return page(
            request, "reports_overdue.html", view, report, chart=chart, filters={"template": template or ""}
        )


# --- performance -----------------------------------------------------------------------------------


def performance_report(view: Viewer, first: str | None, last: str | None, template: str | None) -> Report:
    period = reports.parse_period(first, last, view.now.date())
    reports.check_template(view.session, template)
    result = reports.performance(view.session, view.scope, period, view.now, template=template)
    return Report(
        "performance",
        period,
        {"people": (reports.PerformanceRow, result.people), "units": (reports.PerformanceRow, result.units)},
    )


class PerformanceOut(BaseModel):
    period: PeriodOut | None
    people: list[reports.PerformanceRow]
    units: list[reports.PerformanceRow]


def _performance_out(report: Report) -> PerformanceOut:
    return PerformanceOut(
        period=_period_json(report.period), **{name: rows for name, (_, rows) in report.tables.items()}
    )


@api.get(
    "/performance",
    summary="Performance by person and unit",
    response_model=PerformanceOut,
    responses=_CSV,
)
def performance_json(
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
    format: str | None = Format,
    table: str | None = Table,
) -> Any:
    with viewer(user) as view:
        return answer(performance_report(view, first, last, template), _performance_out, format, table)


@pages.get("/performance")
def performance_page(
    request: Request,
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
) -> Response:
    with viewer(user) as view:
        report = performance_report(view, first, last, template)

        def drill(**where: str) -> str:
            assert report.period is not None
            params = {"from": report.period.first_day.isoformat(), "to": report.period.last_day.isoformat()}
            params.update({"template": template} if template else {})
            return f"{URL_PREFIX}/reports/performance/tasks?" + urlencode({**params, **where})

        people: list[reports.PerformanceRow] = report.tables["people"][1]
        units: list[reports.PerformanceRow] = report.tables["units"][1]
        on_time = bar_chart(
            [
                Bar(
                    view.names.person(r.key),
                    r.on_time_pct or 0.0,
                    f"{r.on_time_pct} %",
                    drill(person=r.key, measure="late"),
                )
                for r in people
                if r.on_time_pct is not None
            ],
            title="On time by person (%)",
            max_value=100,
            colour="ok",
        )
        completed = bar_chart(
            [
                Bar(view.names.unit(r.key), r.completed, href=drill(unit=r.key, measure="completed"))
                for r in units
            ],
            title="Completed by unit",
        )
        return page(
            request,
            "reports_performance.html",
            view,
            report,
            on_time_chart=on_time,
            completed_chart=completed,
            drill=drill,
            filters={"template": template or ""},
        )


def tasks_report(
    view: Viewer,
    first: str | None,
    last: str | None,
    person: str | None,
    unit: str | None,
    measure: str | None,
    template: str | None,
) -> Report:
    period = reports.parse_period(first, last, view.now.date())
    reports.check_template(view.session, template)
    chosen = reports.parse_choice("measure", measure, reports.MEASURES)
    rows = reports.performance_tasks(
        view.session,
        view.scope,
        period,
        view.now,
        person=person,
        unit=unit,
        measure=chosen,
        template=template,
    )
    return Report("performance-tasks", period, {"tasks": (reports.TaskRow, rows)})


class TasksOut(BaseModel):
    period: PeriodOut | None
    tasks: list[reports.TaskRow]


def _tasks_out(report: Report) -> TasksOut:
    return TasksOut(period=_period_json(report.period), tasks=report.tables["tasks"][1])


_MEASURE = Query(default=None, description="assigned, completed, rejected, expired, late or open_overdue")


@api.get(
    "/performance/tasks",
    summary="The tasks behind a performance number",
    response_model=TasksOut,
    responses=_CSV,
)
def tasks_json(
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    person: str | None = None,
    unit: str | None = None,
    measure: str | None = _MEASURE,
    template: str | None = None,
    format: str | None = Format,
    table: str | None = Table,
) -> Any:
    with viewer(user) as view:
        report = tasks_report(view, first, last, person, unit, measure, template)
        return answer(report, _tasks_out, format, table)


@pages.get("/performance/tasks")
def tasks_page(
    request: Request,
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    person: str | None = None,
    unit: str | None = None,
    measure: str | None = None,
    template: str | None = None,
) -> Response:
    with viewer(user) as view:
        report = tasks_report(view, first, last, person, unit, measure, template)
        return page(
            request,
            "reports_tasks.html",
            view,
            report,
            filters={
                "person": person or "",
                "unit": unit or "",
                "measure": measure or "",
                "template": template or "",
            },
        )


# --- the process log -------------------------------------------------------------------------------


def processes_report(
    view: Viewer,
    first: str | None,
    last: str | None,
    template: str | None,
    process_status: str | None,
    requester: str | None,
    counterparty: str | None,
    limit: int,
    offset: int,
) -> Report:
    period = reports.parse_period(first, last, view.now.date())
    reports.check_template(view.session, template)
    chosen = reports.parse_process_status(process_status)
    log = reports.process_log(
        view.session,
        view.scope,
        period,
        view.now,
        template=template,
        status=chosen,
        requester=requester,
        counterparty=counterparty,
        limit=limit,
        offset=offset,
    )
    return Report(
        "processes",
        period,
        {"processes": (reports.ProcessRow, log.rows), "statuses": (reports.StatusCount, log.statuses)},
        {"total": log.total, "limit": limit, "offset": offset},
    )


class ProcessesOut(BaseModel):
    period: PeriodOut | None
    total: int
    limit: int
    offset: int
    processes: list[reports.ProcessRow]
    statuses: list[reports.StatusCount]


def _processes_out(report: Report) -> ProcessesOut:
    return ProcessesOut.model_validate(
        {
            "period": _period_json(report.period),
            **report.extra,
            **{name: rows for name, (_, rows) in report.tables.items()},
        }
    )


_LIMIT = Query(default=100, ge=1, le=reports.MAX_ROWS)
_OFFSET = Query(default=0, ge=0, le=10_000_000)
_STATUS = Query(default=None, description="running, success or failed")


@api.get("/processes", summary="Process log", response_model=ProcessesOut, responses=_CSV)
def processes_json(
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
    status: str | None = _STATUS,
    requester: str | None = None,
    counterparty: str | None = None,
    limit: int = _LIMIT,
    offset: int = _OFFSET,
    format: str | None = Format,
    table: str | None = Table,
) -> Any:
    with viewer(user) as view:
        report = processes_report(view, first, last, template, status, requester, counterparty, limit, offset)
        return answer(report, _processes_out, format, table)


@pages.get("/processes")
def processes_page(
    request: Request,
    user: CurrentUser,
    first: str | None = FromDate,
    last: str | None = ToDate,
    template: str | None = None,
    status: str | None = None,
    requester: str | None = None,
    counterparty: str | None = None,
    limit: int = _LIMIT,
    offset: int = _OFFSET,
) -> Response:
    with viewer(user) as view:
        report = processes_report(view, first, last, template, status, requester, counterparty, limit, offset)
        statuses: list[reports.StatusCount] = report.tables["statuses"][1]
        here = f"{URL_PREFIX}/reports/processes"
        chart = bar_chart(
            [
                Bar(
                    wording.status_word(s.status),
                    s.processes,
                    href=f"{here}?{_query(request, status=s.status)}",
                )
                for s in statuses
            ],
            title="Processes by status",
        )
        return page(
            request,
            "reports_processes.html",
            view,
            report,
            chart=chart,
            filters={
                "template": template or "",
                "status": status or "",
                "requester": requester or "",
                "counterparty": counterparty or "",
            },
        )
