"""Security of every route, enumerated from the app itself: a new route without a decision here fails.

Logged-in routes answer 401 without credentials and 403 when Airflow's auth manager refuses, and
change nothing; every state-changing form needs its CSRF token; user data is escaped in every page
and every email; signing keys rotate with a grace period and never reach the logs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2.meta
import pytest
import time_machine
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Route

from tempo import config, links, public_requests
from tempo.store.engine import write_session
from tempo.store.models import OutboxMessage
from tempo.web.app import create_app
from tests.conftest import REPO
from tests.factories import make_process, make_task
from tests.fingerprint import store_fingerprint
from tests.web.conftest import auth
from tests.web.test_public import REVIEW_FORM
from tests.web.test_routes import SO_FORM

PREFIX = "/tempo"
#: Who may call what does not depend on the store's backend: these tests run on SQLite (the store on
#: PostgreSQL is exercised by the fuzzing and the route tests).
ON_SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route Tempo's app serves, read from the app itself."""
    found = []
    for route in create_app().routes:
        if isinstance(route, APIRoute | Route):
            found += [
                (method, PREFIX + route.path) for method in sorted(route.methods or ()) if method != "HEAD"
            ]
    return found


#: Routes anyone may call, and why.
PUBLIC = {
    ("GET", "/tempo/openapi.json"): "the API's description",
    ("GET", "/tempo/docs"): "the API's interactive description (static)",
    ("GET", "/tempo/docs/oauth2-redirect"): "part of the interactive description",
    ("GET", "/tempo/redoc"): "the API's description (static)",
    ("GET", "/tempo/act/{token}"): "emailed link: the signed token is the credential",
    ("POST", "/tempo/act/{token}"): "emailed link: signed token and CSRF token",
    ("GET", "/tempo/act/{token}/done"): "emailed link: the signed token is the credential",
    ("POST", "/tempo/act/{token}/email-client"): "emailed link: signed token and CSRF token",
    ("GET", "/tempo/request"): "public request page: counterparties have no login",
    ("GET", "/tempo/request/{type_code}"): "public request page: counterparties have no login",
    ("POST", "/tempo/request/{type_code}"): "public request form: CSRF token, validated, rate limited",
    ("GET", "/tempo/request/{type_code}/sent"): "public request page: says to check the mailbox",
    ("GET", "/tempo/confirm/{token}"): "emailed confirmation link: the signed token is the credential",
    ("POST", "/tempo/confirm/{token}"): "emailed confirmation link: signed token and CSRF token",
    ("GET", "/tempo/requests/{token}"): "a request's status: the signed status token is the credential",
    ("GET", "/tempo/respond/{token}"): "emailed result link: the signed token is the credential",
    ("POST", "/tempo/respond/{token}"): "emailed result link: signed token and CSRF token",
}
ROUTES = app_routes()
LOGGED_IN = [r for r in ROUTES if r not in PUBLIC]
#: State-changing HTML forms (the JSON API takes bearer tokens or JSON, which no cross-site form sends).
FORMS = [(m, p) for m, p in ROUTES if m == "POST" and not p.startswith("/tempo/api/")]


def ids(routes):
    return [f"{m} {p}" for m, p in routes]


def test_every_route_is_public_on_purpose_or_logged_in():
    assert set(PUBLIC) <= set(ROUTES), "a public route listed here no longer exists"
    assert len(LOGGED_IN) >= 30 and len(FORMS) >= 9


