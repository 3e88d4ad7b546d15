"""Every Tempo route through Airflow's real API server app: authentication (401), Airflow's auth manager
and Tempo's own rules (403), validation (422, nothing stored), conflicts (409), escaping."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session, write_session
from tempo.store.models import Attachment, HistoryEvent, Process, ProcessStatus, Task, TaskStatus
from tempo.web.security import csrf_token
from tests.factories import make_process, make_task
from tests.web.conftest import auth

SO_FORM = {
    "fields": [
        {
            "name": "so_number",
            "type": "text",
            "label": "S/O number",
            "pattern": r"SO-\d{6}",
            "pattern_message": "Use SO-123456.",
            "required": True,
            "max_length": 2000,
        }
    ]
}


@pytest.fixture
def task(web):
    """An RMA step waiting in customer service's queue (Sandra's role)."""
    with write_session() as session:
        process = make_process(
            session, dag_id="rma_sales_order", template="rma_sales_order", title="RMA RMA-1", requester="rob"
        )
        return make_task(
            session,
            process,
            dag_id="rma_sales_order",
            task_id="create_sales_order",
            title="Create a sales order for RMA-1",
            form_schema=SO_FORM,
            candidate_role="customer_service",
        )


def snapshot(task_id: int) -> tuple:
    with read_session() as session:
        row = session.get_one(Task, task_id)
        events = session.scalar(
            select(func.count()).select_from(HistoryEvent).where(HistoryEvent.task_id == task_id)
        )
        files = session.scalar(select(func.count()).select_from(Attachment))
        return row.status, row.version, row.result, row.assignee, row.claimed_by, events, files


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# (method, path template, JSON body or None, kind): "read" routes need GET permission, "act" routes
# need PUT permission and the task to be the caller's, "start" needs POST on the DAG's runs.
ROUTES = [
    ("GET", "/tempo/", None, "read"),
    ("GET", "/tempo/inbox", None, "read"),
    ("GET", "/tempo/tasks/{task}", None, "read"),
    ("GET", "/tempo/processes/{process}", None, "read"),
    ("GET", "/tempo/start", None, "read"),
    ("GET", "/tempo/sla", None, "read"),
    ("GET", "/tempo/reports", None, "read"),
    ("GET", "/tempo/reports/funnel", None, "read"),
    ("GET", "/tempo/reports/overdue", None, "read"),
    ("GET", "/tempo/reports/performance", None, "read"),
    ("GET", "/tempo/reports/performance/tasks", None, "read"),
    ("GET", "/tempo/reports/processes", None, "read"),
    ("GET", "/tempo/admin/outbox", None, "operator"),
    ("POST", "/tempo/admin/outbox/1/retry", "form", "operator"),
    ("GET", "/tempo/start/rma_sales_order", None, "start"),
    ("POST", "/tempo/start/rma_sales_order", "form", "start"),
    ("POST", "/tempo/tasks/{task}/complete", "form", "act"),
    ("POST", "/tempo/tasks/{task}/claim", "form", "act"),
    ("POST", "/tempo/tasks/{task}/unclaim", "form", "act"),
    ("POST", "/tempo/tasks/{task}/delegate", "form", "act"),
    ("POST", "/tempo/tasks/{task}/reassign", "form", "act"),
    ("POST", "/tempo/tasks/{task}/comment", "form", "act"),
    ("POST", "/tempo/tasks/{task}/attachments", "form", "act"),
    ("POST", "/tempo/tasks/{task}/email-client", "form", "act"),
    ("GET", "/tempo/api/v1/tasks", None, "read"),
    ("GET", "/tempo/api/v1/tasks/{task}", None, "read"),
    ("GET", "/tempo/api/v1/reports/funnel", None, "read"),
    ("GET", "/tempo/api/v1/reports/overdue", None, "read"),
    ("GET", "/tempo/api/v1/reports/performance", None, "read"),
    ("GET", "/tempo/api/v1/reports/performance/tasks", None, "read"),
    ("GET", "/tempo/api/v1/reports/processes", None, "read"),
    ("POST", "/tempo/api/v1/processes/rma_sales_order", {"conf": {}}, "start"),
    ("POST", "/tempo/api/v1/tasks/{task}/claim", {}, "act"),
    ("POST", "/tempo/api/v1/tasks/{task}/complete", {"answers": {"so_number": "SO-123456"}}, "act"),
    ("POST", "/tempo/api/v1/tasks/{task}/comments", {"text": "hello"}, "act"),
    ("POST", "/tempo/api/v1/tasks/{task}/attachments", "file", "act"),
    ("POST", "/tempo/api/v1/tasks/{task}/email-client", {"subject": "S", "text": "T"}, "act"),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def call(web, method, path, body, task, headers=None):
    url = path.format(task=task.id, process=task.process_id)
    if body == "form":
        return web.request(method, url, data={"csrf": "x"}, headers=headers, follow_redirects=False)
    if body == "file":
        return web.request(method, url, files={"file": ("a.txt", b"abc")}, headers=headers)
    return web.request(method, url, json=body, headers=headers, follow_redirects=False)


@pytest.mark.parametrize(("method", "path", "body", "kind"), ROUTES, ids=ROUTE_IDS)
def test_401_without_login(web, task, method, path, body, kind):
    before = snapshot(task.id)
    response = call(web, method, path, body, task)
    assert response.status_code == 401
    assert snapshot(task.id) == before


@pytest.mark.parametrize(("method", "path", "body", "kind"), ROUTES, ids=ROUTE_IDS)
def test_401_with_a_forged_token(web, task, method, path, body, kind):
    response = call(web, method, path, body, task, headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code in (401, 403)  # Airflow answers 403 for an invalid signature


@pytest.mark.parametrize(
    ("method", "path", "body", "kind"),
    [r for r in ROUTES if r[3] != "read"],
    ids=[i for i, r in zip(ROUTE_IDS, ROUTES, strict=True) if r[3] != "read"],
)
def test_403_for_a_viewer(web, task, method, path, body, kind):
    """Airflow's auth manager says no: the viewer role may read but not act or start."""
    before = snapshot(task.id)
    response = call(web, method, path, body, task, headers=auth("vera"))
    assert response.status_code == 403
    assert snapshot(task.id) == before


