"""Absences through the web: the page and the JSON API record them for whoever may (the person,
their manager, an admin) and refuse the rest by field; deputies see, open and answer the tasks
they hold "for Sandra", and Sandra still reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session, write_session
from tempo.store.models import Absence, HistoryEvent
from tempo.web.security import csrf_token
from tests.factories import make_process, make_task
from tests.web.conftest import auth

ON_SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
TODAY = datetime.now(UTC).date()


def body(person: str = "sandra", deputy: str = "fiona", **overrides) -> dict:
    # From yesterday on: on now whatever the time of day in the person's time zone.
    days = {"first_day": str(TODAY - timedelta(days=1)), "last_day": str(TODAY + timedelta(days=7))}
    return {"person": person, "deputy": deputy, **days, **overrides}


def absences() -> int:
    with read_session() as session:
        return session.scalar(select(func.count()).select_from(Absence)) or 0


@ON_SQLITE
def test_a_person_records_their_absence_and_those_concerned_see_it(web):
    response = web.post("/tempo/api/v1/absences", json=body(move_tasks=True), headers=auth("sandra"))

    assert response.status_code == 201, response.text
    recorded = response.json()
    assert {k: recorded[k] for k in ("person", "deputy", "scope", "move_tasks", "recorded_by")} == {
        "person": "sandra",
        "deputy": "fiona",
        "scope": None,
        "move_tasks": True,
        "recorded_by": "sandra",
    }
    seen = {
        who: [a["id"] for a in web.get("/tempo/api/v1/absences", headers=auth(who)).json()]
        for who in ("sandra", "fiona", "helen", "admin", "john")
    }
    assert seen == {
        "sandra": [recorded["id"]],
        "fiona": [recorded["id"]],  # her deputy
        "helen": [recorded["id"]],  # her manager
        "admin": [recorded["id"]],
        "john": [],
    }


@ON_SQLITE
def test_a_manager_records_an_absence_on_the_page(web):
    page = web.get("/tempo/absences", headers=auth("helen"))
    assert page.status_code == 200 and 'id="absence-form"' in page.text
    form = {**body(scope="rma_sales_order, deal_approval"), "csrf": csrf_token("helen", "absences")}

    response = web.post("/tempo/absences", data=form, headers=auth("helen"), follow_redirects=False)

    assert response.status_code == 303, response.text[:500]
    shown = web.get(response.headers["location"], headers=auth("helen")).text
    assert "The absence is recorded." in shown
    row = re.search(r'<tr data-absence-id="\d+">(.*?)</tr>', shown, flags=re.S)
    assert row is not None and "Sandra Service" in row.group(1) and "Fiona Finance" in row.group(1)
    assert "rma_sales_order, deal_approval" in row.group(1)


@ON_SQLITE
@pytest.mark.parametrize("who", ["john", "fiona", "vera"])
def test_someone_else_cannot_record_a_persons_absence(web, who):
    """John works elsewhere, Fiona would be the deputy, Vera only views: none may say Sandra is away."""
    api = web.post("/tempo/api/v1/absences", json=body(), headers=auth(who))
    form = {**body(), "csrf": csrf_token(who, "absences")}
    page = web.post("/tempo/absences", data=form, headers=auth(who), follow_redirects=False)

    assert (api.status_code, page.status_code) == (403, 403)
    assert absences() == 0


@ON_SQLITE
def test_a_circle_of_deputies_is_refused_by_field_on_the_api_and_the_page(web):
    assert web.post("/tempo/api/v1/absences", json=body(), headers=auth("sandra")).status_code == 201

    api = web.post("/tempo/api/v1/absences", json=body("fiona", "sandra"), headers=auth("admin"))
    form = {**body("fiona", "sandra"), "csrf": csrf_token("admin", "absences")}
    page = web.post("/tempo/absences", data=form, headers=auth("admin"), follow_redirects=False)

    assert api.status_code == 422 and set(api.json()["detail"]["errors"]) == {"deputy"}
    assert "circle" in api.json()["detail"]["errors"]["deputy"]
    assert page.status_code == 422 and 'id="error-deputy"' in page.text and "circle" in page.text
    assert absences() == 1


@ON_SQLITE
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"last_day": "next week"}, "last_day"),
        ({"first_day": "2026-13-01"}, "first_day"),
        ({"deputy": "nobody"}, "deputy"),
        ({"deputy": "<script>"}, "deputy"),
        ({"scope": ["no way"]}, "scope"),
        ({"scope": []}, "scope"),
        ({"last_day": str(TODAY - timedelta(days=2))}, "last_day"),
    ],
)
def test_a_bad_absence_is_a_422_naming_its_field_and_records_nothing(web, overrides, field):
    response = web.post("/tempo/api/v1/absences", json=body(**overrides), headers=auth("sandra"))

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    named = set(detail["errors"]) if isinstance(detail, dict) else {e["loc"][1] for e in detail}
    assert named == {field}
    assert absences() == 0


@ON_SQLITE
def test_the_deputy_sees_acts_on_and_answers_for_the_absent_person(web):
    with write_session() as session:
        process = make_process(session, dag_id="rma_sales_order", template="rma_sales_order", requester="rob")
        held = make_task(session, process, dag_id="rma_sales_order", task_id="a", assignee="sandra")
        moved = make_task(
            session, process, dag_id="rma_sales_order", task_id="b", assignee="fiona", acting_for="sandra"
        )
    # Before the absence Fiona may not touch Sandra's task, nor find it in her inbox.
    assert f'<tr data-task-id="{held.id}">' not in web.get("/tempo/inbox", headers=auth("fiona")).text
    before = web.post(
        f"/tempo/api/v1/tasks/{held.id}/complete", json={"answers": {"answer": "x"}}, headers=auth("fiona")
    )
    assert before.status_code == 403
    assert web.post("/tempo/api/v1/absences", json=body(), headers=auth("sandra")).status_code == 201

    inbox = web.get("/tempo/inbox", headers=auth("fiona")).text
    # Sandra's own task is in Fiona's inbox while Sandra is away, beside the one moved to Fiona.
    assert f'<tr data-task-id="{held.id}">' in inbox
    assert f'<tr data-task-id="{held.id}">' not in web.get("/tempo/inbox", headers=auth("john")).text
    row = re.search(rf'<tr data-task-id="{moved.id}">(.*?)</tr>', inbox, flags=re.S)
    assert row is not None and "for Sandra Service" in row.group(1)
    page = web.get(f"/tempo/tasks/{moved.id}", headers=auth("fiona")).text
    assert 'id="acting-for">for Sandra Service<' in page
    # Sandra, away, still reads the task Fiona holds for her.
    assert web.get(f"/tempo/tasks/{moved.id}", headers=auth("sandra")).status_code == 200

    done = web.post(
        f"/tempo/api/v1/tasks/{held.id}/complete", json={"answers": {"answer": "x"}}, headers=auth("fiona")
    )
    assert done.status_code == 200, done.text
    with read_session() as session:
        event = session.scalars(
            select(HistoryEvent).where(HistoryEvent.task_id == held.id, HistoryEvent.kind == "completed")
        ).one()
    assert (event.actor, event.details) == ("fiona", {"for": "sandra"})
    # Its history on the page says so in words, to Sandra too.
    history = web.get(f"/tempo/tasks/{held.id}", headers=auth("sandra")).text
    assert "for Sandra Service" in history and "for sandra" not in history


@ON_SQLITE
def test_the_openapi_describes_the_absences(web):
    paths = web.get("/tempo/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/absences"])
    schema = web.get("/tempo/openapi.json").json()["components"]["schemas"]["AbsenceForm"]
    assert {"person", "first_day", "last_day", "deputy", "scope", "move_tasks"} == set(schema["properties"])