@pytest.fixture
def rows(web):
    """One of everything a route can name: a process, a task in Sandra's queue, an attachment, an
    undelivered email."""
    from tempo.attachments import add_attachment
    from tempo.mail.outbox import enqueue
    from tempo.mail.render import RenderedMail

    with write_session() as session:
        process = make_process(session, dag_id="rma_sales_order", template="rma_sales_order", requester="rob")
        task = make_task(
            session,
            process,
            dag_id="rma_sales_order",
            task_id="create_sales_order",
            form_schema=SO_FORM,
            candidate_role="customer_service",
        )
        message = enqueue(
            session, dedup_key="m-1", to=["x@example.com"], mail=RenderedMail("s", "t", "<p>h</p>")
        )
        session.flush()
        message_id = message.id
        review = make_task(
            session,
            make_process(
                session, dag_id="customer_request", template="customer_request", counterparty_code="GLOBEX"
            ),
            dag_id="customer_request",
            task_id="counterparty_review",
            form_schema=REVIEW_FORM,
            outcomes=["accept", "dispute"],
            assignee="counterparty:GLOBEX",
        )
        held = public_requests.hold(
            session,
            request_type="warranty_claim",
            type_name="Warranty claim",
            form={"name": "Globex", "email": "buyer@globex.example", "subject": "S", "description": "D"},
            params={},
            uploads=[],
        )
        confirm_mail = session.scalars(select(OutboxMessage).where(OutboxMessage.dedup_key == held)).one()
    attachment = add_attachment(
        task.id, actor="sandra", filename="a.txt", content_type="text/plain", data=b"a"
    )
    return {
        "review_token": links.respond_link(review.id, "GLOBEX").rsplit("/", 1)[1],
        "confirm_token": re.search(r"/tempo/confirm/(\S+)", confirm_mail.body_text).group(1),
        "type_code": "warranty_claim",
        "task_id": task.id,
        "process_id": process.id,
        "attachment_id": attachment.id,
        "message_id": message_id,
        "dag_id": "rma_sales_order",
        "token": links.sign(task.id, "sandra"),
    }


def send(web, method, path, rows, headers=None, data=None):
    token = rows["token"]
    if path.startswith("/tempo/respond/"):
        token = rows["review_token"]
    elif path.startswith("/tempo/confirm/"):
        token = rows["confirm_token"]
    url = path.format(**{**rows, "token": token})
    if method == "GET":
        return web.get(url, headers=headers, follow_redirects=False)
    if path.startswith("/tempo/api/") and path.endswith("/attachments"):
        return web.post(url, files={"file": ("a.txt", b"abc")}, headers=headers)
    if path.startswith("/tempo/api/"):
        body = {
            "/comments": {"text": "hi"},
            "/email-client": {"subject": "Your offer", "text": "hi"},
        }.get(path[path.rindex("/") :], {})
        return web.post(url, json=body, headers=headers, follow_redirects=False)
    return web.post(url, data=data or {"csrf": "x"}, headers=headers, follow_redirects=False)


@ON_SQLITE
@pytest.mark.parametrize(("method", "path"), LOGGED_IN, ids=ids(LOGGED_IN))
def test_logged_in_route_answers_401_then_403_and_changes_nothing(web, rows, method, path):
    before = store_fingerprint()
    assert send(web, method, path, rows).status_code == 401
    # "blind" is a real Airflow user whom the auth manager refuses everything.
    assert send(web, method, path, rows, headers=auth("blind")).status_code == 403
    assert store_fingerprint() == before


@ON_SQLITE
@pytest.mark.parametrize(("method", "path"), FORMS, ids=ids(FORMS))
def test_state_changing_form_needs_its_own_csrf_token(web, rows, method, path):
    """Posted by someone who may do it, without a token, with a forged one and with the token of
    another form: refused, nothing changed."""
    user = {"/tempo/start/": "rob", "/tempo/admin/": "admin"}.get(path[:13], "sandra")
    headers = auth(user)
    other = links.dumps_signed({"s": user, "p": "task:999999"}, salt="tempo.csrf.v1")
    before = store_fingerprint()
    for token in (None, "", "forged", other):
        data = {
            "to": "helen",
            "text": "hi",
            "so_number": "SO-123456",
            "rma_number": "RMA-1234",
            "outcome": "accept",
            "subject": "Valve leaks",
            "email": "buyer@globex.example",
        }
        if token is not None:
            data["csrf"] = token
        response = send(web, method, path, rows, headers=headers, data=data)
        assert response.status_code == 403, (token, response.text[:300])
        assert "did not come from Tempo" in response.text
    after = store_fingerprint()
    if path == "/tempo/request/{type_code}":  # the public page counts every request before reading it
        before.pop("tempo_rate_limit"), after.pop("tempo_rate_limit")
    assert after == before


