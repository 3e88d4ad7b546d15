"""Deal approval across front and back office (an Airflow DAG built with Tempo).

Sales starts a deal; finance, legal and supply chain review it in parallel. When all approve, the
deal is approved. When any rejects, the deal goes back to sales with every reviewer's reasons;
sales revises the terms and the reviews run again.

A DAG has no loops, so the review rounds are unrolled: at most ``ROUNDS`` rounds (the first review
and two revisions). A rejection in the last round rejects the deal and closes the process.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import task

from tempo import SLA, Form, HumanStep, NotifyStep, Number, Requester, Role, Text, process, record

#: Review rounds: the first review plus two revisions. After the last rejection the deal is closed.
ROUNDS = 3

#: Who reviews, in parallel, in every round: step name -> (role, what they look at).
REVIEWERS = {
    "finance": ("financial_manager", "price, margin and payment terms"),
    "legal": ("legal_reviewer", "contract terms and liabilities"),
    "supply": ("supply_reviewer", "availability and delivery dates"),
}


def decision(round_no: int, answers: dict[str, dict]) -> tuple[str, dict, str]:
    """The step after a round's reviews, the facts for the deal's record, and the rejection reasons.

    All approve: the deal is approved. A rejection: back to sales with every reviewer's reasons, or,
    after the last round, the deal is rejected.
    """
    rejections = {
        name: (answer["form"].get("reason") or "no reason given")
        for name, answer in answers.items()
        if answer["outcome"] == "reject"
    }
    if not rejections:
        return f"approved_{round_no}", {"decision": "approved", "review_rounds": round_no}, ""
    reasons = "\n".join(f"- {name}: {reason}" for name, reason in sorted(rejections.items()))
    facts = {"last_rejection": reasons, "review_rounds": round_no}
    if round_no == ROUNDS:
        return "deal_rejected", {**facts, "decision": "rejected"}, reasons
    return f"sales_revise_{round_no + 1}", facts, reasons


def terms_of_round(round_no: int) -> str:
    """The terms the reviewers of a round see: the start form's, then each revision's."""
    if round_no == 1:
        return "{{ params.terms }}"
    return f"{{{{ ti.xcom_pull(task_ids='sales_revise_{round_no}')['form']['terms'] }}}}"


with process(
    "deal_approval",
    title="Deal approval",
    description="Finance, legal and supply chain review a deal in parallel; a rejection returns it to sales.",
    owner="sales",
    business_key="deal_number",
    start_form=Form(
        deal_number=Text(
            label="Deal number", pattern=r"DL-\d{4,10}", pattern_message="Use the form DL-12345."
        ),
        counterparty=Text(label="Customer (counterparty code)", pattern=r"[A-Z0-9_]{2,64}"),
        amount=Number(label="Amount (EUR)", minimum=0),
        terms=Text(label="Terms", multiline=True, max_length=5000),
    ),
) as dag:
    deal_approved = NotifyStep(
        task_id="deal_approved",
        to=Requester(),
        template="deal_approved",
        # One of the rounds approved; the rounds never reached are skipped.
        trigger_rule="none_failed_min_one_success",
    )

    previous = None
    for round_no in range(1, ROUNDS + 1):
        reviews = []
        for name, (role, focus) in REVIEWERS.items():
            reviews.append(
                HumanStep(
                    task_id=f"{name}_review_{round_no}",
                    title=name.capitalize()
                    + " review of deal {{ params.deal_number }}"
                    + f" (round {round_no})",
                    instructions=(
                        f"Review {focus} of deal "
                        + "{{ params.deal_number }} for {{ params.counterparty }} ({{ params.amount }} EUR)."
                        + f"\n\nTerms:\n{terms_of_round(round_no)}\n\n"
                        + "Approve, or reject and give your reasons: sales will revise the deal."
                    ),
                    assign_to=Role(role),
                    form=Form(reason=Text(label="Reasons", required=False, multiline=True)),
                    outcomes=["approve", "reject"],
                    sla=SLA(due=timedelta(hours=16), remind_before=timedelta(hours=2)),
                )
            )

        @task.branch(task_id=f"decide_{round_no}")
        def decide(finance: dict, legal: dict, supply: dict, round_no: int, ti=None) -> str:
            branch, facts, reasons = decision(
                round_no, {"finance": finance, "legal": legal, "supply": supply}
            )
            record(**facts)
            if reasons:
                ti.xcom_push(key="reasons", value=reasons)
            return branch

        decided = decide(
            **{name: review.output for name, review in zip(REVIEWERS, reviews, strict=True)},
            round_no=round_no,
        )
        if previous is not None:
            previous >> reviews
        approved = EmptyOperator(task_id=f"approved_{round_no}")
        decided >> approved >> deal_approved
        if round_no < ROUNDS:
            previous = HumanStep(
                task_id=f"sales_revise_{round_no + 1}",
                title=f"Revise deal {{{{ params.deal_number }}}} (round {round_no + 1} of {ROUNDS})",
                instructions=(
                    f"The reviewers rejected deal {{{{ params.deal_number }}}}:\n"
                    f"{{{{ ti.xcom_pull(task_ids='decide_{round_no}', key='reasons') }}}}\n\n"
                    "Revise the terms; the deal goes back to finance, legal and supply chain."
                ),
                assign_to=Requester(),
                form=Form(
                    terms=Text(label="Revised terms", multiline=True, max_length=5000),
                    response=Text(label="Answer to the reviewers", required=False, multiline=True),
                ),
                sla=SLA(due=timedelta(hours=16), remind_before=timedelta(hours=2)),
            )
            decided >> previous
        else:
            deal_rejected = NotifyStep(task_id="deal_rejected", to=Requester(), template="deal_rejected")
            decided >> deal_rejected
