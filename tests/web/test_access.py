"""Who may read what, whose links staff pages carry, CSRF on cookie-borne API writes, who may name
a requester, and the rule of every route (``web/policy.py``)."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
import time_machine
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from tempo import config, links
from tempo.attachments import add_attachment
from tempo.store.engine import read_session, write_session
from tempo.store.models import Attachment
from tempo.web.security import csrf_token
from tests.factories import make_process, make_task
from tests.web.conftest import auth, token_for
from tests.web.test_email_links import path_of, sales_order_task
from tests.web.test_public import REVIEW_FORM
from tests.web.test_routes import snapshot
from tests.web.test_security import ROUTES

ON_SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


# --- reading follows the reports' rule -------------------------------------------------------------


@pytest.fixture
def late_task(web):
    """Rob's RMA, its step late in customer service's queue (Sandra's role and unit), with a file."""
    task = sales_order_task(
        candidate_role="customer_service", candidate_unit="customer_service", due_at=_an_hour_ago()
    )
    attachment = add_attachment(
        task.id, actor="sandra", filename="a.txt", content_type="text/plain", data=b"a"
    )
    return task, attachment.id


def _an_hour_ago():
    from tempo.store.models import utcnow

    return utcnow() - timedelta(hours=1)


def _reads(web, task, attachment_id, headers) -> list[int]:
    return [
        web.get(url, headers=headers).status_code
        for url in (
            f"/tempo/tasks/{task.id}",
            f"/tempo/processes/{task.process_id}",
            f"/tempo/api/v1/tasks/{task.id}",
            f"/tempo/api/v1/attachments/{attachment_id}",
        )
    ]


@ON_SQLITE
@pytest.mark.parametrize(
    "who",
    [
        "sandra",  # the step waits in her role's queue
        "rob",  # he asked
        "helen",  # she heads customer service, where the step waits
        "olga",  # she heads the company, above customer service
        "mike",  # he heads support, Rob's unit: the process is his unit's
        "admin",  # Airflow's admins see everything
    ],
)
def test_those_the_reports_show_a_process_may_open_it(web, late_task, who):
    task, attachment_id = late_task
    headers = auth(who, "admin" if who == "admin" else "user")
    assert _reads(web, task, attachment_id, headers) == [200, 200, 200, 200]
    assert "Create a sales order" in web.get("/tempo/sla", headers=headers).text


@ON_SQLITE
@pytest.mark.parametrize(
    ("who", "role"),
    [
        ("john", None),  # a repair technician: nothing of his
        ("victor", "user"),  # heads the repair shop, not customer service
        ("vera", None),  # Airflow's viewer, nobody in the directory
    ],
)
def test_others_cannot_open_it_by_its_id(web, late_task, who, role):
    task, attachment_id = late_task
    assert _reads(web, task, attachment_id, auth(who, role)) == [403, 403, 403, 403]
    page = web.get("/tempo/sla", headers=auth(who, role))
    assert page.status_code == 200 and "Create a sales order" not in page.text


# --- staff pages never carry a counterparty's links ------------------------------------------------


@pytest.fixture
def globex_review(web):
    """Globex's request with its status link in the record (as ``identify_counterparty`` writes it),
    its result waiting for Globex, and a step of Sandra's in the same process."""
    with write_session() as session:
        process = make_process(
            session,
            dag_id="customer_request",
            template="customer_request",
            counterparty_code="GLOBEX",
            data={"subject": "Valve leaks", "decision_name": "Refund"},
        )
        session.flush()
        process.data = {**process.data, "status_link": links.request_status_link(process.id)}
        review = make_task(
            session,
            process,
            dag_id="customer_request",
            task_id="counterparty_review",
            form_schema=REVIEW_FORM,
            outcomes=["accept", "dispute"],
            assignee="counterparty:GLOBEX",
        )
        own = make_task(session, process, dag_id="customer_request", task_id="decide", assignee="sandra")
    return review, own


COUNTERPARTY_LINK = re.compile(r"/tempo/(?:requests|respond)/")


@ON_SQLITE
def test_staff_pages_show_the_record_without_the_counterpartys_links(web, globex_review):
    review, own = globex_review
    pages = [
        web.get(f"/tempo/processes/{own.process_id}", headers=auth("sandra")),
        web.get(f"/tempo/tasks/{own.id}", headers=auth("sandra")),
        web.get(f"/tempo/tasks/{review.id}", headers=auth("admin")),
        web.get(path_of(links.task_link(own.id, "sandra"))),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "Valve leaks" in page.text and "Refund" in page.text
        assert not COUNTERPARTY_LINK.search(page.text), page.url


@ON_SQLITE
def test_the_status_page_offers_the_respond_link_it_was_sent_never_a_fresh_one(web, globex_review):
    review, _ = globex_review
    status_url = path_of(links.request_status_link(review.process_id))

    def offered() -> str:
        return re.search(r'href="([^"]*/respond/[^"]+)"', web.get(status_url).text).group(1)

    first = offered()
    with time_machine.travel(review.created_at + timedelta(minutes=5)):
        assert offered() == first
    # Past the link's lifetime (counted from when the result was sent) no visit revives it.
    with time_machine.travel(review.created_at + timedelta(seconds=config.link_max_age() + 60)):
        late = offered()
        assert web.get(late).status_code == 410
        assert web.post(late, data={"outcome": "accept"}).status_code in (403, 410)
    assert snapshot(review.id)[0].value == "open"


# --- CSRF on cookie-borne API writes ---------------------------------------------------------------


def _files(task_pk: int) -> int:
    with read_session() as session:
        return session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.task_id == task_pk)
        )