@ON_SQLITE
def test_every_form_on_every_page_carries_a_csrf_token(web, rows):
    pages = [
        f"/tempo/tasks/{rows['task_id']}",
        "/tempo/start/rma_sales_order",
        "/tempo/admin/outbox",
        "/tempo/absences",
    ]
    forms_seen = 0
    for url, user in zip(pages, ("sandra", "rob", "admin", "sandra"), strict=True):
        html = web.get(url, headers=auth(user)).text
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S | re.I):
            forms_seen += 1
            assert re.search(r'name="csrf" value="[^"]+"', form), form[:200]
    assert forms_seen >= 5


# --- escaping ------------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>"\'><img src=x onerror=alert(1)>'


def assert_escaped(text: str, where: str) -> None:
    assert "<script>alert" not in text and "<img src=x" not in text, where


@pytest.fixture
def hostile(web):
    """A hostile string in every field a person or a DAG can fill and a page shows."""
    from tempo.actions import comment
    from tempo.attachments import add_attachment
    from tempo.mail.outbox import enqueue
    from tempo.mail.render import RenderedMail
    from tempo.store.models import Person, Task, TaskStatus

    with write_session() as session:
        session.add(Person(username="mallory", name=HOSTILE, email="m@example.com", active=True))
        process = make_process(
            session,
            dag_id="rma_sales_order",
            template="rma_sales_order",
            title=HOSTILE,
            business_key=HOSTILE,
            requester="sandra",
            data={"customer": HOSTILE, HOSTILE: HOSTILE},
        )
        open_task = make_task(
            session,
            process,
            dag_id="rma_sales_order",
            task_id="x",
            title=HOSTILE,
            instructions=HOSTILE,
            form_schema=SO_FORM,
            candidate_role="customer_service",
            due_at=datetime.now(UTC) - timedelta(hours=1),
        )
        done = make_task(
            session, process, dag_id="rma_sales_order", task_id="y", title=HOSTILE, assignee="sandra"
        )
        row = session.get_one(Task, done.id)
        row.status, row.result, row.completed_by = TaskStatus.COMPLETED, {"answer": HOSTILE}, "sandra"
        row.completed_at = datetime.now(UTC)
        enqueue(session, dedup_key="h-1", to=["x@example.com"], mail=RenderedMail(HOSTILE, HOSTILE, HOSTILE))
    comment(open_task.id, actor="sandra", text=HOSTILE)
    add_attachment(open_task.id, actor="sandra", filename=HOSTILE, content_type="text/plain", data=b"x")
    return {"task_id": open_task.id, "process_id": process.id, "dag_id": "rma_sales_order"}


@ON_SQLITE
def test_user_data_is_escaped_on_every_page(web, hostile):
    pages = [
        (m, p) for m, p in LOGGED_IN if m == "GET" and not p.startswith("/tempo/api/") and "{" not in p
    ] + [("GET", "/tempo/tasks/{task_id}"), ("GET", "/tempo/processes/{process_id}")]
    shown = set()
    query = {"q": HOSTILE, "key": HOSTILE, "counterparty": HOSTILE, "template": HOSTILE}
    for _, path in pages:
        url = path.format(**hostile)
        for user in ("admin", "sandra"):
            for params in ({}, query):
                response = web.get(url, params=params, headers=auth(user))
                assert response.status_code < 500, url
                assert_escaped(response.text, f"{url} {params} as {user}")
                if "&lt;script&gt;" in response.text:
                    shown.add(path)
    # The test saw the hostile data where it is shown, rather than pages that show nothing.
    assert {
        "/tempo/tasks/{task_id}",
        "/tempo/processes/{process_id}",
        "/tempo/inbox",
        "/tempo/admin/outbox",
    } <= shown
    # A refused answer shows what was typed back, escaped.
    page = web.get(f"/tempo/tasks/{hostile['task_id']}", headers=auth("sandra")).text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    refused = web.post(
        f"/tempo/tasks/{hostile['task_id']}/complete",
        data={"csrf": token, "so_number": HOSTILE, HOSTILE: "1"},
        headers=auth("sandra"),
    )
    assert refused.status_code == 422
    assert_escaped(refused.text, "422 task page") and "&lt;script&gt;" in refused.text
    act = web.get(links.task_link(hostile["task_id"], "sandra").removeprefix("http://tempo.example.test"))
    assert act.status_code == 200
    assert_escaped(act.text, "emailed-link page") and "&lt;script&gt;" in act.text