@pytest.mark.parametrize(("method", "path", "body", "kind"), ROUTES, ids=ROUTE_IDS)
def test_403_when_the_auth_manager_says_no(web, task, method, path, body, kind):
    """Every route asks Airflow's auth manager: one that refuses "blind" everything gets 403 everywhere."""
    before = snapshot(task.id)
    response = call(web, method, path, body, task, headers=auth("blind"))
    assert response.status_code == 403
    assert snapshot(task.id) == before


OWNED = [r for r in ROUTES if r[3] == "act" and "comment" not in r[1]]  # any actor may comment


@pytest.mark.parametrize(("method", "path", "body", "kind"), OWNED, ids=[f"{m} {p}" for m, p, _, _ in OWNED])
def test_403_when_the_task_is_not_yours(web, task, method, path, body, kind):
    """Airflow lets John act on tasks in general; Tempo does not let him act on Sandra's queue."""
    before = snapshot(task.id)
    headers = auth("john")
    if body == "form":
        # John may not open the task's page either (not his process): his form carries a token
        # minted for him, so only Tempo's act rule refuses it.
        token = csrf_token("john", f"task:{task.id}")
        fields = {"csrf": token, "to": "john", "so_number": "SO-123456"}
        response = web.post(path.format(task=task.id), data=fields, headers=headers, follow_redirects=False)
    else:
        response = call(web, method, path, body, task, headers=headers)
    assert response.status_code == 403
    assert snapshot(task.id) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "kind"),
    [r for r in ROUTES if r[1].startswith("/tempo/api") and r[3] == "read"],
    ids=[
        i for i, r in zip(ROUTE_IDS, ROUTES, strict=True) if r[1].startswith("/tempo/api") and r[3] == "read"
    ],
)
def test_read_routes_answer_the_viewer(web, task, method, path, body, kind):
    """Airflow's viewer role reads; Tempo's rule then shows a task to its queue (Sandra's)."""
    assert call(web, method, path, body, task, headers=auth("sandra", role="viewer")).status_code == 200


def test_form_posts_without_a_valid_csrf_token_are_refused(web, task):
    before = snapshot(task.id)
    for token in ("", "forged", None):
        data = {"so_number": "SO-123456"} | ({"csrf": token} if token is not None else {})
        response = web.post(f"/tempo/tasks/{task.id}/complete", data=data, headers=auth("sandra"))
        assert response.status_code == 403
    # A token made for another task does not work either.
    other = make_other_task()
    page = web.get(f"/tempo/tasks/{other}", headers=auth("sandra"))
    response = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": csrf_of(page.text), "so_number": "SO-123456"},
        headers=auth("sandra"),
    )
    assert response.status_code == 403
    assert snapshot(task.id) == before


