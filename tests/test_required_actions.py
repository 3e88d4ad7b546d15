"""Required actions: a step that must email the client (or carry an attachment) cannot be completed
before, whatever the entry point; the email goes through the outbox and into the task's history."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tempo import EmailClient, Form, HumanStep, Role, Text
from tempo.actions import complete, email_client
from tempo.attachments import add_attachment
from tempo.directory import load_directory_file
from tempo.forms import FormErrors
from tempo.required_actions import CLIENT_EMAILED, SCHEMA_KEY, from_dict, of_task
from tempo.store.engine import read_session, write_session
from tempo.store.models import HistoryEvent, OutboxMessage, Task, TaskStatus
from tempo.store.tasks import TaskConflict
from tests.conftest import REPO
from tests.factories import make_process, make_task

FORM = {"fields": [{"name": "solution", "type": "text", "required": True}]}


def schema_with(action: EmailClient) -> dict:
    return {**FORM, SCHEMA_KEY: action.to_dict()}


@pytest.fixture
def directory(store):
    load_directory_file(REPO / "include" / "directory.yaml")


def make(action: EmailClient, **process_fields) -> Task:
    with write_session() as session:
        process = make_process(session, requester="rob", **process_fields)
        return make_task(
            session, process, form_schema=schema_with(action), candidate_role="technical_specialist"
        )


def counts(task_id: int) -> tuple[int, int, str]:
    with read_session() as session:
        mails = session.scalar(select(func.count()).where(OutboxMessage.task_id == task_id))
        emailed = session.scalar(
            select(func.count()).where(HistoryEvent.task_id == task_id, HistoryEvent.kind == CLIENT_EMAILED)
        )
        return mails, emailed, session.get_one(Task, task_id).status.value


def test_the_step_stores_its_required_action_with_the_form():
    step = HumanStep(
        task_id="prepare",
        title="Prepare",
        assign_to=Role("technical_specialist"),
        form=Form(solution=Text()),
        required_action=EmailClient(or_attachment=True, to_field="client_email"),
    )
    schema = step.task_form_schema()
    assert schema["fields"][0]["name"] == "solution"
    assert from_dict(schema[SCHEMA_KEY]) == EmailClient(or_attachment=True, to_field="client_email")
    # The form itself is unchanged: the action is no field the person fills in.
    assert Form.from_schema(schema) == Form(solution=Text())
    assert HumanStep(task_id="plain", title="t", assign_to="rob").task_form_schema() == {"fields": []}


@pytest.mark.parametrize(
    "bad",
    [
        lambda: EmailClient(to_field="not a field"),
        lambda: HumanStep(task_id="x", title="t", assign_to="rob", required_action="email"),
    ],
    ids=["bad-to-field", "not-an-action"],
)
def test_bad_declarations_fail_at_parse_time(bad):
    with pytest.raises((ValueError, TypeError)):
        bad()


def test_completion_is_refused_until_the_client_was_emailed(directory):
    task = make(EmailClient(), counterparty_code="ACME")
    with pytest.raises(FormErrors) as refused:
        complete(task.id, actor="rob", answers={"solution": "Pump P-20 with kit"}, wake=False)
    assert set(refused.value.errors) == {"required_action"}
    assert "Email the client" in refused.value.errors["required_action"]
    # Field errors and the missing action are reported together; nothing is stored.
    with pytest.raises(FormErrors) as both:
        complete(task.id, actor="rob", answers={}, wake=False)
    assert set(both.value.errors) == {"solution", "required_action"}
    assert counts(task.id) == (0, 0, "open")

    event = email_client(task.id, actor="rob", subject="Your solution", text="Dear ACME,\nhere it is.")
    assert event.details["to"] == "orders@acme.example"  # the counterparty's address
    with read_session() as session:
        mail = session.scalars(select(OutboxMessage).where(OutboxMessage.task_id == task.id)).one()
    assert mail.to_addrs == ["orders@acme.example"] and mail.subject == "Your solution"
    assert "here it is." in mail.body_text
    assert counts(task.id) == (1, 1, "open")

    done = complete(task.id, actor="rob", answers={"solution": "Pump P-20 with kit"}, wake=False)
    assert done.task.status == TaskStatus.COMPLETED


def test_an_attachment_counts_only_with_or_attachment(directory, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__ATTACHMENTS_PATH", f"file://{tmp_path}")
    strict = make(EmailClient(), counterparty_code="ACME")
    lenient = make(EmailClient(or_attachment=True), counterparty_code="ACME")
    for task in (strict, lenient):
        add_attachment(
            task.id, actor="rob", filename="solution.pdf", content_type="application/pdf", data=b"%PDF"
        )
    with pytest.raises(FormErrors) as refused:
        complete(strict.id, actor="rob", answers={"solution": "x"}, wake=False)
    assert set(refused.value.errors) == {"required_action"}
    assert (
        complete(lenient.id, actor="rob", answers={"solution": "x"}, wake=False).task.status
        == TaskStatus.COMPLETED
    )


def test_the_address_comes_from_the_named_field_first(directory):
    task = make(
        EmailClient(to_field="client_email"),
        counterparty_code="ACME",
        data={"client_email": "buyer@dealer.example"},
    )
    assert email_client(task.id, actor="rob", subject="S", text="T").details["to"] == "buyer@dealer.example"


@pytest.mark.parametrize(
    ("subject", "text", "fields"),
    [
        ("", "body", {"subject"}),
        ("s", "  ", {"text"}),
        ("x" * 201, "body", {"subject"}),
        ("", "", {"subject", "text"}),
    ],
    ids=["no-subject", "blank-text", "long-subject", "both"],
)
def test_a_bad_message_is_a_field_error_and_sends_nothing(directory, subject, text, fields):
    task = make(EmailClient(), counterparty_code="ACME")
    with pytest.raises(FormErrors) as info:
        email_client(task.id, actor="rob", subject=subject, text=text)
    assert set(info.value.errors) == fields
    assert counts(task.id) == (0, 0, "open")


def test_no_client_address_is_a_field_error(directory):
    task = make(EmailClient())  # no counterparty, no address field
    with pytest.raises(FormErrors) as info:
        email_client(task.id, actor="rob", subject="S", text="T")
    assert set(info.value.errors) == {"to"}
    assert counts(task.id) == (0, 0, "open")


def test_a_task_without_the_action_has_no_client_and_a_closed_one_takes_no_email(directory):
    with write_session() as session:
        plain = make_task(session, form_schema=FORM)
    assert of_task(plain) is None
    with pytest.raises(FormErrors) as info:
        email_client(plain.id, actor="rob", subject="S", text="T")
    assert set(info.value.errors) == {"_form"}
    task = make(EmailClient(or_attachment=True), counterparty_code="ACME")
    email_client(task.id, actor="rob", subject="S", text="T")
    complete(task.id, actor="rob", answers={"solution": "x"}, wake=False)
    with pytest.raises(TaskConflict):
        email_client(task.id, actor="rob", subject="S", text="again")
    assert counts(task.id) == (1, 1, "completed")


def test_the_same_message_goes_out_once_and_concurrent_copies_get_a_conflict(directory):
    import threading

    task = make(EmailClient(), counterparty_code="ACME")
    email_client(task.id, actor="rob", subject="Solution", text="Kit A fits.")
    with pytest.raises(TaskConflict, match="already sent"):
        email_client(task.id, actor="rob", subject="Solution", text="Kit A fits.")
    assert counts(task.id) == (1, 1, "open")

    # Eight identical submissions at once (a double click, a retrying client): one email.
    barrier = threading.Barrier(8)
    results: list[str] = []

    def press() -> None:
        barrier.wait()
        try:
            email_client(task.id, actor="rob", subject="Solution, revised", text="Kit B fits better.")
            results.append("sent")
        except TaskConflict:
            results.append("conflict")

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["conflict"] * 7 + ["sent"]
    assert counts(task.id) == (2, 2, "open")