class Hostile(str):
    """A string that also answers any attribute, item or call with itself: whatever a template reads
    from its context is the hostile text."""

    def __getattr__(self, name):
        # Jinja's own markers (``unsafe_callable``, ``jinja_pass_arg``...) must stay absent.
        if name.startswith("_") or name in ("unsafe_callable", "alters_data") or name.startswith("jinja"):
            raise AttributeError(name)
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __iter__(self):
        return iter([self])

    def items(self):
        return [(self, self)]


MAIL_TEMPLATES = sorted(p.stem for p in (REPO / "include/templates/mail").glob("[!_]*.j2"))


@pytest.mark.parametrize("template", MAIL_TEMPLATES)
def test_user_data_is_escaped_in_every_email(template):
    from tempo.mail.render import _environment, render_mail

    folder = str(REPO / "include/templates/mail")
    env = _environment(folder, True)
    names: set[str] = set()
    for source in (f"{template}.j2", "_layout.j2"):  # the layout reads the context too
        names |= jinja2.meta.find_undeclared_variables(env.parse(Path(folder, source).read_text()))
    mail = render_mail(template, {name: Hostile(HOSTILE) for name in names}, folder=folder)
    assert_escaped(mail.html, template)
    assert "&lt;script&gt;" in mail.html
    assert "\n" not in mail.subject


# --- key rotation --------------------------------------------------------------------------------

OLD, NEW = "old-key-0123456789abcdef", "new-key-fedcba9876543210"


@pytest.fixture
def rotation(monkeypatch):
    """Sign with the old key, then rotate: returns (old-key token, moment of the switch)."""
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", OLD)
    monkeypatch.delenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", raising=False)
    token = links.sign(7, "sandra")
    csrf = links.dumps_signed({"s": "sandra", "p": "task:7"}, salt="tempo.csrf.v1")
    rotated_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", NEW)
    monkeypatch.setenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", OLD)
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", rotated_at.isoformat())
    return token, csrf, rotated_at


def test_old_key_links_and_forms_work_during_the_grace_period(rotation):
    from tempo.web.security import check_csrf

    token, csrf, _ = rotation
    assert links.verify(token).task_pk == 7
    check_csrf(csrf, "sandra", "task:7")
    # New links are signed with the new key alone: they verify with no retired key configured.
    fresh = links.sign(8, "sandra")
    os.environ["AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS"] = ""
    assert links.verify(fresh).task_pk == 8
    with pytest.raises(links.LinkError):
        links.verify(token)


def test_old_key_is_refused_after_the_grace_period(rotation):
    token, _, rotated_at = rotation
    with time_machine.travel(rotated_at + timedelta(seconds=config.link_max_age() + 5)):
        # Even with a max age that would still allow the token, the retired key no longer counts.
        with pytest.raises(links.LinkError) as info:
            links.verify(token, max_age=10 * config.link_max_age())
        assert not isinstance(info.value, links.LinkExpired)


def test_old_key_cannot_sign_after_it_was_retired(rotation, monkeypatch):
    _, _, rotated_at = rotation
    with time_machine.travel(rotated_at + timedelta(minutes=5)):
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", OLD)
        forged = links.sign(7, "mallory")
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", NEW)
        with pytest.raises(links.LinkError):
            links.verify(forged)


def test_retired_keys_need_the_moment_of_the_switch(rotation, monkeypatch):
    token, _, _ = rotation
    for value in ("", "last tuesday"):
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", value)
        with pytest.raises(links.LinkError):
            links.verify(token)