def make_other_task() -> int:
    with write_session() as session:
        return make_task(
            session,
            dag_id="rma_sales_order",
            task_id="other",
            title="Other",
            candidate_role="customer_service",
        ).id


def test_page_completion_validates_then_records_once(web, task):
    page = web.get(f"/tempo/tasks/{task.id}", headers=auth("sandra"))
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    token = csrf_of(page.text)
    before = snapshot(task.id)

    bad = web.post(
        f"/tempo/tasks/{task.id}/complete", data={"csrf": token, "so_number": "12"}, headers=auth("sandra")
    )
    assert bad.status_code == 422
    assert 'id="error-so_number"' in bad.text and "Use SO-123456." in bad.text
    assert snapshot(task.id) == before

    ok = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": token, "so_number": "SO-123456"},
        headers=auth("sandra"),
        follow_redirects=False,
    )
    assert ok.status_code == 303
    again = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": token, "so_number": "SO-999999"},
        headers=auth("sandra"),
    )
    assert again.status_code == 409
    with read_session() as session:
        row = session.get_one(Task, task.id)
    assert (row.status, row.completed_by, row.result) == (
        TaskStatus.COMPLETED,
        "sandra",
        {"so_number": "SO-123456"},
    )


def test_api_completion_422_then_200_then_409(web, task):
    url = f"/tempo/api/v1/tasks/{task.id}/complete"
    before = snapshot(task.id)
    bad = web.post(url, json={"answers": {"so_number": "nope", "extra": 1}}, headers=auth("sandra"))
    assert bad.status_code == 422
    assert set(bad.json()["detail"]["errors"]) == {"so_number", "extra"}
    malformed = web.post(url, json={"answers": "not a dict", "unexpected": True}, headers=auth("sandra"))
    assert malformed.status_code == 422
    assert snapshot(task.id) == before

    ok = web.post(url, json={"answers": {"so_number": "SO-123456"}}, headers=auth("sandra"))
    assert ok.status_code == 200 and ok.json()["status"] == "completed"
    again = web.post(url, json={"answers": {"so_number": "SO-123456"}}, headers=auth("sandra"))
    assert again.status_code == 409
    assert "already completed" in again.json()["detail"]


CANCELLABLE_FORM = {
    "fields": [{"name": "note", "type": "text", "label": "Note for the counterparty", "required": False}],
    "destructive_outcomes": {"cancel": "note"},
}


def test_a_destructive_outcome_is_apart_needs_a_reason_and_a_confirmation(web):
    with write_session() as session:
        task = make_task(
            session,
            dag_id="customer_request",
            task_id="take_request",
            title="Request from ACME",
            form_schema=CANCELLABLE_FORM,
            outcomes=["take", "cancel"],
            assignee="sandra",
        )
    sandra = auth("sandra")
    url = f"/tempo/tasks/{task.id}/complete"
    page = web.get(f"/tempo/tasks/{task.id}", headers=sandra).text
    take = page.index('name="outcome" value="take"')
    zone = page.index('id="danger-cancel"')
    assert take < zone < page.index('class="danger" type="submit" name="outcome" value="cancel"')
    assert 'class="danger"' not in page[:zone]
    token = csrf_of(page)
    before = snapshot(task.id)

    # No reason: refused on the page and through the API, nothing changed.
    blank = web.post(url, data={"csrf": token, "outcome": "cancel", "note": " "}, headers=sandra)
    assert blank.status_code == 422 and 'id="error-note"' in blank.text
    api = web.post(
        f"/tempo/api/v1/tasks/{task.id}/complete", json={"outcome": "cancel", "answers": {}}, headers=sandra
    )
    assert api.status_code == 422 and set(api.json()["detail"]["errors"]) == {"note"}
    assert snapshot(task.id) == before

    # A reason: the page asks to confirm, with the reason kept; still nothing changed.
    asked = web.post(url, data={"csrf": token, "outcome": "cancel", "note": "A duplicate."}, headers=sandra)
    assert asked.status_code == 200 and 'id="confirm-cancel"' in asked.text
    assert "A duplicate." in asked.text and 'name="confirm" value="cancel"' in asked.text
    assert snapshot(task.id) == before

    done = web.post(
        url,
        data={"csrf": token, "outcome": "cancel", "note": "A duplicate.", "confirm": "cancel"},
        headers=sandra,
        follow_redirects=False,
    )
    assert done.status_code == 303
    with read_session() as session:
        row = session.get_one(Task, task.id)
    assert (row.status, row.outcome, row.result) == (TaskStatus.COMPLETED, "cancel", {"note": "A duplicate."})


