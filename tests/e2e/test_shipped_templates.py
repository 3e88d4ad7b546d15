"""Every shipped process template end to end through the web API, on a real Airflow with a real SMTP
server: started with Tempo's start API, every human step answered by its person through
``/tempo/api/v1``, run to success. The dealer purchase's required action (email the client) is done
on the task page in chromium; screenshots go to ``tests/artifacts/screenshots``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tempo.store.engine import read_session
from tempo.store.models import Process, ProcessStatus, Task, TaskStatus
from tests.conftest import REPO
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

SHOTS = REPO / "tests" / "artifacts" / "screenshots"

#: How each shipped template is started here; tests/e2e/test_example_dags.py checks that every DAG
#: in dags/ is started by one of its own examples or by this module.
SHIPPED_STARTS = {
    "dealer_purchase": {
        "order_number": "DP-50001",
        "counterparty": "ACME",
        "product": "Pump P-20",
        "quantity": 2,
        "amount": 1500,
    },
    "deal_approval": {
        "deal_number": "DL-60001",
        "counterparty": "GLOBEX",
        "amount": 20000,
        "terms": "Net 30",
    },
    "rma_sales_order_yaml": {
        "rma_number": "RMA-70001",
        "customer": "Initech",
        "part": "Valve V-2",
        "in_warranty": False,
    },
}


class Web:
    """People acting through Tempo's JSON API with their own Airflow logins."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.tokens: dict[str, str] = {}

    def call(self, user: str, method: str, path: str, **kwargs) -> httpx.Response:
        if user not in self.tokens:
            self.tokens[user] = self.stack.token(user)
        return httpx.request(
            method,
            f"{self.stack.base_url}/tempo/api/v1{path}",
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=60,
            **kwargs,
        )

    def start(self, user: str, dag_id: str) -> str:
        response = self.call(user, "POST", f"/processes/{dag_id}", json={"conf": SHIPPED_STARTS[dag_id]})
        assert response.status_code == 201, response.text
        return response.json()["run_id"]

    def complete(self, user: str, task: Task, answers: dict, outcome: str | None = None) -> httpx.Response:
        return self.call(
            user, "POST", f"/tasks/{task.id}/complete", json={"answers": answers, "outcome": outcome}
        )

    def answer(self, user: str, task: Task, answers: dict, outcome: str | None = None) -> dict:
        response = self.complete(user, task, answers, outcome)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        return response.json()


