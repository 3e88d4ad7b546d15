"""The "email the client" required action through the pages, the JSON API and the emailed link:
completion answers 422 on ``required_action`` and stores nothing until the client was emailed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tempo import EmailClient, links
from tempo.required_actions import SCHEMA_KEY
from tempo.store.engine import read_session, write_session
from tempo.store.models import OutboxMessage, Task, TaskStatus
from tests.factories import make_process, make_task
from tests.web.conftest import auth
from tests.web.test_routes import snapshot

FORM = {"fields": [{"name": "solution", "type": "text", "required": True, "label": "Technical solution"}]}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def task(web):
    """A dealer purchase's technical solution waiting for the technical specialists (Rob)."""
    with write_session() as session:
        process = make_process(
            session,
            dag_id="dealer_purchase",
            template="dealer_purchase",
            title="Dealer single purchase DP-1001",
            requester="sam",
            counterparty_code="ACME",
        )
        return make_task(
            session,
            process,
            dag_id="dealer_purchase",
            task_id="prepare_technical_solution",
            title="Preparation of the technical solution for DP-1001",
            form_schema={
                **FORM,
                SCHEMA_KEY: EmailClient(or_attachment=True, subject="Your <solution>").to_dict(),
            },
            candidate_role="technical_specialist",
        )


def outbox_for(task_id: int) -> list[OutboxMessage]:
    with read_session() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.task_id == task_id)))


def test_the_page_offers_the_email_and_refuses_completion_until_sent(web, task):
    page = web.get(f"/tempo/tasks/{task.id}", headers=auth("rob"))
    assert page.status_code == 200
    assert 'id="client-email-required"' in page.text and "orders@acme.example" in page.text
    assert "Your &lt;solution&gt;" in page.text  # the suggested subject, escaped
    token = csrf_of(page.text)
    before = snapshot(task.id)

    refused = web.post(
        f"/tempo/tasks/{task.id}/complete", data={"csrf": token, "solution": "Kit A"}, headers=auth("rob")
    )
    assert refused.status_code == 422
    assert 'id="required-action-error"' in refused.text and "Email the client" in refused.text
    assert snapshot(task.id) == before

    blank = web.post(
        f"/tempo/tasks/{task.id}/email-client",
        data={"csrf": token, "subject": "", "text": ""},
        headers=auth("rob"),
    )
    assert (
        blank.status_code == 422 and "Write a subject." in blank.text and "Write the message." in blank.text
    )
    forged = web.post(
        f"/tempo/tasks/{task.id}/email-client",
        data={"csrf": "x", "subject": "S", "text": "T"},
        headers=auth("rob"),
    )
    assert forged.status_code == 403
    assert snapshot(task.id) == before and outbox_for(task.id) == []

    sent = web.post(
        f"/tempo/tasks/{task.id}/email-client",
        data={"csrf": token, "subject": "Solution for DP-1001", "text": "Dear ACME,\n<b>kit A</b> fits."},
        headers=auth("rob"),
        follow_redirects=False,
    )
    assert sent.status_code == 303
    (mail,) = outbox_for(task.id)
    assert mail.to_addrs == ["orders@acme.example"] and mail.subject == "Solution for DP-1001"
    assert "&lt;b&gt;kit A&lt;/b&gt;" in mail.body_html  # the person's text is escaped in HTML
    page = web.get(f"/tempo/tasks/{task.id}?done=emailed", headers=auth("rob"))
    assert 'id="client-email-done"' in page.text and "Client emailed" in page.text

    done = web.post(
        f"/tempo/tasks/{task.id}/complete",
        data={"csrf": token, "solution": "Kit A"},
        headers=auth("rob"),
        follow_redirects=False,
    )
    assert done.status_code == 303
    with read_session() as session:
        assert session.get_one(Task, task.id).status == TaskStatus.COMPLETED