def test_a_safe_outcome_beside_a_destructive_one_takes_one_click(web):
    with write_session() as session:
        task = make_task(
            session, form_schema=CANCELLABLE_FORM, outcomes=["take", "cancel"], assignee="sandra"
        )
    sandra = auth("sandra")
    token = csrf_of(web.get(f"/tempo/tasks/{task.id}", headers=sandra).text)
    taken = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": token, "outcome": "take", "note": ""},
        headers=sandra,
        follow_redirects=False,
    )
    assert taken.status_code == 303


def test_claim_unclaim_delegate_reassign_are_recorded(web, task):
    sandra, helen = auth("sandra"), auth("helen")
    token = csrf_of(web.get(f"/tempo/tasks/{task.id}", headers=sandra).text)
    assert (
        web.post(
            f"/tempo/tasks/{task.id}/claim", data={"csrf": token}, headers=sandra, follow_redirects=False
        ).status_code
        == 303
    )
    assert web.post(f"/tempo/api/v1/tasks/{task.id}/claim", json={}, headers=auth("olga")).status_code == 403
    assert (
        web.post(
            f"/tempo/tasks/{task.id}/unclaim", data={"csrf": token}, headers=sandra, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        web.post(
            f"/tempo/tasks/{task.id}/delegate", data={"csrf": token, "to": "nobody-here"}, headers=sandra
        ).status_code
        == 422
    )
    assert (
        web.post(
            f"/tempo/tasks/{task.id}/delegate",
            data={"csrf": token, "to": "helen", "confirm": "helen"},
            headers=sandra,
            follow_redirects=False,
        ).status_code
        == 303
    )
    # Helen heads customer service: she may reassign; John may not.
    helen_token = csrf_of(web.get(f"/tempo/tasks/{task.id}", headers=helen).text)
    assert (
        web.post(
            f"/tempo/tasks/{task.id}/reassign",
            data={"csrf": helen_token, "to": "sandra", "confirm": "sandra"},
            headers=helen,
            follow_redirects=False,
        ).status_code
        == 303
    )
    with read_session() as session:
        kinds = session.scalars(
            select(HistoryEvent.kind).where(HistoryEvent.task_id == task.id).order_by(HistoryEvent.id)
        ).all()
        assert session.get_one(Task, task.id).assignee == "sandra"
    assert kinds == ["created", "claimed", "unclaimed", "delegated", "reassigned"]


def test_handing_over_preselects_nobody_lists_the_queue_first_and_confirms_whom(web, task):
    sandra = auth("sandra")
    page = web.get(f"/tempo/tasks/{task.id}", headers=sandra).text
    card = page[page.index("<h2>Delegate</h2>") : page.index("</form>", page.index("<h2>Delegate</h2>"))]
    assert "selected" not in card and "<select" not in card
    assert 'name="to" id="f-handover" list="handover-people"' in card and 'for="f-handover"' in card
    listed = re.findall(r'<option value="([^"]+)">([^<]*)</option>', card)
    # The queue's role (customer service agents) first, then everyone else by name.
    assert listed[0] == ("sandra", "Sandra Service · Customer service agent")
    assert [u for u, _ in listed[1:]] == sorted((u for u, _ in listed[1:]), key=lambda u: dict(listed)[u])
    assert "olga" in dict(listed) and listed.index(("olga", "Olga Director")) > 0

    token = csrf_of(page)
    before = snapshot(task.id)
    asked = web.post(f"/tempo/tasks/{task.id}/delegate", data={"csrf": token, "to": "helen"}, headers=sandra)
    assert asked.status_code == 200
    assert 'id="handover-to"' in asked.text and "Helen Service-Head" in asked.text
    assert 'name="confirm" value="helen"' in asked.text
    assert snapshot(task.id) == before
    unknown = web.post(
        f"/tempo/tasks/{task.id}/delegate", data={"csrf": token, "to": "nobody-here"}, headers=sandra
    )
    assert unknown.status_code == 422 and 'id="error-to"' in unknown.text
    assert snapshot(task.id) == before
    done = web.post(
        f"/tempo/tasks/{task.id}/delegate",
        data={"csrf": token, "to": "helen", "confirm": "helen"},
        headers=sandra,
        follow_redirects=False,
    )
    assert done.status_code == 303
    with read_session() as session:
        assert session.get_one(Task, task.id).assignee == "helen"
    # Now Helen's: her unit (customer service) comes first in the list.
    page = web.get(f"/tempo/tasks/{task.id}", headers=auth("helen")).text
    listed = re.findall(
        r'<option value="([^"]+)">([^<]*)</option>', page[page.index('id="handover-people"') :]
    )
    assert {u for u, _ in listed[:2]} == {"helen", "sandra"}


def test_comments_and_attachments(web, task):
    sandra = auth("sandra")
    created = web.post(
        f"/tempo/api/v1/tasks/{task.id}/comments", json={"text": "Calling the customer"}, headers=sandra
    )
    assert created.status_code == 201
    assert (
        web.post(f"/tempo/api/v1/tasks/{task.id}/comments", json={"text": ""}, headers=sandra).status_code
        == 422
    )
    upload = web.post(
        f"/tempo/api/v1/tasks/{task.id}/attachments",
        files={"file": ("../../etc/passwd", b"quote 42", "text/plain")},
        headers=sandra,
    )
    assert upload.status_code == 201
    assert upload.json()["filename"] == "passwd"
    empty = web.post(
        f"/tempo/api/v1/tasks/{task.id}/attachments", files={"file": ("e.txt", b"")}, headers=sandra
    )
    assert empty.status_code == 422
    download = web.get(f"/tempo/api/v1/attachments/{upload.json()['id']}", headers=auth("rob"))  # he asked
    assert download.status_code == 200 and download.content == b"quote 42"
    page = web.get(f"/tempo/tasks/{task.id}", headers=sandra)
    assert "Calling the customer" in page.text and "passwd" in page.text


def test_a_file_field_refuses_a_file_above_its_max_bytes_on_page_and_api(web):
    from tempo.forms import File, Form

    with write_session() as session:
        drawing = make_task(
            session,
            dag_id="rma_sales_order",
            form_schema=Form(drawing=File(max_bytes=10)).schema(),
            candidate_role="customer_service",
        )
    sandra = auth("sandra")
    ids = {}
    for name, size in (("big", 11), ("fits", 10)):
        upload = web.post(
            f"/tempo/api/v1/tasks/{drawing.id}/attachments",
            files={"file": (f"{name}.pdf", b"x" * size)},
            headers=sandra,
        )
        assert upload.status_code == 201  # within Tempo's own limit
        ids[name] = upload.json()["id"]
    before = snapshot(drawing.id)
    api = web.post(
        f"/tempo/api/v1/tasks/{drawing.id}/complete",
        json={"answers": {"drawing": [ids["big"]]}},
        headers=sandra,
    )
    assert api.status_code == 422
    assert api.json()["detail"]["errors"] == {"drawing": "Files may be at most 10 bytes."}
    token = csrf_of(web.get(f"/tempo/tasks/{drawing.id}", headers=sandra).text)
    page = web.post(
        f"/tempo/tasks/{drawing.id}/complete",
        data={"csrf": token, "drawing": str(ids["big"])},
        headers=sandra,
    )
    assert page.status_code == 422
    assert 'id="error-drawing"' in page.text and "Files may be at most 10 bytes." in page.text
    assert snapshot(drawing.id) == before
    ok = web.post(
        f"/tempo/api/v1/tasks/{drawing.id}/complete",
        json={"answers": {"drawing": [ids["fits"]]}},
        headers=sandra,
    )
    assert ok.status_code == 200 and ok.json()["result"] == {"drawing": [ids["fits"]]}


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_user_data_is_escaped_in_pages(web):
    with write_session() as session:
        process = make_process(
            session,
            dag_id="rma_sales_order",
            template="rma_sales_order",
            title=HOSTILE,
            data={"customer": HOSTILE},
        )
        hostile = make_task(
            session,
            process,
            dag_id="rma_sales_order",
            task_id="x",
            title=HOSTILE,
            instructions=HOSTILE,
            form_schema=SO_FORM,
            candidate_role="customer_service",
        )
    with write_session() as session:
        from tempo.actions import comment

        comment(hostile.id, actor="sandra", text=HOSTILE)
    for url in (f"/tempo/tasks/{hostile.id}", "/tempo/inbox", f"/tempo/processes/{hostile.process_id}"):
        html = web.get(url, headers=auth("sandra")).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


def test_start_form_validates_and_starts_a_run(web):
    page = web.get("/tempo/start/rma_sales_order", headers=auth("rob"))
    token = csrf_of(page.text)
    assert 'name="rma_number"' in page.text
    bad = web.post(
        "/tempo/start/rma_sales_order",
        data={"csrf": token, "rma_number": "12", "customer": "ACME", "part": "p"},
        headers=auth("rob"),
    )
    assert bad.status_code == 422 and "Use the form RMA-12345." in bad.text
    ok = web.post(
        "/tempo/start/rma_sales_order",
        data={"csrf": token, "rma_number": "RMA-5555", "customer": "ACME", "part": "Pump"},
        headers=auth("rob"),
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with read_session() as session:
        process = session.scalars(select(Process).where(Process.business_key == "RMA-5555")).one()
    assert (process.dag_id, process.requester, process.data["part"]) == ("rma_sales_order", "rob", "Pump")
    # The confirmation is the new process's own page, not the start form again.
    assert ok.headers["location"] == f"/tempo/processes/{process.id}?started=1"
    confirmed = web.get(ok.headers["location"], headers=auth("rob"))
    assert confirmed.status_code == 200 and 'id="notice"' in confirmed.text
    assert "RMA-5555" in confirmed.text
    api = web.post(
        "/tempo/api/v1/processes/rma_sales_order", json={"conf": {"rma_number": "x"}}, headers=auth("rob")
    )
    assert api.status_code == 422 and {"rma_number", "customer", "part"} <= set(
        api.json()["detail"]["errors"]
    )
    assert web.post(
        "/tempo/api/v1/processes/no_such_dag", json={"conf": {}}, headers=auth("rob")
    ).status_code in (403, 404)


def _processes_with_key(key: str) -> list[int]:
    with read_session() as session:
        return list(
            session.scalars(select(Process.id).where(Process.business_key == key).order_by(Process.id))
        )


def test_a_second_start_of_one_business_key_warns_and_needs_start_another(web):
    rob = auth("rob")
    token = csrf_of(web.get("/tempo/start/rma_sales_order", headers=rob).text)
    answers = {"csrf": token, "rma_number": "RMA-7777", "customer": "ACME", "part": "Pump"}
    first = web.post("/tempo/start/rma_sales_order", data=answers, headers=rob, follow_redirects=False)
    assert first.status_code == 303
    [first_id] = _processes_with_key("RMA-7777")

    again = web.post("/tempo/start/rma_sales_order", data=answers, headers=rob, follow_redirects=False)
    assert again.status_code == 409
    assert 'id="same-key"' in again.text and f"/tempo/processes/{first_id}" in again.text
    assert 'name="start_another" value="yes"' in again.text
    assert 'value="Pump"' in again.text  # the answers are kept for the second click
    assert _processes_with_key("RMA-7777") == [first_id]

    another = web.post(
        "/tempo/start/rma_sales_order",
        data={**answers, "start_another": "yes"},
        headers=rob,
        follow_redirects=False,
    )
    assert another.status_code == 303
    ids = _processes_with_key("RMA-7777")
    assert len(ids) == 2 and another.headers["location"] == f"/tempo/processes/{ids[1]}?started=1"


def test_the_api_answers_409_for_a_business_key_in_use_unless_allowed(web):
    rob = auth("rob")
    url = "/tempo/api/v1/processes/rma_sales_order"
    conf = {"rma_number": "RMA-8888", "customer": "ACME", "part": "Pump"}
    first = web.post(url, json={"conf": conf}, headers=rob)
    assert first.status_code == 201
    assert _processes_with_key("RMA-8888") == [first.json()["process_id"]]

    refused = web.post(url, json={"conf": conf}, headers=rob)
    assert refused.status_code == 409
    assert refused.json()["processes"] == [first.json()["process_id"]]
    assert refused.json()["business_key"] == "RMA-8888"
    assert len(_processes_with_key("RMA-8888")) == 1

    allowed = web.post(url, json={"conf": conf, "allow_same_key": True}, headers=rob)
    assert allowed.status_code == 201
    assert len(_processes_with_key("RMA-8888")) == 2
    operation = web.get("/tempo/openapi.json").json()["paths"]["/api/v1/processes/{dag_id}"]["post"]
    assert "409" in operation["responses"]


def test_a_failed_process_does_not_block_a_new_start_of_its_business_key(web):
    with write_session() as session:
        make_process(
            session, dag_id="rma_sales_order", template="rma_sales_order", business_key="RMA-9999"
        ).status = ProcessStatus.FAILED
    conf = {"rma_number": "RMA-9999", "customer": "ACME", "part": "Pump"}
    started = web.post("/tempo/api/v1/processes/rma_sales_order", json={"conf": conf}, headers=auth("rob"))
    assert started.status_code == 201


def test_a_pattern_field_shows_its_format_before_any_error(web, task):
    start = web.get("/tempo/start/rma_sales_order", headers=auth("rob")).text
    assert re.search(r'id="format-rma_number">Use the form RMA-12345.<', start)
    assert 'pattern="RMA-\\d{4,10}"' in start and 'placeholder="RMA-12345"' in start
    assert 'aria-describedby="format-rma_number"' in start
    page = web.get(f"/tempo/tasks/{task.id}", headers=auth("sandra")).text
    assert re.search(r'id="format-so_number">Use SO-123456.<', page)
    assert 'pattern="SO-\\d{6}"' in page and 'placeholder="SO-123456"' in page


def test_catalog_lists_process_templates(web):
    html = web.get("/tempo/start", headers=auth("rob")).text
    assert "RMA sales order" in html and "/tempo/start/rma_sales_order" in html


def test_openapi_describes_the_json_api(web):
    paths = web.get("/tempo/openapi.json").json()["paths"]
    assert {"/api/v1/tasks/{task_id}/complete", "/api/v1/processes/{dag_id}", "/api/v1/tasks"} <= set(paths)


def test_openapi_describes_what_the_task_routes_answer(web):
    api = web.get("/tempo/openapi.json").json()
    paths, schemas = api["paths"], api["components"]["schemas"]

    def answer(path, method):
        return paths[path][method]["responses"][str(200 if method == "get" else 201)]["content"][
            "application/json"
        ]

    assert answer("/api/v1/tasks", "get")["schema"]["items"]["$ref"].endswith("/TaskOut")
    assert answer("/api/v1/tasks/{task_id}/comments", "post")["schema"]["$ref"].endswith("/CommentOut")
    task = schemas["TaskOut"]["properties"]
    assert {"id", "task_id", "status", "form", "due_at", "version"} <= set(task)
    assert task["due_at"]["anyOf"][0] == {"type": "string", "format": "date-time"}


OPERATOR = [r for r in ROUTES if r[3] == "operator"]


@pytest.mark.parametrize(
    ("method", "path", "body", "kind"), OPERATOR, ids=[f"{m} {p}" for m, p, _, _ in OPERATOR]
)
def test_403_outbox_for_non_operators(web, task, method, path, body, kind):
    assert call(web, method, path, body, task, headers=auth("sandra")).status_code == 403


def test_the_navigation_links_the_outbox_for_operators_only(web, task):
    for path in ("/tempo/inbox", f"/tempo/tasks/{task.id}", "/tempo/reports/funnel", "/tempo/sla"):
        assert 'id="nav-outbox"' not in web.get(path, headers=auth("sandra")).text, path
        assert (
            '<a href="/tempo/admin/outbox" id="nav-outbox">' in web.get(path, headers=auth("admin")).text
        ), path
    # The link leads where the operator may go.
    assert web.get("/tempo/admin/outbox", headers=auth("admin")).status_code == 200


def test_operator_sees_and_retries_undelivered_mail(web, monkeypatch):
    from tempo.mail.outbox import enqueue
    from tempo.mail.render import RenderedMail
    from tempo.store.models import OutboxMessage, OutboxStatus

    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        '{"conn_type": "smtp", "host": "127.0.0.1", "port": 9, '
        '"extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 2}}',
    )
    with write_session() as session:
        message = enqueue(
            session,
            dedup_key="stuck-1",
            to=["x@example.com"],
            mail=RenderedMail("Stuck <b>mail</b>", "text", "<p>html</p>"),
        )
        session.flush()
        message_id = message.id
    page = web.get("/tempo/admin/outbox", headers=auth("admin"))
    assert page.status_code == 200 and "Stuck &lt;b&gt;mail&lt;/b&gt;" in page.text
    token = csrf_of(page.text)
    retried = web.post(
        f"/tempo/admin/outbox/{message_id}/retry",
        data={"csrf": token},
        headers=auth("admin"),
        follow_redirects=False,
    )
    assert retried.status_code == 303
    with read_session() as session:
        row = session.get_one(OutboxMessage, message_id)
    assert row.status == OutboxStatus.PENDING and row.attempts == 1 and "Error" in (row.last_error or "")


def test_sla_page_lists_late_steps(web):
    from datetime import timedelta

    from tempo.store.models import utcnow

    with write_session() as session:
        make_task(session, title="Late step", due_at=utcnow() - timedelta(hours=2), assignee="sandra")
        make_task(session, task_id="fine", title="Fine step", due_at=utcnow() + timedelta(hours=2))
    html = web.get("/tempo/sla", headers=auth("helen")).text  # Sandra's head of unit
    assert "Late step" in html and "Fine step" not in html


def test_unknown_status_filter_is_a_field_error_on_page_and_api(web, task):
    page = web.get("/tempo/inbox", params={"status_filter": "bogus"}, headers=auth("sandra"))
    assert page.status_code == 422 and "status_filter: Unknown status." in page.text
    api = web.get("/tempo/api/v1/tasks", params={"status_filter": "bogus"}, headers=auth("sandra"))
    assert api.status_code == 422 and api.json()["detail"]["errors"] == {"status_filter": "Unknown status."}
    listed = web.get("/tempo/api/v1/tasks", params={"status_filter": "open"}, headers=auth("sandra"))
    assert [t["id"] for t in listed.json()] == [task.id]


def test_a_closed_task_does_not_mark_its_step_current(web, task, monkeypatch):
    """Airflow resumes the step a moment after the store closes the task; the task page of the
    closed task says the step is done meanwhile, and the still-open task's page says current."""
    from tempo.web import airflow_data

    def resuming(dag_id: str, run_id: str, titles: dict[str, str]) -> airflow_data.RunShape:
        shape = real_shape(dag_id, run_id, titles)
        return airflow_data.RunShape(shape.steps, {**shape.states, "create_sales_order": "current"})

    real_shape = airflow_data.run_shape
    monkeypatch.setattr(airflow_data, "run_shape", resuming)

    def step_state() -> str:
        page = web.get(f"/tempo/tasks/{task.id}", headers=auth("sandra"))
        assert page.status_code == 200
        return re.search(r'data-task-id="create_sales_order" data-state="(\w+)"', page.text).group(1)

    assert step_state() == "current"
    from tempo.actions import complete

    complete(task.id, actor="sandra", answers={"so_number": "SO-123456"})
    assert step_state() == "done"


def test_inside_airflows_frame_a_page_has_no_header_and_runs_only_its_theme_script(web, task):
    import base64
    import hashlib

    alone = web.get("/tempo/inbox", headers=auth("sandra"))
    framed = web.get("/tempo/inbox", headers={**auth("sandra"), "Sec-Fetch-Dest": "iframe"})
    assert alone.status_code == framed.status_code == 200
    assert "<header>" in alone.text and "<header>" not in framed.text
    assert "Create a sales order for RMA-1" in framed.text
    # The policy allows one script, by its hash, and that is the one script of the page.
    scripts = re.findall(r"<script>(.*?)</script>", framed.text, flags=re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    directives = dict(d.strip().split(" ", 1) for d in framed.headers["content-security-policy"].split(";"))
    assert directives["script-src"] == f"'sha256-{digest}'"


def test_of_two_simultaneous_starts_of_one_business_key_one_wins(web):
    import threading

    from tempo.web import airflow_data, starting

    template = airflow_data.get_template("rma_sales_order")
    conf = {"rma_number": "RMA-6666", "customer": "ACME", "part": "Pump", "requester": "rob"}
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            starting.start(template, dict(conf), "rob", allow_same_key=False)
            outcomes.append("started")
        except starting.BusinessKeyTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["started", "taken"]
    assert len(_processes_with_key("RMA-6666")) == 1


def test_a_start_that_airflow_refuses_leaves_no_process_behind(web, monkeypatch):
    from tempo.web import airflow_data, starting

    template = airflow_data.get_template("rma_sales_order")

    def refused(*args, **kwargs):
        raise airflow_data.TemplateNotFound("Process template 'rma_sales_order' could not be started.")

    monkeypatch.setattr(airflow_data, "start_process", refused)
    conf = {"rma_number": "RMA-4444", "customer": "ACME", "part": "Pump", "requester": "rob"}
    with pytest.raises(airflow_data.TemplateNotFound):
        starting.start(template, conf, "rob", allow_same_key=False)
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(Process)) == 0
        assert session.scalar(select(func.count()).select_from(HistoryEvent)) == 0
