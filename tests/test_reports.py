"""Report numbers against a small hand-built store whose every count, median and p90 is worked out
below, on SQLite and on PostgreSQL (the two compute percentiles differently and must agree).

The clock stands at 2026-03-10 12:00 UTC; the period is 1-10 March.

    P1 deal  ann  ACME    started 03-01 running  T1 qualify ann done 2 h (due +4 h, on time)
                                                 T2 approve bob open, due 03-02 00:00, escalated twice
    P2 deal  bob  GLOBEX  started 03-02 running  T3 qualify ann done 6 h (due +3 h, late)
                                                 T4 approve bob done 24 h (no due date: on time)
                                                 T5 sign    queue sales_north, open, due 03-11
    P3 deal  ann          started 03-04 success  T6 qualify ann done 1 h (on time)
                          (finished 03-05)       T7 approve bob rejected after 4 h (due +1 h, late)
    P4 rma   rob          started 03-05 running  T8 create_so rob expired 03-06 (due 03-05 12:00)
                                                 T9 repair rob open, due 03-09 00:00, escalated once
    P5 deal  sam          02-01..02-02 failed    T10 qualify ann done in February (outside the period)
    P6 deal  sam          started 03-08 running  (an automated step runs: no human step waiting)
    P7 deal  ann          started 03-09 running  T12 qualify nina done 30 min; T11 approve bob open
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from tempo import reports
from tempo.directory import load_directory, parse_directory
from tempo.reports import NO_HUMAN_STEP, NONE_LABEL, Period, ReportError, Scope
from tempo.store.engine import dispose_all, read_session, write_session
from tempo.store.migrate import upgrade
from tempo.store.models import Process, ProcessStatus, SlaFired, Task, TaskStatus
from tests.conftest import new_pg_database
from tests.factories import make_process, make_task

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PERIOD = Period.days(date(2026, 3, 1), date(2026, 3, 10))
H = 3600
DAY = 24 * H

DIRECTORY = """
units:
  - {code: company, name: Company, head: olga}
  - {code: sales, name: Sales, parent: company, head: sam}
  - {code: sales_north, name: Sales North, parent: sales, head: nina}
  - {code: support, name: Support, parent: company, head: mike}
people:
  - {username: olga, name: Olga, email: olga@example.com, unit: company}
  - {username: sam, name: Sam, email: sam@example.com, unit: sales}
  - {username: bob, name: Bob, email: bob@example.com, unit: sales}
  - {username: nina, name: Nina, email: nina@example.com, unit: sales_north}
  - {username: ann, name: Ann, email: ann@example.com, unit: sales_north}
  - {username: mike, name: Mike, email: mike@example.com, unit: support}
  - {username: rob, name: Rob, email: rob@example.com, unit: support}
counterparties:
  - {code: ACME, name: ACME, responsible: sam}
  - {code: GLOBEX, name: Globex, responsible: nina}