@ON_SQLITE
def test_an_upload_with_the_login_cookie_alone_is_refused(web):
    task = sales_order_task(candidate_role="customer_service")
    url = f"/tempo/api/v1/tasks/{task.id}/attachments"
    web.cookies.set("_token", token_for("sandra"))
    for extra in ({}, {"data": {"csrf": "forged"}}, {"headers": {"X-CSRF-Token": "forged"}}):
        refused = web.post(url, files={"file": ("a.txt", b"abc")}, **extra)
        assert refused.status_code == 403, refused.text
    assert _files(task.id) == 0
    # The task page's token makes it Tempo's own page asking, in the form or in the header.
    token = csrf_token("sandra", f"task:{task.id}")
    assert web.post(url, files={"file": ("a.txt", b"abc")}, data={"csrf": token}).status_code == 201
    assert (
        web.post(url, files={"file": ("b.txt", b"abc")}, headers={"X-CSRF-Token": token}).status_code == 201
    )
    # A bearer token is no ambient credential: it needs no CSRF token.
    web.cookies.clear()
    assert web.post(url, files={"file": ("c.txt", b"abc")}, headers=auth("sandra")).status_code == 201
    assert _files(task.id) == 3


@ON_SQLITE
def test_every_api_write_needs_the_csrf_token_with_the_cookie(web):
    task = sales_order_task(candidate_role="customer_service")
    web.cookies.set("_token", token_for("sandra"))
    before = snapshot(task.id)
    for path, body in [
        (f"/tempo/api/v1/tasks/{task.id}/claim", {}),
        (f"/tempo/api/v1/tasks/{task.id}/complete", {"answers": {"so_number": "SO-123456"}}),
        (f"/tempo/api/v1/tasks/{task.id}/comments", {"text": "hi"}),
        (f"/tempo/api/v1/tasks/{task.id}/email-client", {"subject": "S", "text": "T"}),
        ("/tempo/api/v1/processes/rma_sales_order", {"conf": {}}),
    ]:
        response = web.post(path, json=body)
        assert response.status_code == 403 and "did not come from Tempo" in response.text, path
    assert snapshot(task.id) == before
    token = csrf_token("sandra", f"task:{task.id}")
    comment = web.post(
        f"/tempo/api/v1/tasks/{task.id}/comments", json={"text": "hi"}, headers={"X-CSRF-Token": token}
    )
    assert comment.status_code == 201


