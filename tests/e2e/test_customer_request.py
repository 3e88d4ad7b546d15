"""The customer request process end to end: a counterparty registers a request on the public page,
its specialist takes it and decides through the web API, the counterparty is emailed the result and
disputes it through its link with a file, the head of the specialist's unit is emailed the claim and
decides again, the counterparty hears the final decision, and the run succeeds."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from tempo import links
from tempo.catalogs import load_catalog
from tempo.store.engine import read_session
from tempo.store.models import Attachment, Counterparty, Process, ProcessStatus, TaskEvent
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

COUNTERPARTY = "service@initech-e2e.example"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def mail_to(mail, address: str, subject_part: str):
    return [m for m in mail.messages if address in m.envelope_to and subject_part in m.subject]


def process_row(process_id: int) -> Process:
    with read_session() as session:
        return session.get_one(Process, process_id)


def test_public_request_decided_disputed_escalated_and_closed(airflow_stack, mail):
    def complete(task_id: int, user: str, body: dict) -> httpx.Response:
        return airflow_stack.api("POST", f"/tempo/api/v1/tasks/{task_id}/complete", user=user, json=body)

    with httpx.Client(base_url=airflow_stack.base_url, timeout=60) as public:
        token = csrf_of(public.get("/tempo/request/warranty_claim").text)
        registered = public.post(
            "/tempo/request/warranty_claim",
            data={
                "csrf": token,
                "name": "Initech GmbH",
                "email": COUNTERPARTY,
                "subject": "Pump P-20 stopped",
                "description": "It stopped after two weeks of use.",
                "serial_number": "SN-654321",
                "purchase_date": "2026-11-02",
            },
            files=[("attachments", ("nameplate.jpg", b"\xff\xd8 nameplate", "image/jpeg"))],
        )
        assert registered.status_code == 303, registered.text
        status_path = registered.headers["location"]
        process_id = links.verify_request_status(status_path.rsplit("/", 1)[1])
        run_id = process_row(process_id).run_id

        # Identified: a new card, so a first request, handed to customer service's specialist.
        take = wait_until(
            lambda: open_task(run_id, "take_request"), timeout=120, what="the specialist's task"
        )
        assert take.assignee == "sandra"
        assert take.title == "First request from Initech GmbH: Pump P-20 stopped"
        with read_session() as session:
            card = session.get_one(Counterparty, process_row(process_id).counterparty_code)
            assert (card.email, card.responsible_username) == (COUNTERPARTY, "sandra")
        assert process_row(process_id).stage == "accepted"
        assert "Accepted" in public.get(status_path).text
        ack = wait_until(lambda: mail_to(mail, COUNTERPARTY, "We received your request"), what="the receipt")
        ack_text = ack[0].body("plain")
        assert "first request" in ack_text
        status_link = re.search(r"http://\S+/tempo/requests/(\S+)", ack_text)
        assert links.verify_request_status(status_link.group(1)) == process_id
        told = wait_until(lambda: mail_to(mail, "john@example.com", "New Warranty claim"), what="executors")
        assert "SN-654321" in told[0].body("plain")
        wait_until(
            lambda: mail_to(mail, "sandra@example.com", "First request from Initech"), what="assignment"
        )

        # The specialist takes it into work, then decides from the catalog.
        assert complete(take.id, "rob", {"outcome": "take"}).status_code == 403  # not Rob's
        assert complete(take.id, "sandra", {"outcome": "take"}).status_code == 200
        decide = wait_until(lambda: open_task(run_id, "decide"), what="the decision task")
        assert process_row(process_id).stage == "in_work"
        assert decide.form_schema["fields"][0]["choices"] == load_catalog().choices("decisions")
        bad = complete(decide.id, "sandra", {"answers": {"decision": "shrug", "explanation": ""}})
        assert bad.status_code == 422 and set(bad.json()["detail"]["errors"]) == {"decision", "explanation"}
        answer = {"decision": "repair", "explanation": "We repair the pump free of charge."}
        assert complete(decide.id, "sandra", {"answers": answer}).status_code == 200

        # The result reaches the counterparty by email, with its link to accept or dispute.
        result = wait_until(lambda: mail_to(mail, COUNTERPARTY, "Result of your request"), what="the result")
        text = result[0].body("plain")
        assert "Repair free of charge" in text and "free of charge." in text
        respond_url = re.search(r"(http://\S+/tempo/respond/\S+)", text).group(1)
        assert process_row(process_id).stage == "done"
        page = public.get(respond_url)
        assert page.status_code == 200 and "Repair free of charge" in page.text
        disputed = public.post(
            respond_url,
            data={"csrf": csrf_of(page.text), "outcome": "dispute", "claim": "The pump was never repaired."},
            files=[("claim_files", ("leak-photo.jpg", b"\xff\xd8 leak", "image/jpeg"))],
        )
        assert disputed.status_code == 303
        assert links.verify_request_status(disputed.headers["location"].rsplit("/", 1)[1]) == process_id

        # The head of Sandra's unit gets the escalation with the claim and its file.
        review = wait_until(lambda: open_task(run_id, "review_claim"), what="the head's task")
        assert review.assignee == "helen" and "The pump was never repaired." in review.instructions
        escalation = wait_until(
            lambda: mail_to(mail, "helen@example.com", "Disputed: Pump P-20"), what="claim"
        )
        claim_text = escalation[0].body("plain")
        assert "The pump was never repaired." in claim_text and "leak-photo.jpg" in claim_text
        with read_session() as session:
            claim_file = session.scalars(
                select(Attachment).where(
                    Attachment.process_id == process_id, Attachment.filename == "leak-photo.jpg"
                )
            ).one()
        download = airflow_stack.api("GET", f"/tempo/api/v1/attachments/{claim_file.id}", user="helen")
        assert download.status_code == 200 and download.content == b"\xff\xd8 leak"
        assert f"/tempo/api/v1/attachments/{claim_file.id}" in claim_text
        assert process_row(process_id).stage == "in_work"
        final = {"decision": "replace", "explanation": "We replace the pump."}
        assert complete(review.id, "helen", {"answers": final}).status_code == 200

        assert airflow_stack.wait_for_run("customer_request", run_id) == "success"
        closing = wait_until(lambda: mail_to(mail, COUNTERPARTY, "Final decision"), what="the final decision")
        assert "Replace the product" in closing[0].body("plain")
        process = process_row(process_id)
        assert process.status == ProcessStatus.SUCCESS and process.stage == "done"
        assert process.requester == COUNTERPARTY and process.data["closed"] is True
        assert process.data["claim"] == "The pump was never repaired."
        status_page = public.get(status_path).text
        assert "Done" in status_page and "Replace the product" in status_page
    with read_session() as session:
        stages = [
            e.details["to"]
            for e in session.scalars(
                select(TaskEvent)
                .where(TaskEvent.process_id == process_id, TaskEvent.kind == "stage")
                .order_by(TaskEvent.at, TaskEvent.id)
            )
        ]
    assert stages == ["accepted", "in_work", "done", "in_work", "done"]
    states = airflow_stack.task_states("customer_request", run_id)
    assert states["cancel_request"] == "skipped" and states["accepted"] == "skipped"
    assert states["close_request"] == "success"


def test_a_known_counterparty_registered_by_staff_and_cancelled(airflow_stack, mail):
    run_id = airflow_stack.trigger(
        "customer_request",
        {
            "counterparty_name": "Globex",
            "counterparty_email": "Buyers@Globex.example",
            "request_type": "delivery_problem",
            "subject": "Order PO-7788 late",
            "description": "Sent twice by mistake.",
            "request_params": {"order_number": "PO-7788", "problem": "late"},
        },
        user="sandra",
    )
    take = wait_until(lambda: open_task(run_id, "take_request"), timeout=120, what="the specialist's task")
    # Globex's card from the directory, found by its address in any case: its own specialist; the
    # card never had a request, so this is its first.
    assert take.assignee == "sandra" and take.title == "First request from Globex: Order PO-7788 late"
    body = {"outcome": "cancel", "answers": {"note": "A duplicate of an earlier request."}}
    response = airflow_stack.api("POST", f"/tempo/api/v1/tasks/{take.id}/complete", user="sandra", json=body)
    assert response.status_code == 200
    assert airflow_stack.wait_for_run("customer_request", run_id) == "success"
    with read_session() as session:
        process = session.scalars(select(Process).where(Process.run_id == run_id)).one()
    assert (process.counterparty_code, process.stage, process.data["first_time"]) == (
        "GLOBEX",
        "cancelled",
        True,
    )
    told = wait_until(
        lambda: mail_to(mail, "buyers@globex.example", "was cancelled"), what="the cancellation"
    )
    assert "A duplicate of an earlier request." in told[0].body("plain")
    states = airflow_stack.task_states("customer_request", run_id)
    assert states["decide"] == "skipped" and states["close_request"] == "skipped"
