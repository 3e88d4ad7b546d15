"""The shipped Python processes' own logic, without Airflow running: how a deal-approval round
decides, and the dealer purchase's required action and SLA.

End to end on a real Airflow: tests/e2e/test_shipped_templates.py."""

from __future__ import annotations

import importlib
import sys

import pytest

from tempo import EmailClient
from tests.conftest import REPO


@pytest.fixture(scope="module")
def dags():
    sys.path.insert(0, str(REPO / "dags"))
    try:
        yield {name: importlib.import_module(name) for name in ("deal_approval", "dealer_purchase")}
    finally:
        sys.path.remove(str(REPO / "dags"))


def answer(outcome: str, reason: str = "") -> dict:
    return {"outcome": outcome, "form": {"reason": reason}}


def test_all_approvals_approve_the_deal(dags):
    decision = dags["deal_approval"].decision
    approve = {name: answer("approve") for name in ("finance", "legal", "supply")}
    assert decision(2, approve) == ("approved_2", {"decision": "approved", "review_rounds": 2}, "")


def test_a_rejection_returns_to_sales_with_every_reason(dags):
    decision = dags["deal_approval"].decision
    branch, facts, reasons = decision(
        1,
        {
            "finance": answer("reject", "Margin too low."),
            "legal": answer("reject"),
            "supply": answer("approve"),
        },
    )
    assert branch == "sales_revise_2"
    assert reasons == "- finance: Margin too low.\n- legal: no reason given"
    assert facts == {"last_rejection": reasons, "review_rounds": 1}


def test_a_rejection_in_the_last_round_rejects_the_deal(dags):
    module = dags["deal_approval"]
    branch, facts, _ = module.decision(
        module.ROUNDS,
        {"finance": answer("approve"), "legal": answer("approve"), "supply": answer("reject", "No stock.")},
    )
    assert branch == "deal_rejected" and facts["decision"] == "rejected"
    # The last round's decision can only approve or reject: there is no further revision step.
    dag = module.dag
    assert {t.task_id for t in dag.get_task(f"decide_{module.ROUNDS}").downstream_list} == {
        f"approved_{module.ROUNDS}",
        "deal_rejected",
    }
    assert f"sales_revise_{module.ROUNDS + 1}" not in dag.task_ids


def test_the_technical_solution_needs_the_client_email_within_a_working_day(dags):
    step = dags["dealer_purchase"].dag.get_task("prepare_technical_solution")
    assert step.title.startswith("Preparation of the technical solution")
    assert step.required_action == EmailClient(or_attachment=True, subject="Your technical solution")
    assert step.sla.due.total_seconds() == 8 * 3600 and step.sla.business_time
    assert step.sla.remind_before.total_seconds() == 3600
    assert step.assign_to.code == "technical_specialist"
    assert [t.task_id for t in step.downstream_list] == ["confirm_payment"]
