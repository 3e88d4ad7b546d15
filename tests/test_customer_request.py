"""The customer request template's own rules, without a running Airflow: a counterparty that stays
silent about a result has accepted it, and the request closes."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskAwaitingInput
from sqlalchemy import select

from tempo import sla_timers
from tempo.directory import load_directory_file
from tempo.steps.events import answer_of
from tempo.store.engine import read_session, write_session
from tempo.store.models import OutboxMessage, Process, TaskStatus
from tempo.store.tasks import find_task
from tests.conftest import REPO
from tests.factories import make_process


@pytest.fixture(scope="module")
def template():
    spec = importlib.util.spec_from_file_location(
        "customer_request_dag", REPO / "dags" / "customer_request.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_silence_is_acceptance_and_closes_the_request(store, template, monkeypatch):
    load_directory_file(REPO / "include" / "directory.yaml")
    with write_session() as session:
        process = make_process(
            session,
            dag_id="customer_request",
            template="customer_request",
            counterparty_code="GLOBEX",
            data={
                "subject": "Valve leaks",
                "decision_name": "Refund",
                "explanation": "We refund the valve.",
                "status_link": "http://tempo.example.test/tempo/requests/x",
            },
        )
    dag_run = SimpleNamespace(
        dag_id="customer_request", run_id=process.run_id, conf={}, triggering_user_name=None
    )
    ti = SimpleNamespace(
        dag_id="customer_request", run_id=process.run_id, task_id="counterparty_review", map_index=-1
    )
    context = {"ti": ti, "dag_run": dag_run, "dag": None}
    review = template.dag.get_task("counterparty_review")

    with pytest.raises(TaskAwaitingInput):
        review.execute(context)
    with read_session() as session:
        task = find_task(session, "customer_request", process.run_id, "counterparty_review")
        [result_mail] = session.scalars(select(OutboxMessage).where(OutboxMessage.task_id == task.id)).all()
    assert task.assignee == "counterparty:GLOBEX"
    assert result_mail.to_addrs == ["buyers@globex.example"] and "Refund" in result_mail.body_text
    assert "http://tempo.example.test/tempo/respond/" in result_mail.body_text

    timers = {name: at for at, name in sla_timers.pending(task.id)}
    assert set(timers) == {"due", "expire"}
    # A week to answer (plain days, not working days), then a week of silence.
    assert abs(timers["due"] - task.created_at - template.ANSWER_WITHIN) < timedelta(seconds=5)
    assert timers["expire"] - timers["due"] == template.SILENCE_AFTER
    sla_timers.fire(task.id, "due")
    with read_session() as session:
        assert (
            find_task(session, "customer_request", process.run_id, "counterparty_review").status
            == TaskStatus.OPEN
        )
    sla_timers.fire(task.id, "expire")
    with read_session() as session:
        silent = find_task(session, "customer_request", process.run_id, "counterparty_review")
    answer = answer_of(silent)
    assert (silent.status, answer["outcome"], answer["completed_by"]) == (
        TaskStatus.COMPLETED,
        "accept",
        "tempo-sla",
    )

    # Accepting leads to the closing task, which notes that silence accepted.
    assert review.branches["accept"] == ["accepted"]
    accepted = template.dag.get_task("accepted")
    assert accepted.downstream_task_ids == {"close_request"}
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"dag_run": dag_run, "dag": None})
    accepted.python_callable(answer)
    with read_session() as session:
        assert session.get_one(Process, process.id).data["result_accepted_by"] == "silence"


@pytest.mark.parametrize(
    ("change", "conf", "message"),
    [
        ({"request_type": "parcel_lost"}, {}, "unknown request type 'parcel_lost'"),
        ({}, {"request_params": {"serial_number": "1"}}, "serial_number: Use the form SN-123456."),
        ({}, {"request_params": {"serial_number": "SN-123456", "colour": "red"}}, "colour: Unknown field."),
    ],
    ids=["unknown-type", "bad-field", "unknown-field"],
)
def test_registration_refuses_what_the_catalog_does_not_allow(template, change, conf, message):
    from airflow.sdk.exceptions import AirflowFailException

    params = {
        "counterparty_name": "Initech",
        "counterparty_email": "desk@initech.example",
        "request_type": "warranty_claim",
        "subject": "S",
        "description": "D",
        **change,
    }
    register = template.dag.get_task("register")
    with pytest.raises(AirflowFailException, match=message):
        register.python_callable(params=params, dag_run=SimpleNamespace(conf=conf))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # mail, not the store, is tested
def test_the_claim_travels_with_the_head_of_units_email(store, monkeypatch):
    """Files attached to a message are read from storage at delivery and sent over real SMTP; those
    beyond the size cap stay behind (the email links to every file)."""
    from tempo.attachments import add_process_attachment
    from tempo.mail import outbox
    from tempo.mail.render import RenderedMail
    from tempo_dev import mailcatcher

    controller, caught = mailcatcher.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {controller.port}, '
        '"extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 5}}',
    )
    monkeypatch.setattr(outbox, "MAX_ATTACHED_BYTES", 20)
    try:
        with write_session() as session:
            process = make_process(session, dag_id="customer_request", template="customer_request")
        claim = add_process_attachment(
            process.id, actor="x", filename="leak.jpg", content_type="image/jpeg", data=b"\xff\xd8 leak"
        )
        big = add_process_attachment(
            process.id, actor="x", filename="video.mp4", content_type="video/mp4", data=b"v" * 30
        )
        odd = add_process_attachment(process.id, actor="x", filename="n.txt", content_type="weird", data=b"n")
        with write_session() as session:
            outbox.enqueue(
                session,
                dedup_key="claim-1",
                to=["helen@example.com"],
                mail=RenderedMail(subject="Disputed", text="see files", html="<p>see files</p>"),
                attachment_ids=[claim.id, big.id, odd.id],
            )
        assert outbox.deliver_pending().sent == 1
        (message,) = caught.wait_for(1, timeout=10)
    finally:
        controller.stop()
    files = {part.get_filename(): part for part in message.message.iter_attachments()}
    assert set(files) == {"leak.jpg", "n.txt"}
    assert files["leak.jpg"].get_content() == b"\xff\xd8 leak"
    assert files["leak.jpg"].get_content_type() == "image/jpeg"
    assert files["n.txt"].get_content_type() == "application/octet-stream"
    assert message.body("plain").strip() == "see files"