@pytest.fixture(scope="module")
def web(airflow_stack) -> Web:
    return Web(airflow_stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is required (make test installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def rob_in_browser(browser):
    """A page in chromium logged in as Rob (Airflow's UI cookie)."""
    contexts = []

    def open_page(stack):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": "_token", "value": stack.token("rob"), "url": stack.base_url}])
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def waiting(run_id: str, task_id: str) -> Task:
    return wait_until(lambda: open_task(run_id, task_id), timeout=180, what=f"step {task_id}")


def process_of(run_id: str) -> Process:
    with read_session() as session:
        return session.scalars(select(Process).where(Process.run_id == run_id)).one()


def mails_to(mail, address: str, containing: str) -> list:
    return [
        m for m in mail.messages if address in m.envelope_to and containing in (m.subject + m.body("plain"))
    ]


def test_dealer_purchase(airflow_stack, web, mail, rob_in_browser):
    run_id = web.start("sam", "dealer_purchase")

    solution = waiting(run_id, "prepare_technical_solution")
    assert solution.title == "Preparation of the technical solution for DP-50001"
    assert solution.candidate_role == "technical_specialist"
    assert solution.due_at is not None  # one working day of the specialist's calendar
    assert solution.sla_policy["due_seconds"] == 8 * 3600
    assert solution.sla_policy["remind_before_seconds"] == 3600
    wait_until(lambda: mails_to(mail, "rob@example.com", "DP-50001"), what="Rob's assignment email")

    # The required action first: completing before emailing the client is refused.
    refused = web.complete("rob", solution, {"solution": "Two P-20 pumps with mounting kit"})
    assert refused.status_code == 422
    assert set(refused.json()["detail"]["errors"]) == {"required_action"}
    with read_session() as session:
        assert session.get_one(Task, solution.id).status == TaskStatus.OPEN

    # Rob writes to the client on the task page, in a real browser.
    page = rob_in_browser(airflow_stack)
    page.goto(f"{airflow_stack.base_url}/tempo/tasks/{solution.id}")
    assert "orders@acme.example" in page.inner_text("#client-email-to")
    page.fill("#f-solution", "Two P-20 pumps with mounting kit")
    page.click("#task-form button[type=submit]")
    assert "Email the client" in page.inner_text("#required-action-error")
    page.screenshot(path=str(SHOTS / "dealer-1-required-action.png"), full_page=True)
    page.fill("#client-email-form input[name=subject]", "Technical solution DP-50001")
    page.fill("#client-email-form textarea[name=text]", "Two P-20 pumps with the mounting kit.")
    page.click("#client-email-form button[type=submit]")
    page.wait_for_selector("#client-email-done")
    page.screenshot(path=str(SHOTS / "dealer-2-client-emailed.png"), full_page=True)
    to_client = wait_until(
        lambda: mails_to(mail, "orders@acme.example", "Technical solution DP-50001"),
        what="the client's email",
    )
    assert "mounting kit" in to_client[0].body("plain")
    web.answer("rob", solution, {"solution": "Two P-20 pumps with mounting kit"})

    payment = waiting(run_id, "confirm_payment")
    assert payment.candidate_role == "financial_manager" and payment.outcomes == ["confirmed", "declined"]
    web.answer("fiona", payment, {"payment_reference": "BANK-777"}, outcome="confirmed")

    assert airflow_stack.wait_for_run("dealer_purchase", run_id) == "success"
    process = process_of(run_id)
    assert process.status == ProcessStatus.SUCCESS and process.counterparty_code == "ACME"
    assert process.data["payment"] == "confirmed" and process.data["payment_checked_by"] == "fiona"
    result = wait_until(lambda: mails_to(mail, "sam@example.com", "payment confirmed"), what="Sam's result")
    assert "DP-50001" in result[0].subject


def test_deal_approval_with_one_rejection_round(airflow_stack, web, mail):
    run_id = web.start("sam", "deal_approval")
    reviewers = {"finance": "fiona", "legal": "laura", "supply": "steve"}

    # Round 1: the three reviews wait in parallel; legal rejects.
    round_1 = {name: waiting(run_id, f"{name}_review_1") for name in reviewers}
    assert "Net 30" in round_1["legal"].instructions
    web.answer("fiona", round_1["finance"], {"reason": ""}, outcome="approve")
    web.answer("laura", round_1["legal"], {"reason": "The liability cap is missing."}, outcome="reject")
    web.answer("steve", round_1["supply"], {}, outcome="approve")

    # Back to sales with the reasons.
    revise = waiting(run_id, "sales_revise_2")
    assert revise.assignee == "sam"
    assert "legal: The liability cap is missing." in revise.instructions
    assert "finance" not in revise.instructions.split("rejected deal DL-60001:")[1].split("Revise")[0]
    web.answer("sam", revise, {"terms": "Net 30, liability capped at 1M EUR", "response": "Cap added."})

    # Round 2: the reviewers see the revised terms; all approve.
    round_2 = {name: waiting(run_id, f"{name}_review_2") for name in reviewers}
    assert "liability capped at 1M EUR" in round_2["finance"].instructions
    for name, task in round_2.items():
        web.answer(reviewers[name], task, {}, outcome="approve")

    assert airflow_stack.wait_for_run("deal_approval", run_id) == "success"
    states = airflow_stack.task_states("deal_approval", run_id)
    assert states["approved_1"] == "skipped" and states["approved_2"] == "success"
    assert states["deal_approved"] == "success" and states["deal_rejected"] == "skipped"
    assert states["sales_revise_3"] == "skipped" and states["finance_review_3"] == "skipped"
    process = process_of(run_id)
    assert process.data["decision"] == "approved" and process.data["review_rounds"] == 2
    assert "liability cap is missing" in process.data["last_rejection"]
    approved = wait_until(lambda: mails_to(mail, "sam@example.com", "DL-60001 approved"), what="Sam's news")
    assert "review round 2" in approved[0].body("plain")


def test_yaml_rma_sales_order(airflow_stack, web, mail):
    run_id = web.start("rob", "rma_sales_order_yaml")

    task = waiting(run_id, "create_sales_order")
    assert task.title == "Create a sales order for RMA-70001" and task.candidate_role == "customer_service"
    assert task.sla_policy["escalations"][0]["to"] == "unit_head"
    bad = web.complete("sandra", task, {"so_number": "12345"})
    assert bad.status_code == 422 and set(bad.json()["detail"]["errors"]) == {"so_number"}
    web.answer("sandra", task, {"so_number": "SO-707070"})

    assert airflow_stack.wait_for_run("rma_sales_order_yaml", run_id) == "success"
    process = process_of(run_id)
    assert process.business_key == "RMA-70001"
    assert process.data["so_number"] == "SO-707070" and process.data["so_created_by"] == "sandra"
    wait_until(lambda: mails_to(mail, "rob@example.com", "SO-707070"), what="Rob's S/O email")
    to_john = wait_until(lambda: mails_to(mail, "john@example.com", "RMA-70001"), what="John's email")
    assert "SO-707070" in to_john[0].body("plain")