# --- who may name a run's requester ----------------------------------------------------------------


def _requested(login, conf, triggered_by="rest_api") -> tuple[str | None, str | None]:
    """The process row a run gets, started by ``login`` through Airflow with ``conf``."""
    from tempo.runs import process_of_dag_run

    dag_run = SimpleNamespace(
        dag_id="demo",
        run_id=f"run-{login}-{sorted(conf.items())}-{triggered_by}",
        conf=conf,
        triggering_user_name=login,
        triggered_by=SimpleNamespace(value=triggered_by) if triggered_by else None,
    )
    with write_session() as session:
        process = process_of_dag_run(session, None, dag_run)
        return process.requester, process.counterparty_code


@ON_SQLITE
@pytest.mark.parametrize(
    ("login", "conf", "expected"),
    [
        ("john", {"requester": "rob"}, ("john", None)),  # not his to name: the run is John's own
        ("john", {"counterparty": "GLOBEX"}, ("john", None)),  # Sandra is responsible for Globex
        ("stranger", {"requester": "olga"}, ("stranger", None)),  # nobody in the directory
        ("rob", {"requester": "rob"}, ("rob", None)),
        ("mike", {"requester": "rob"}, ("rob", None)),  # Mike heads support, Rob's unit
        ("olga", {"requester": "sandra"}, ("sandra", None)),  # the company's head, above all units
        ("sandra", {"counterparty": "GLOBEX"}, ("sandra", "GLOBEX")),
        ("helen", {"requester": "sandra", "counterparty": "GLOBEX"}, ("sandra", "GLOBEX")),
        ("tempo-public-request-page", {"requester": "buyer@globex.example"}, ("buyer@globex.example", None)),
    ],
)
def test_a_login_names_only_people_it_may_act_for(web, login, conf, expected):
    assert _requested(login, conf) == expected


@ON_SQLITE
def test_runs_no_login_started_keep_their_requester(web):
    assert _requested(None, {"requester": "rob"}, triggered_by=None) == ("rob", None)
    assert _requested("airflow", {"requester": "rob"}, triggered_by="cli") == ("rob", None)


# --- the rule of every route -----------------------------------------------------------------------


def _rules():
    from tempo.web import policy

    return {
        "public": None,  # no login, no link: static descriptions and the public request page
        "emailed link": policy.link_claims,
        "emailed link, still the person's": policy.assigned_link_task,
        "result link": policy.respond_claims,
        "status link": policy.status_process,
        "confirmation link": policy.pending_request,
        "airflow read": None,  # Airflow's read permission only: what the page lists is the caller's own
        "scope": policy.reader_scope,  # listings filtered by what the caller may see
        "reports scope": None,  # web/reports.viewer: the same scope (policy.viewer_scope)
        "readable task": policy.readable_task,
        "readable process": policy.readable_process,
        "readable attachment": policy.readable_attachment,
        "actor": policy.task_actor,
        "commenter": policy.commenter,
        "holder": policy.task_holder,
        "manager": policy.task_manager,
        "start": None,  # Airflow's POST on the DAG's runs, asked in the route
        "operator": None,  # Airflow's ops and admins, asked in the route
        # policy.require_absence_recorder, asked in the route once the body names whose absence it is
        "absence recorder": None,
    }


