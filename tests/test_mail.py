from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from tempo.mail.outbox import deliver_pending, enqueue
from tempo.mail.render import RenderedMail, render_mail
from tempo.store.engine import read_session, write_session
from tempo.store.models import OutboxMessage, OutboxStatus

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def _context(title: str) -> dict:
    task = SimpleNamespace(id=7, title=title, instructions="Line one\nLine two", due_at=None)
    process = SimpleNamespace(title=f"RMA {title}", requester="rob")
    person = SimpleNamespace(name="Sandra Service", username="sandra", email="sandra@example.com")
    return {"task": task, "process": process, "person": person, "action_link": "https://t.example/act/TOKEN"}


def test_assignment_mail_escapes_user_data_in_html_only():
    mail = render_mail("task_assigned", _context(HOSTILE))
    assert "<script>" not in mail.html and 'onerror="alert' not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert HOSTILE in mail.text  # plain text is shown as text by mail clients
    assert "https://t.example/act/TOKEN" in mail.text and 'href="https://t.example/act/TOKEN"' in mail.html


def test_subject_cannot_carry_a_header():
    mail = render_mail("task_assigned", _context("Hello\r\nBcc: victim@example.com"))
    assert "\n" not in mail.subject and "\r" not in mail.subject


def _mail(subject: str = "Hi") -> RenderedMail:
    return RenderedMail(subject=subject, text="plain body\n", html="<p>html body</p>")


def test_enqueue_is_idempotent_per_dedup_key(store):
    with write_session() as session:
        first = enqueue(session, dedup_key="k1", to=["a@example.com"], mail=_mail("one"))
        second = enqueue(session, dedup_key="k1", to=["b@example.com"], mail=_mail("two"))
    assert first.id == second.id
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert session.scalars(select(OutboxMessage)).one().subject == "one"


def test_delivery_sends_real_multipart_mail_once(store, smtp):
    with write_session() as session:
        enqueue(session, dedup_key="k2", to=["sandra@example.com"], mail=_mail("Create the S/O"))
    report = deliver_pending()
    assert report.sent == 1
    assert deliver_pending().sent == 0  # nothing left: sent once
    (caught,) = smtp.wait_for(1, timeout=10)
    assert caught.envelope_to == ("sandra@example.com",)
    assert caught.subject == "Create the S/O"
    assert caught.body("plain").strip() == "plain body"
    assert caught.body("html").strip() == "<p>html body</p>"
    assert caught.message["X-Tempo-Key"] == "k2"


def test_two_senders_at_once_deliver_each_message_once(store, smtp):
    with write_session() as session:
        for n in range(10):
            enqueue(session, dedup_key=f"bulk-{n}", to=[f"p{n}@example.com"], mail=_mail(f"m{n}"))
    barrier = threading.Barrier(2)
    reports = []

    def sender():
        barrier.wait()
        reports.append(deliver_pending())

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in reports) == 10
    caught = smtp.wait_for(10, timeout=10)
    assert sorted(m.subject for m in caught) == sorted(f"m{n}" for n in range(10))


def test_smtp_down_keeps_the_message_and_records_the_error(store, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        '{"conn_type": "smtp", "host": "127.0.0.1", "port": 9, '
        '"extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 2}}',
    )
    with write_session() as session:
        enqueue(session, dedup_key="k3", to=["sandra@example.com"], mail=_mail())
    report = deliver_pending()
    assert (report.sent, report.retrying) == (0, 1)
    with read_session() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert row.last_error and "Error" in row.last_error
    assert row.next_attempt_at > row.created_at


def test_a_message_that_cannot_be_built_fails_with_its_error_and_the_sweep_goes_on(store, smtp):
    with write_session() as session:
        enqueue(session, dedup_key="bad", to=["a@example.com\r\nBcc: victim@example.com"], mail=_mail("bad"))
        enqueue(session, dedup_key="good", to=["sandra@example.com"], mail=_mail("good"))
    report = deliver_pending()
    assert (report.sent, report.failed, report.retrying) == (1, 1, 0)
    (caught,) = smtp.wait_for(1, timeout=10)
    assert caught.subject == "good" and caught.envelope_to == ("sandra@example.com",)
    with read_session() as session:
        bad = session.scalars(select(OutboxMessage).where(OutboxMessage.dedup_key == "bad")).one()
    assert bad.status == OutboxStatus.FAILED and bad.lease_until is None
    assert bad.last_error and "linefeed or carriage return" in bad.last_error
    assert deliver_pending().failed == 0  # given up on: not tried again by the next sweeps


@pytest.fixture
def directory(store):
    from tempo.directory import load_directory_file
    from tests.conftest import REPO

    load_directory_file(REPO / "include" / "directory.yaml")


def test_the_deadline_email_names_the_requester_by_name(directory, smtp):
    from tempo.deadlines import record_miss
    from tests.factories import make_process

    with write_session() as session:
        process = make_process(session, requester="rob", title="RMA RMA-7")
    keys = record_miss(process.dag_id, process.run_id, "olga")
    assert deliver_pending(keys=keys).sent == 2  # Olga, the owner, and Mike, Rob's manager
    for caught in smtp.wait_for(2, timeout=10):
        assert "by Rob Engineer" in caught.body("plain") and "by Rob Engineer" in caught.body("html")
        assert "by rob" not in caught.body("plain") + caught.body("html")


def test_a_request_email_gives_its_parameters_and_specialist_in_words(directory, smtp):
    from tests.factories import make_process

    data = {
        "request_type_name": "Warranty claim",
        "subject": "Pump leaks",
        "counterparty_name": "ACME Corporation",
        "description": "It leaks.",
        "first_time": False,
        "responsible": "sandra",
        "request_params": {"serial_number": "SN-9", "in_warranty": False},
    }
    with write_session() as session:
        process = make_process(session, data=data)
        person = SimpleNamespace(name="Sam Sales-Head", username="sam", email="sam@example.com")
        mail = render_mail(
            "customer_request_registered",
            {"process": process, "person": person, "data": data},
            session=session,
        )
        enqueue(session, dedup_key="registered", to=[person.email], mail=mail)
    assert deliver_pending().sent == 1
    (caught,) = smtp.wait_for(1, timeout=10)
    plain, html = caught.body("plain"), caught.body("html")
    assert "Serial number: SN-9" in plain and "In warranty: No" in plain
    assert "<td>Serial number</td><td>SN-9</td>" in html and "<td>In warranty</td><td>No</td>" in html
    assert "Its specialist is Sandra Service." in plain and "Its specialist is Sandra Service." in html
    assert "serial_number" not in plain + html and "False" not in plain + html and "is sandra" not in plain