def test_the_api_answers_422_then_201_then_200_then_409(web, task):
    complete_url = f"/tempo/api/v1/tasks/{task.id}/complete"
    email_url = f"/tempo/api/v1/tasks/{task.id}/email-client"
    before = snapshot(task.id)
    refused = web.post(complete_url, json={"answers": {"solution": "Kit A"}}, headers=auth("rob"))
    assert refused.status_code == 422
    assert set(refused.json()["detail"]["errors"]) == {"required_action"}
    malformed = web.post(email_url, json={"subject": "", "text": "T", "cc": "x"}, headers=auth("rob"))
    assert malformed.status_code == 422
    assert snapshot(task.id) == before and outbox_for(task.id) == []

    sent = web.post(email_url, json={"subject": "Solution", "text": "Kit A fits."}, headers=auth("rob"))
    assert sent.status_code == 201 and sent.json()["to"] == "orders@acme.example"
    twice = web.post(email_url, json={"subject": "Solution", "text": "Kit A fits."}, headers=auth("rob"))
    assert twice.status_code == 409 and "already sent" in twice.json()["detail"]
    done = web.post(complete_url, json={"answers": {"solution": "Kit A"}}, headers=auth("rob"))
    assert done.status_code == 200 and done.json()["status"] == "completed"
    late = web.post(email_url, json={"subject": "Solution", "text": "again"}, headers=auth("rob"))
    assert late.status_code == 409
    assert len(outbox_for(task.id)) == 1


def test_an_attached_document_is_enough(web, task, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__ATTACHMENTS_PATH", f"file://{tmp_path}")
    upload = web.post(
        f"/tempo/api/v1/tasks/{task.id}/attachments",
        files={"file": ("solution.pdf", b"%PDF-1.4")},
        headers=auth("rob"),
    )
    assert upload.status_code == 201
    done = web.post(
        f"/tempo/api/v1/tasks/{task.id}/complete",
        json={"answers": {"solution": "Kit A"}},
        headers=auth("rob"),
    )
    assert done.status_code == 200 and outbox_for(task.id) == []


def test_the_emailed_link_refuses_completion_then_offers_the_email(web, task):
    url = links.task_link(task.id, "rob").removeprefix("http://tempo.example.test")
    page = web.get(url)
    assert 'id="client-email-form"' in page.text and f'action="{url}/email-client"' in page.text
    token = csrf_of(page.text)
    before = snapshot(task.id)
    refused = web.post(url, data={"csrf": token, "solution": "Kit A"})
    assert refused.status_code == 422 and 'id="required-action-error"' in refused.text
    forged = web.post(f"{url}/email-client", data={"csrf": "x", "subject": "S", "text": "T"})
    assert forged.status_code == 403
    blank = web.post(f"{url}/email-client", data={"csrf": token, "subject": "S", "text": ""})
    assert blank.status_code == 422 and "Write the message." in blank.text
    assert snapshot(task.id) == before and outbox_for(task.id) == []

    sent = web.post(
        f"{url}/email-client",
        data={"csrf": token, "subject": "S", "text": "Kit A fits."},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == url
    (mail,) = outbox_for(task.id)
    assert mail.to_addrs == ["orders@acme.example"]
    assert 'id="client-email-done"' in web.get(url).text
    done = web.post(url, data={"csrf": token, "solution": "Kit A"}, follow_redirects=False)
    assert done.status_code == 303
    with read_session() as session:
        assert session.get_one(Task, task.id).completed_by == "rob"


def test_a_client_address_with_a_line_break_is_refused_on_the_field(web):
    with write_session() as session:
        process = make_process(
            session,
            dag_id="dealer_purchase",
            template="dealer_purchase",
            data={"client_email": "client@example.com\r\nBcc: victim@example.com"},
        )
        task = make_task(
            session,
            process,
            dag_id="dealer_purchase",
            task_id="prepare_technical_solution",
            form_schema={**FORM, SCHEMA_KEY: EmailClient(to_field="client_email").to_dict()},
            candidate_role="technical_specialist",
        )
    sent = web.post(
        f"/tempo/api/v1/tasks/{task.id}/email-client",
        json={"subject": "Solution", "text": "Kit A fits."},
        headers=auth("rob"),
    )
    assert sent.status_code == 422 and "not an email address" in sent.json()["detail"]["errors"]["to"]
    assert outbox_for(task.id) == []