def test_a_retired_key_cannot_mint_request_status_links(rotation, monkeypatch):
    """A leaked, rotated key signs no status page (whose page offers the counterparty's answer)."""
    _, _, rotated_at = rotation
    with time_machine.travel(rotated_at + timedelta(minutes=5)):
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", OLD)
        forged = links.sign_request_status(41)
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", NEW)
        with pytest.raises(links.LinkError):
            links.verify_request_status(forged)
        assert links.verify_request_status(links.sign_request_status(41)) == 41


def test_request_status_links_follow_the_grace_period(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", OLD)
    token = links.sign_request_status(42)
    rotated_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", NEW)
    monkeypatch.setenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", OLD)
    for unset in ("", "last tuesday"):  # without the moment of the switch, retired keys verify nothing
        monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", unset)
        with pytest.raises(links.LinkError):
            links.verify_request_status(token)
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", rotated_at.isoformat())
    assert links.verify_request_status(token) == 42
    with (
        time_machine.travel(rotated_at + timedelta(seconds=config.link_max_age() + 5)),
        pytest.raises(links.LinkError),
    ):
        links.verify_request_status(token)


@ON_SQLITE
def test_old_key_link_opens_its_page_after_rotation(web, monkeypatch):
    with write_session() as session:
        task = make_task(session, dag_id="rma_sales_order", form_schema=SO_FORM, assignee="sandra")
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", OLD)
    url = links.task_link(task.id, "sandra").removeprefix("http://tempo.example.test")
    monkeypatch.setenv("AIRFLOW__TEMPO__SECRET_KEY", NEW)
    monkeypatch.setenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", OLD)
    monkeypatch.setenv(
        "AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT", (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    )
    assert web.get(url).status_code == 200
    monkeypatch.setenv("AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS", "")
    assert web.get(url).status_code == 404


def test_secrets_never_reach_the_logs(airflow_metadata, tmp_path):
    """Airflow's API server app starting with Tempo (debug logging), then failing link and CSRF
    checks, an old-key link after its grace period, and ``tempo config``: no key in any output."""
    secrets = ("current-SECRET-4f1e9a", "retired-SECRET-77c2d0", "jwt-SECRET-0123456789abcdef0123456789")
    script = textwrap.dedent(
        """
        from datetime import UTC, datetime, timedelta
        import os
        from fastapi.testclient import TestClient
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from tempo import links
        from tempo.store.migrate import upgrade

        upgrade(os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"])
        app = create_app(apps="core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="sandra", role="user"))
        with TestClient(app) as client:
            for url in ("/tempo/act/garbage", "/tempo/act/" + links.sign(1, "sandra") + "x"):
                print("STATUS", client.get(url).status_code)
            print("STATUS", client.post("/tempo/tasks/1/complete", data={"csrf": "forged"},
                              headers={"Authorization": "Bearer " + token}).status_code)
            os.environ["AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT"] = (
                datetime.now(UTC) - timedelta(days=30)).isoformat()
            print("STATUS", client.get("/tempo/act/" + links.sign(1, "sandra")).status_code)
        """
    )
    env = dict(os.environ)
    env.update(
        AIRFLOW__TEMPO__SECRET_KEY=secrets[0],
        AIRFLOW__TEMPO__PREVIOUS_SECRET_KEYS=secrets[1],
        AIRFLOW__TEMPO__SECRET_KEY_ROTATED_AT=datetime.now(UTC).isoformat(),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets[2],
        AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG",
        AIRFLOW__TEMPO__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'tempo.db'}",
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-3000:]
    statuses = re.findall(r"^STATUS (\d+)$", run.stdout, flags=re.M)
    assert statuses == ["404", "404", "403", "404"], run.stdout[-2000:]
    cli = subprocess.run(
        [sys.executable, "-m", "tempo.cli", "config"], capture_output=True, text=True, env=env, timeout=120
    )
    output = run.stdout + run.stderr + cli.stdout + cli.stderr
    assert "DEBUG" in output or "debug" in output  # debug logging was really on
    for secret in secrets:
        assert secret not in output
