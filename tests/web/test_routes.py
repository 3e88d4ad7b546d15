"""Every Tempo route through Airflow's real API server app: authentication (401), Airflow's auth manager
and Tempo's own rules (403), validation (422, nothing stored), conflicts (409), escaping."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session, write_session
from tempo.store.models import Attachment, Task, TaskEvent, TaskStatus
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
            select(func.count()).select_from(TaskEvent).where(TaskEvent.task_id == task_id)
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
            data={"csrf": token, "to": "helen"},
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
            data={"csrf": helen_token, "to": "sandra"},
            headers=helen,
            follow_redirects=False,
        ).status_code
        == 303
    )
    with read_session() as session:
        kinds = session.scalars(
            select(TaskEvent.kind).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id)
        ).all()
        assert session.get_one(Task, task.id).assignee == "sandra"
    assert kinds == ["created", "claimed", "unclaimed", "delegated", "reassigned"]


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
    assert ok.status_code == 303 and "started=" in ok.headers["location"]
    api = web.post(
        "/tempo/api/v1/processes/rma_sales_order", json={"conf": {"rma_number": "x"}}, headers=auth("rob")
    )
    assert api.status_code == 422 and {"rma_number", "customer", "part"} <= set(
        api.json()["detail"]["errors"]
    )
    assert web.post(
        "/tempo/api/v1/processes/no_such_dag", json={"conf": {}}, headers=auth("rob")
    ).status_code in (403, 404)


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
