"""Report pages, JSON and CSV through Airflow's real app: who sees what, CSV content, field errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from tempo.store.engine import write_session
from tempo.store.models import Process, Task, TaskStatus, utcnow
from tests.factories import make_process, make_task
from tests.web.conftest import auth

HOSTILE = '=HYPERLINK("http://evil")<script>alert(1)</script>'
REPORTS = ["funnel", "overdue", "performance", "performance/tasks", "processes"]


@pytest.fixture
def store_url(tmp_path) -> Iterator[str]:
    """SQLite only here: tests/test_reports.py checks the numbers on both backends."""
    yield f"sqlite:///{tmp_path / 'tempo.db'}"
    from tempo.store.engine import dispose_all

    dispose_all()


@pytest.fixture
def seeded(web) -> dict[str, int]:
    """Sandra (customer service) answered one task on time and has one overdue; John (repair) has one
    overdue; Rob (support) answered one. Helen heads customer service; Olga the whole company."""
    now = utcnow()
    ids: dict[str, int] = {}
    with write_session() as session:

        def task(name, requester, step, assignee, *, done=None, due=None, title=None):
            process = make_process(
                session,
                dag_id="rma_sales_order",
                template="rma_sales_order",
                requester=requester,
                title=title or name,
            )
            t = make_task(
                session,
                process,
                dag_id="rma_sales_order",
                task_id=step,
                title=f"{step} {name}",
                assignee=assignee,
                due_at=due,
            )
            if done is not None:
                session.execute(
                    update(Task)
                    .where(Task.id == t.id)
                    .values(
                        status=TaskStatus.COMPLETED,
                        completed_at=done,
                        completed_by=assignee,
                        created_at=done - timedelta(hours=2),
                    )
                )
                session.execute(
                    update(Process)
                    .where(Process.id == process.id)
                    .values(started_at=done - timedelta(hours=3))
                )
            ids[name] = t.id
            ids["process-" + name] = process.id

        task("sandra-done", "rob", "create_sales_order", "sandra", done=now - timedelta(days=2), due=now)
        task(
            "sandra-late", "rob", "create_sales_order", "sandra", due=now - timedelta(hours=5), title=HOSTILE
        )
        task("john-late", "sandra", "repair", "john", due=now - timedelta(hours=1))
        task("rob-done", "rob", "diagnose", "rob", done=now - timedelta(days=1))
    return ids


def get(web, path, user, **params):
    return web.get(path, params=params, headers=auth(user))


def people(web, user) -> list[str]:
    response = get(web, "/tempo/api/v1/reports/performance", user)
    assert response.status_code == 200, response.text
    return [row["key"] for row in response.json()["people"]]


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin", ["john", "rob", "sandra"]),
        ("olga", ["john", "rob", "sandra"]),
        ("helen", ["sandra"]),
        ("sandra", ["sandra"]),
        ("john", ["john"]),
        ("vera", []),
    ],
    ids=[
        "admin-all",
        "head-of-company-sub-units",
        "head-of-unit",
        "assignee-own",
        "other-assignee",
        "not-in-directory",
    ],
)
def test_performance_visibility(web, seeded, user, expected):
    assert people(web, user) == expected


def test_performance_json_numbers(web, seeded):
    rows = {r["key"]: r for r in get(web, "/tempo/api/v1/reports/performance", "admin").json()["people"]}
    sandra = rows["sandra"]
    assert (
        sandra["assigned"],
        sandra["completed"],
        sandra["on_time"],
        sandra["on_time_pct"],
        sandra["open_overdue"],
    ) == (
        2,
        1,
        1,
        100.0,
        1,
    )
    assert sandra["median_completion_s"] == 7200.0 and sandra["unit"] == "customer_service"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin", {"sandra-late", "john-late"}),
        ("helen", {"sandra-late"}),
        ("john", {"john-late"}),
        ("rob", set()),
    ],
    ids=["admin", "head-of-unit", "assignee", "nothing-late"],
)
def test_overdue_visibility(web, seeded, user, expected):
    body = get(web, "/tempo/api/v1/reports/overdue", user).json()
    assert {t["task_id"] for t in body["tasks"]} == {seeded[name] for name in expected}
    assert body["total"] == len(expected)


def test_funnel_and_process_log_json(web, seeded):
    funnel = get(web, "/tempo/api/v1/reports/funnel", "admin", group_by="unit").json()
    steps = {(r["step"], r["group"]): r["processes"] for r in funnel["steps"]}
    # Grouped by the requester's unit: Rob's three in support, Sandra's one in customer service. Two
    # of Rob's have answered their step and run on without a human step waiting.
    assert steps == {
        ("create_sales_order", "support"): 1,
        ("(automated)", "support"): 2,
        ("repair", "customer_service"): 1,
    }
    log = get(web, "/tempo/api/v1/reports/processes", "admin", requester="sandra").json()
    assert log["total"] == 1 and [p["process_id"] for p in log["processes"]] == [seeded["process-john-late"]]
    assert log["period"].keys() == {"from", "to"}


def test_drill_down_json(web, seeded):
    body = get(
        web, "/tempo/api/v1/reports/performance/tasks", "helen", person="sandra", measure="open_overdue"
    ).json()
    assert [t["task_id"] for t in body["tasks"]] == [seeded["sandra-late"]]
    hidden = get(web, "/tempo/api/v1/reports/performance/tasks", "helen", person="john").json()
    assert hidden["tasks"] == []


def test_csv_export_of_every_table(web, seeded):
    tables = {
        "funnel": ["steps", "open_closed", "conversion"],
        "overdue": ["tasks", "by_unit", "by_person"],
        "performance": ["people", "units"],
        "performance/tasks": ["tasks"],
        "processes": ["processes", "statuses"],
    }
    for report, names in tables.items():
        json_body = get(web, f"/tempo/api/v1/reports/{report}", "admin").json()
        for name in names:
            response = get(web, f"/tempo/api/v1/reports/{report}", "admin", format="csv", table=name)
            assert response.status_code == 200, (report, name, response.text)
            assert response.headers["content-type"].startswith("text/csv")
            assert "attachment" in response.headers["content-disposition"]
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert len(rows) == len(json_body[name]), (report, name)
            if rows:
                assert set(rows[0]) == set(json_body[name][0])


def test_csv_cells_never_start_a_formula(web, seeded):
    text = get(web, "/tempo/api/v1/reports/processes", "admin", format="csv").text
    row = next(
        r for r in csv.DictReader(io.StringIO(text)) if r["process_id"] == str(seeded["process-sandra-late"])
    )
    assert row["title"] == "'" + HOSTILE


@pytest.mark.parametrize(
    ("report", "params", "field"),
    [
        ("funnel", {"from": "2026-02-30"}, "from"),
        ("performance", {"to": "soon"}, "to"),
        ("processes", {"from": "2026-03-10", "to": "2026-03-01"}, "to"),
        ("funnel", {"template": "no_such_template"}, "template"),
        ("overdue", {"template": "no_such_template"}, "template"),
        ("processes", {"status": "bogus"}, "status"),
        ("funnel", {"group_by": "colour"}, "group_by"),
        ("performance/tasks", {"measure": "speed"}, "measure"),
        ("performance", {"format": "xml"}, "format"),
        ("performance", {"format": "csv", "table": "nope"}, "table"),
    ],
    ids=[
        "bad-date",
        "bad-to",
        "reversed",
        "template",
        "overdue-template",
        "status",
        "group-by",
        "measure",
        "format",
        "table",
    ],
)
def test_bad_filters_are_field_errors_on_api_and_page(web, seeded, report, params, field):
    api = get(web, f"/tempo/api/v1/reports/{report}", "admin", **params)
    assert api.status_code == 422
    assert list(api.json()["detail"]["errors"]) == [field]
    if "format" not in params:
        # The report's own page, with its tabs and the filters as sent, each message beside its filter.
        page = get(web, f"/tempo/reports/{report}", "admin", **params)
        assert page.status_code == 422
        assert 'id="report-tabs"' in page.text and 'id="filter-problem"' in page.text
        assert f'action="/tempo/reports/{report}"' in page.text
        assert f'id="error-{field}"' in page.text
        for name, value in params.items():
            assert f'name="{name}"' in page.text and f'value="{value}"' in page.text


def test_pages_draw_charts_and_escape(web, seeded):
    for report in REPORTS:
        page = get(web, f"/tempo/reports/{report}", "admin")
        assert page.status_code == 200, report
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script>alert" not in page.text
    funnel = get(web, "/tempo/reports/funnel", "admin").text
    assert 'class="bar"' in funnel and 'data-label="Create sales order" data-value="2"' in funnel
    processes = get(web, "/tempo/reports/processes", "admin").text
    assert "&lt;script&gt;" in processes and f"/tempo/processes/{seeded['process-sandra-late']}" in processes
    # The process log links each process to its page (the route map highlights the current step).
    assert (
        get(
            web,
            "/tempo/reports",
            "admin",
        ).status_code
        == 200
    )


def test_openapi_lists_the_report_endpoints(web):
    paths = web.get("/tempo/openapi.json").json()["paths"]
    assert {f"/api/v1/reports/{r}" for r in REPORTS} <= set(paths)
