"""Pages read in words: field labels, Yes/No, status words, people's, roles', units' and
counterparties' names, step titles and history details, never the codes the store keeps."""

from __future__ import annotations

import re

import pytest

from tempo.store.engine import write_session
from tempo.store.models import ProcessStatus
from tempo.store.processes import finish_process
from tempo.store.tasks import assign_task, complete_task
from tests.factories import make_process, make_task
from tests.web.conftest import auth

SO_FORM = {"fields": [{"name": "so_number", "type": "text", "label": "S/O number", "required": True}]}


@pytest.fixture
def rma(web):
    """A finished RMA process of Rob's for ACME: its record holds a keyed field, a boolean, a
    username and a mapping; one task answered by Sandra, one waiting in a role's queue, one handed
    to John."""
    with write_session() as session:
        process = make_process(
            session,
            dag_id="rma_sales_order",
            template="rma_sales_order",
            title="RMA RMA-1234",
            requester="rob",
            counterparty_code="ACME",
            data={
                "rma_number": "RMA-1234",
                "in_warranty": False,
                "so_created_by": "sandra",
                "counterparty": "GLOBEX",
                "request_params": {"serial_number": "SN-9", "urgent": True},
                "_deadline_missed": True,
            },
        )
        done = make_task(
            session,
            process,
            task_id="create_sales_order",
            title="Create a sales order for RMA-1234",
            form_schema=SO_FORM,
            candidate_role="customer_service",
        )
        complete_task(session, done.id, actor="sandra", result={"so_number": "SO-123456"})
        queued = make_task(
            session,
            process,
            task_id="check_stock",
            title="Check the stock",
            candidate_role="customer_service",
        )
        handed = make_task(session, process, task_id="second_look", title="A second look", assignee="sandra")
        assign_task(session, handed.id, actor="helen", to="john", kind="reassigned")
        finish_process(session, process, ProcessStatus.SUCCESS)
        return {"process": process.id, "done": done.id, "queued": queued.id}


def _text(html: str) -> str:
    """The page's words, tags dropped: what a person reads."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_process_page_reads_in_words(web, rma):
    page = web.get(f"/tempo/processes/{rma['process']}", headers=auth("rob"))
    assert page.status_code == 200
    html, text = page.text, _text(page.text)
    # The record: labels of the start form, Yes/No, names, a mapping as text, Tempo's own keys hidden.
    assert "<th>RMA number</th><td>RMA-1234</td>" in html and "rma_number" not in text
    assert "<th>In warranty</th><td>No</td>" in html and "False" not in text
    assert "<th>So created by</th><td>Sandra Service</td>" in html
    assert "<th>Counterparty</th><td>Globex Ltd</td>" in html and "GLOBEX" not in text
    # (in either order: PostgreSQL's JSONB keeps a mapping's keys in an order of its own)
    assert "Serial number: SN-9" in text and "Urgent: Yes" in text and "{'serial_number'" not in html
    assert "deadline_missed" not in text
    # Status words, the requester by name, the queue by its role's name.
    assert 'id="process-status">Done<' in html and "success" not in text
    assert "by Rob Engineer" in text and " by rob " not in text
    assert "Customer service agent (queue)" in text and "customer_service" not in text
    # The history: event kinds and details as words, people by name.
    assert "Reassigned Helen Service-Head to John Repair" in text and "{'to'" not in html
    assert "Process done" in text and "process_success" not in text
    # The route map: each step by its title, the task_id only in its data attribute.
    assert "<title>Create a sales order for RMA-1234</title>" in html
    assert "<title>create_sales_order</title>" not in html and "<title>Repair can start</title>" in html


def test_the_task_page_names_the_queue_the_answerer_and_the_next_step(web, rma):
    waiting = web.get(f"/tempo/tasks/{rma['queued']}", headers=auth("sandra"))
    assert waiting.status_code == 200
    assert 'id="task-holder">Customer service agent (queue)<' in waiting.text
    assert 'id="task-status">Open<' in waiting.text and "@customer_service" not in waiting.text
    assert "<th>RMA number</th><td>RMA-1234</td>" in waiting.text

    done = web.get(f"/tempo/tasks/{rma['done']}", headers=auth("sandra"))
    text = _text(done.text)
    assert "Completed by Sandra Service" in text and "by sandra" not in text
    assert "<th>S/O number</th><td>SO-123456</td>" in done.text and "so_number" not in text
    # "Next" names the step after this one by its title, not its task_id.
    assert re.search(r"Next: Record so number", text) and "record_so_number" not in text


def test_the_inbox_names_whom_each_task_waits_for(web, rma):
    page = web.get("/tempo/inbox?status_filter=open", headers=auth("sandra"))
    assert page.status_code == 200
    text = _text(page.text)
    assert "Customer service agent (queue)" in text and "@customer_service" not in text
    assert ">Open</span>" in page.text and ">open</span>" not in page.text


def test_the_process_log_names_requester_counterparty_and_status(web, rma):
    page = web.get("/tempo/reports/processes", headers=auth("admin"))
    assert page.status_code == 200
    row = re.search(r'<table tabindex="0" id="process-log">.*?</table>', page.text, re.S).group(0)
    assert "<td>Rob Engineer</td><td>ACME Corporation</td>" in row
    assert ">Done</span>" in row and ">success</span>" not in row
    # The status chart's bars say the word too; its links keep the code the filter takes.
    assert 'data-label="Done"' in page.text and "status=success" in page.text
    # The CSV stays for programs: codes.
    csv = web.get("/tempo/api/v1/reports/processes?format=csv&table=processes", headers=auth("admin"))
    assert ",success," in csv.text and ",rob," in csv.text and ",ACME," in csv.text


def test_the_performance_page_names_people_and_units(web, rma):
    page = web.get("/tempo/reports/performance", headers=auth("admin"))
    assert page.status_code == 200
    table = re.search(r'id="performance-people".*?</table>', page.text, re.S).group(0)
    assert "<td>Sandra Service</td><td>Customer service</td>" in table and "<td>sandra</td>" not in table
    assert 'data-label="Sandra Service"' in page.text