ROUTE_RULES = {
    ("GET", "/tempo/openapi.json"): "public",
    ("GET", "/tempo/docs"): "public",
    ("GET", "/tempo/docs/oauth2-redirect"): "public",
    ("GET", "/tempo/redoc"): "public",
    ("GET", "/tempo/request"): "public",
    ("GET", "/tempo/request/{type_code}"): "public",
    ("POST", "/tempo/request/{type_code}"): "public",
    ("GET", "/tempo/request/{type_code}/sent"): "public",
    ("GET", "/tempo/confirm/{token}"): "confirmation link",
    ("POST", "/tempo/confirm/{token}"): "confirmation link",
    ("GET", "/tempo/act/{token}"): "emailed link, still the person's",
    ("POST", "/tempo/act/{token}"): "emailed link, still the person's",
    ("POST", "/tempo/act/{token}/email-client"): "emailed link, still the person's",
    ("GET", "/tempo/act/{token}/done"): "emailed link",
    ("GET", "/tempo/requests/{token}"): "status link",
    ("GET", "/tempo/respond/{token}"): "result link",
    ("POST", "/tempo/respond/{token}"): "result link",
    ("GET", "/tempo/"): "airflow read",
    ("GET", "/tempo/inbox"): "airflow read",
    ("GET", "/tempo/start"): "airflow read",
    ("GET", "/tempo/api/v1/tasks"): "airflow read",
    ("GET", "/tempo/absences"): "airflow read",
    ("GET", "/tempo/api/v1/absences"): "airflow read",
    ("POST", "/tempo/absences"): "absence recorder",
    ("POST", "/tempo/api/v1/absences"): "absence recorder",
    ("GET", "/tempo/sla"): "scope",
    ("GET", "/tempo/tasks/{task_id}"): "readable task",
    ("GET", "/tempo/api/v1/tasks/{task_id}"): "readable task",
    ("GET", "/tempo/processes/{process_id}"): "readable process",
    ("GET", "/tempo/api/v1/attachments/{attachment_id}"): "readable attachment",
    ("POST", "/tempo/tasks/{task_id}/complete"): "actor",
    ("POST", "/tempo/tasks/{task_id}/claim"): "actor",
    ("POST", "/tempo/tasks/{task_id}/delegate"): "actor",
    ("POST", "/tempo/tasks/{task_id}/email-client"): "actor",
    ("POST", "/tempo/tasks/{task_id}/attachments"): "actor",
    ("POST", "/tempo/api/v1/tasks/{task_id}/claim"): "actor",
    ("POST", "/tempo/api/v1/tasks/{task_id}/complete"): "actor",
    ("POST", "/tempo/api/v1/tasks/{task_id}/email-client"): "actor",
    ("POST", "/tempo/api/v1/tasks/{task_id}/attachments"): "actor",
    ("POST", "/tempo/tasks/{task_id}/comment"): "commenter",
    ("POST", "/tempo/api/v1/tasks/{task_id}/comments"): "commenter",
    ("POST", "/tempo/tasks/{task_id}/unclaim"): "holder",
    ("POST", "/tempo/tasks/{task_id}/reassign"): "manager",
    ("GET", "/tempo/start/{dag_id}"): "start",
    ("POST", "/tempo/start/{dag_id}"): "start",
    ("POST", "/tempo/api/v1/processes/{dag_id}"): "start",
    ("GET", "/tempo/admin/outbox"): "operator",
    ("POST", "/tempo/admin/outbox/{message_id}/retry"): "operator",
    **{
        ("GET", f"{prefix}/reports{page}"): "reports scope"
        for prefix in ("/tempo", "/tempo/api/v1")
        for page in ("/funnel", "/overdue", "/performance", "/performance/tasks", "/processes")
    },
    ("GET", "/tempo/reports"): "reports scope",
}


def _calls(dependant) -> set:
    found = set()
    for dependency in dependant.dependencies:
        found.add(dependency.call)
        found |= _calls(dependency)
    return found


def test_every_route_is_classified_by_the_rule_it_uses():
    from tempo.web import policy
    from tempo.web.app import create_app

    rules = _rules()
    assert set(ROUTE_RULES) == set(ROUTES), "classify the new route here (or drop the one removed)"
    assert set(ROUTE_RULES.values()) <= set(rules)
    routes = {
        (method, "/tempo" + route.path): route
        for route in create_app().routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    for key, rule in ROUTE_RULES.items():
        if key not in routes:  # the static descriptions are Starlette routes
            continue
        calls = _calls(routes[key].dependant)
        if rules[rule] is not None:
            assert rules[rule] in calls, (key, rule)
        # Every write of the JSON API checks the CSRF token a login cookie needs.
        if key[0] == "POST" and key[1].startswith("/tempo/api/"):
            assert policy.api_csrf in calls, key