"""


def at(day: int, hour: float = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture(scope="module", params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def ids(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The store of the module docstring, built once per backend (the tests only read it); returns
    the ids of processes and tasks by name."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'tempo.db'}"
    else:
        url = new_pg_database(request.getfixturevalue("pg_cluster"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN", url)
        upgrade(url)
        yield build_store()
    dispose_all()


def build_store() -> dict[str, int]:
    found: dict[str, int] = {}
    with write_session() as session:
        load_directory(session, parse_directory(DIRECTORY))

        def process(name, template, requester, started, status="running", finished=None, counterparty=None):
            p = make_process(
                session,
                dag_id=template,
                template=template,
                requester=requester,
                counterparty_code=counterparty,
            )
            session.execute(
                update(Process)
                .where(Process.id == p.id)
                .values(started_at=started, status=ProcessStatus(status), finished_at=finished)
            )
            found[name] = p.id
            return p

        def task(name, p, step, created, *, status="open", done=None, by=None, due=None, **extra):
            t = make_task(session, p, task_id=step, title=f"{step} of {p.id}", due_at=due, **extra)
            values = {
                "created_at": created,
                "status": TaskStatus(status),
                "completed_at": done,
                "completed_by": by,
            }
            session.execute(update(Task).where(Task.id == t.id).values(**values))
            found[name] = t.id
            return t

        p1 = process("P1", "deal", "ann", at(1), counterparty="ACME")
        task(
            "T1",
            p1,
            "qualify",
            at(1),
            status="completed",
            done=at(1, 2),
            by="ann",
            due=at(1, 4),
            assignee="ann",
        )
        task("T2", p1, "approve", at(1, 2), due=at(2), assignee="bob")
        p2 = process("P2", "deal", "bob", at(2), counterparty="GLOBEX")
        task(
            "T3",
            p2,
            "qualify",
            at(2),
            status="completed",
            done=at(2, 6),
            by="ann",
            due=at(2, 3),
            assignee="ann",
        )
        task("T4", p2, "approve", at(2, 6), status="completed", done=at(3, 6), by="bob", assignee="bob")
        task("T5", p2, "sign", at(3, 6), due=at(11), candidate_unit="sales_north")
        p3 = process("P3", "deal", "ann", at(4), status="success", finished=at(5))
        task(
            "T6",
            p3,
            "qualify",
            at(4),
            status="completed",
            done=at(4, 1),
            by="ann",
            due=at(4, 8),
            assignee="ann",
        )
        task(
            "T7",
            p3,
            "approve",
            at(4, 1),
            status="rejected",
            done=at(4, 5),
            by="bob",
            due=at(4, 2),
            assignee="bob",
        )
        p4 = process("P4", "rma", "rob", at(5))
        task("T8", p4, "create_so", at(5), status="expired", done=at(6), due=at(5, 12), assignee="rob")
        task("T9", p4, "repair", at(6), due=at(9), assignee="rob")
        p5 = process("P5", "deal", "sam", at(1, month=2), status="failed", finished=at(2, month=2))
        task(
            "T10",
            p5,
            "qualify",
            at(1, month=2),
            status="completed",
            done=at(1, 1, 2),
            by="ann",
            assignee="ann",
        )
        process("P6", "deal", "sam", at(8))
        p7 = process("P7", "deal", "ann", at(9))
        task("T12", p7, "qualify", at(9), status="completed", done=at(9, 0.5), by="nina", assignee="nina")
        task("T11", p7, "approve", at(9, 0.5), assignee="bob")
        session.flush()
        for name, timer in (
            ("T2", "escalate-1"),
            ("T2", "escalate-2"),
            ("T2", "remind-before"),
            ("T9", "escalate-1"),
        ):
            session.add(SlaFired(task_id=found[name], timer=timer, fired_at=at(3)))
    return found


def scope(username: str | None) -> Scope:
    with read_session() as session:
        return reports.scope_for(session, username, admin=username is None)


def run(report, *args, **kwargs):
    with read_session() as session:
        return report(session, *args, **kwargs)


# --- performance -----------------------------------------------------------------------------------


def perf(key, unit, assigned, completed, rejected, expired, on_time, pct, p50, p90, overdue):
    return reports.PerformanceRow(
        key, unit, assigned, completed, rejected, expired, on_time, pct, p50, p90, overdue
    )


ANN = perf("ann", "sales_north", 3, 3, 0, 0, 2, 66.7, 2 * H, 2 * H + 0.8 * 4 * H, 0)
BOB = perf("bob", "sales", 4, 1, 1, 0, 1, 50.0, 14 * H, 4 * H + 0.9 * 20 * H, 1)
NINA = perf("nina", "sales_north", 1, 1, 0, 0, 1, 100.0, 1800, 1800, 0)
QUEUE = perf(NONE_LABEL, "sales_north", 1, 0, 0, 0, 0, None, None, None, 0)
ROB = perf("rob", "support", 2, 0, 0, 1, 0, 0.0, None, None, 1)


def as_unit(row: reports.PerformanceRow, unit: str) -> reports.PerformanceRow:
    return dataclasses.replace(row, key=unit, unit=unit)


def test_performance_by_person_and_unit(ids):
    result = run(reports.performance, scope(None), PERIOD, NOW)

    assert result.people == [ANN, BOB, NINA, ROB, QUEUE]
    # sales_north: ann's three, nina's one and the queued T5; completion times 0.5, 1, 2 and 6 h.
    north = perf("sales_north", "sales_north", 5, 4, 0, 0, 3, 75.0, 1.5 * H, 2 * H + 0.7 * 4 * H, 0)
    assert result.units == [as_unit(BOB, "sales"), north, as_unit(ROB, "support")]


@pytest.mark.parametrize(
    ("viewer", "people", "units"),
    [
        ("sam", ["ann", "bob", "nina", NONE_LABEL], ["sales", "sales_north"]),
        ("nina", ["ann", "nina", NONE_LABEL], ["sales_north"]),
        ("ann", ["ann"], ["sales_north"]),
        ("olga", ["ann", "bob", "nina", "rob", NONE_LABEL], ["sales", "sales_north", "support"]),
        ("stranger", [], []),
    ],
    ids=["head-sees-sub-units", "head-of-sub-unit", "assignee-own", "head-of-company", "not-in-directory"],
)
def test_performance_visibility(ids, viewer, people, units):
    result = run(reports.performance, scope(viewer), PERIOD, NOW)
    assert [r.key for r in result.people] == people
    assert [r.key for r in result.units] == units
    if viewer == "ann":
        # An assignee sees their own row, not their unit's other work.
        assert result.people == [ANN] and result.units[0].assigned == 3


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"person": "ann", "measure": "late"}, ["T3"]),
        ({"person": "bob", "measure": "late"}, ["T7"]),
        ({"person": "rob", "measure": "late"}, ["T8"]),
        ({"unit": "sales_north", "measure": "assigned"}, ["T12", "T6", "T5", "T3", "T1"]),
        ({"person": NONE_LABEL}, ["T5"]),
        ({"measure": "open_overdue"}, ["T9", "T2"]),
        ({"person": "bob"}, ["T11", "T7", "T4", "T2"]),
    ],
    ids=["ann-late", "rejected-late", "expired-late", "unit-assigned", "queue", "overdue", "all-of-bob"],
)
def test_drill_down_lists_the_tasks_behind_a_number(ids, filters, expected):
    rows = run(reports.performance_tasks, scope(None), PERIOD, NOW, **filters)
    assert [r.task_id for r in rows] == [ids[name] for name in expected]


def test_drill_down_rows_carry_times_and_on_time(ids):
    rows = {r.task_id: r for r in run(reports.performance_tasks, scope(None), PERIOD, NOW, person="ann")}
    assert (rows[ids["T1"]].completion_s, rows[ids["T1"]].on_time) == (2 * H, True)
    assert (rows[ids["T3"]].completion_s, rows[ids["T3"]].on_time) == (6 * H, False)
    assert ids["T10"] not in rows  # answered in February


def test_drill_down_respects_visibility(ids):
    assert run(reports.performance_tasks, scope("nina"), PERIOD, NOW, person="bob") == []


# --- overdue ---------------------------------------------------------------------------------------


def test_overdue_board(ids):
    board = run(reports.overdue, scope(None), NOW)

    assert board.total == 2
    assert [(t.task_id, t.person, t.unit, t.late_s, t.escalation_level) for t in board.tasks] == [
        (ids["T2"], "bob", "sales", 8 * DAY + 12 * H, 2),
        (ids["T9"], "rob", "support", DAY + 12 * H, 1),
    ]
    assert board.by_unit == [
        reports.OverdueGroupRow("sales", "", 1, 8 * DAY + 12 * H, 1, 2),
        reports.OverdueGroupRow("support", "", 1, DAY + 12 * H, 1, 1),
    ]
    assert [(g.unit, g.person, g.overdue) for g in board.by_person] == [
        ("sales", "bob", 1),
        ("support", "rob", 1),
    ]


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [("sam", ["T2"]), ("nina", []), ("rob", ["T9"]), ("mike", ["T9"])],
    ids=["head-of-sales", "head-of-sub-unit", "assignee", "head-of-support"],
)
def test_overdue_visibility(ids, viewer, expected):
    board = run(reports.overdue, scope(viewer), NOW)
    assert [t.task_id for t in board.tasks] == [ids[name] for name in expected]


# --- funnel ----------------------------------------------------------------------------------------


def test_funnel_counts_shares_and_median_ages(ids):
    result = run(reports.funnel, scope(None), PERIOD, NOW)

    # deal has four running processes: P1 and P7 wait at approve, P2 at sign, P6 runs an automated step.
    assert result.rows == [
        reports.FunnelRow(
            "deal", "approve", None, 2, 50.0, (9.5 * DAY + 1.5 * DAY) / 2, (9 * DAY + 10 * H + 127800) / 2
        ),
        reports.FunnelRow("deal", NO_HUMAN_STEP, None, 1, 25.0, 2.5 * DAY, None),
        reports.FunnelRow("deal", "sign", None, 1, 25.0, 8.5 * DAY, 7 * DAY + 6 * H),
        reports.FunnelRow("rma", "repair", None, 1, 100.0, 5.5 * DAY, 4.5 * DAY),
    ]
    assert result.open_closed == [
        reports.OpenClosedRow("deal", running=4, started=5, succeeded=1, failed=0),
        reports.OpenClosedRow("rma", running=1, started=1, succeeded=0, failed=0),
    ]
    # Of 5 deals started, 4 reached qualify, all 4 went on to approve, 1 to sign.
    assert result.conversion == [
        reports.ConversionRow("deal", "qualify", 4, 80.0),
        reports.ConversionRow("deal", "approve", 4, 100.0),
        reports.ConversionRow("deal", "sign", 1, 25.0),
        reports.ConversionRow("rma", "create_so", 1, 100.0),
        reports.ConversionRow("rma", "repair", 1, 100.0),
    ]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "counterparty",
            {
                ("approve", "ACME"): (1, 100.0),
                ("sign", "GLOBEX"): (1, 100.0),
                ("approve", NONE_LABEL): (1, 50.0),
                (NO_HUMAN_STEP, NONE_LABEL): (1, 50.0),
            },
        ),
        (
            "manager",
            {
                ("approve", "sam"): (1, 100.0),
                ("sign", "nina"): (1, 100.0),
                ("approve", NONE_LABEL): (1, 50.0),
                (NO_HUMAN_STEP, NONE_LABEL): (1, 50.0),
            },
        ),
        (
            "unit",
            {
                ("approve", "sales_north"): (2, 100.0),
                ("sign", "sales"): (1, 50.0),
                (NO_HUMAN_STEP, "sales"): (1, 50.0),
            },
        ),
    ],
    ids=["counterparty", "manager", "unit"],
)
def test_funnel_grouped(ids, group_by, expected):
    rows = run(reports.funnel, scope(None), PERIOD, NOW, template="deal", group_by=group_by).rows
    assert {(r.step, r.group): (r.processes, r.share_pct) for r in rows} == expected


def test_funnel_visibility(ids):
    # nina heads sales_north: P1 and P7 (requested by ann) only.
    result = run(reports.funnel, scope("nina"), PERIOD, NOW)
    assert [(r.template, r.step, r.processes) for r in result.rows] == [("deal", "approve", 2)]
    assert result.open_closed == [reports.OpenClosedRow("deal", running=2, started=3, succeeded=1, failed=0)]


# --- process log -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("viewer", "filters", "expected"),
    [
        (None, {}, ["P7", "P6", "P4", "P3", "P2", "P1"]),
        (None, {"status": ProcessStatus.SUCCESS}, ["P3"]),
        (None, {"template": "rma"}, ["P4"]),
        (None, {"requester": "ann"}, ["P7", "P3", "P1"]),
        (None, {"counterparty": "ACME"}, ["P1"]),
        (None, {"limit": 2, "offset": 1}, ["P6", "P4"]),
        # Ann's requests, and Bob's P2, whose step she answered.
        ("ann", {}, ["P7", "P3", "P2", "P1"]),
        ("sam", {}, ["P7", "P6", "P3", "P2", "P1"]),
    ],
    ids=["all", "status", "template", "requester", "counterparty", "page", "own", "head"],
)
def test_process_log(ids, viewer, filters, expected):
    log = run(reports.process_log, scope(viewer), PERIOD, NOW, **filters)
    assert [r.process_id for r in log.rows] == [ids[name] for name in expected]
    if not filters and viewer is None:
        assert log.total == 6
        assert [(s.status, s.processes) for s in log.statuses] == [("running", 5), ("success", 1)]
        p3 = next(r for r in log.rows if r.process_id == ids["P3"])
        assert (p3.duration_s, p3.unit, p3.status) == (DAY, "sales_north", "success")


# --- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("2026-13-01", None, "from"),
        (None, "yesterday", "to"),
        ("2026-03-10", "2026-03-01", "to"),
        ("2000-01-01", "2026-01-01", "from"),
    ],
    ids=["bad-from", "bad-to", "reversed", "too-long"],
)
def test_bad_periods_name_the_field(first, last, field):
    with pytest.raises(ReportError) as caught:
        reports.parse_period(first, last, today=date(2026, 3, 10))
    assert list(caught.value.errors) == [field]


def test_period_defaults_to_the_last_30_days():
    period = reports.parse_period(None, None, today=date(2026, 3, 10))
    assert (period.start, period.end) == (at(9, month=2), at(11))


def test_unknown_template_and_status_name_the_field(ids):
    with read_session() as session, pytest.raises(ReportError) as caught:
        reports.check_template(session, "nope")
    assert caught.value.errors == {"template": "Unknown process template."}
    with pytest.raises(ReportError) as caught:
        reports.parse_process_status("bogus")
    assert list(caught.value.errors) == ["status"]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, None), ([4.0], 0.9, 4.0), ([1.0, 2.0], 0.5, 1.5), ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7)],
    ids=["empty", "one", "two", "four"],
)
def test_percentile_interpolates_like_percentile_cont(values, q, expected):
    assert (
        reports.percentile(values, q) == pytest.approx(expected)
        if expected
        else reports.percentile(values, q) is None
    )


def test_a_mapped_step_counts_its_process_once(store):
    with write_session() as session:
        p = make_process(session, dag_id="mapped", template="mapped", requester="x")
        session.execute(update(Process).where(Process.id == p.id).values(started_at=at(2)))
        for index in (0, 1, 2):
            t = make_task(session, p, task_id="review", map_index=index, title=f"review {index}")
            session.execute(update(Task).where(Task.id == t.id).values(created_at=at(2, index)))
    result = run(reports.funnel, Scope.admin(), PERIOD, NOW)
    assert result.conversion == [reports.ConversionRow("mapped", "review", 1, 100.0)]
    assert [(r.step, r.processes, r.share_pct) for r in result.rows] == [("review", 1, 100.0)]


QUEUE_DIRECTORY = """
units:
  - {code: company, name: Company, head: olga}
  - {code: desk, name: Service desk, parent: company, head: helen}
  - {code: lab, name: Lab, parent: company, head: larry}
roles:
  - {code: agent, name: Agent}
people:
  - {username: olga, name: Olga, email: olga@example.com, unit: company}
  - {username: helen, name: Helen, email: helen@example.com, unit: desk}
  - {username: sandra, name: Sandra, email: sandra@example.com, unit: desk, roles: [agent]}
  - {username: sid, name: Sid, email: sid@example.com, unit: desk, roles: [agent]}
  - {username: larry, name: Larry, email: larry@example.com, unit: lab, roles: [agent]}
  - {username: rob, name: Rob, email: rob@example.com, unit: lab}
"""


def test_a_role_queue_task_counts_under_the_unit_of_the_roles_people(store):
    with write_session() as session:
        load_directory(session, parse_directory(QUEUE_DIRECTORY))
        p = make_process(session, dag_id="rma", template="rma", requester="rob")
        make_task(session, p, task_id="create_so", due_at=at(9), candidate_role="agent")
    board = run(reports.overdue, Scope.admin(), NOW)
    # Two of the role's three people work at the desk: the queue is the desk's.
    assert [(g.unit, g.overdue) for g in board.by_unit] == [("desk", 1)]
    assert [t.unit for t in board.tasks] == ["desk"]
    # So its head sees it, as she would a task in the desk's own queue.
    assert run(reports.overdue, scope("helen"), NOW).total == 1
    assert run(reports.overdue, scope("larry"), NOW).total == 0
    performance = run(reports.performance, Scope.admin(), PERIOD, NOW)
    assert [r.key for r in performance.units] == ["desk"]


def test_the_funnel_shows_the_running_process_whose_task_you_hold(store):
    with write_session() as session:
        load_directory(session, parse_directory(QUEUE_DIRECTORY))
        p = make_process(session, dag_id="rma", template="rma", requester="olga")
        session.execute(update(Process).where(Process.id == p.id).values(started_at=at(9)))
        make_task(session, p, task_id="create_so", assignee="rob")
    held = run(reports.funnel, scope("rob"), PERIOD, NOW)
    assert [(r.template, r.step, r.processes) for r in held.rows] == [("rma", "create_so", 1)]
    assert run(reports.funnel, scope("sid"), PERIOD, NOW).rows == []
