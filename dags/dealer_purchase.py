"""Dealer single purchase (an Airflow DAG built with Tempo).

A dealer asks to buy once. A technical specialist prepares the technical solution within one
working day (reminded an hour before the end) and must send it to the client from the task page,
or attach the document, before the step can be completed; then the financial manager confirms the
payment, and the requester hears the result.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from tempo import (
    SLA,
    EmailClient,
    Form,
    HumanStep,
    NotifyStep,
    Number,
    Requester,
    Role,
    Text,
    process,
    record,
)

with process(
    "dealer_purchase",
    title="Dealer single purchase",
    description=(
        "A one-off purchase by a dealer: the technical solution goes to the client, then finance "
        "confirms the payment."
    ),
    owner="sales",
    business_key="order_number",
    start_form=Form(
        order_number=Text(
            label="Order number", pattern=r"DP-\d{4,10}", pattern_message="Use the form DP-12345."
        ),
        counterparty=Text(label="Dealer (counterparty code)", pattern=r"[A-Z0-9_]{2,64}"),
        product=Text(label="Product", max_length=200),
        quantity=Number(label="Quantity", integer=True, minimum=1),
        amount=Number(label="Amount (EUR)", minimum=0),
    ),
) as dag:
    prepare_solution = HumanStep(
        task_id="prepare_technical_solution",
        title="Preparation of the technical solution for {{ params.order_number }}",
        instructions=(
            "{{ params.counterparty }} wants {{ params.quantity }} x {{ params.product }}. Prepare the "
            "technical solution and email it to the client from this page (or attach the document "
            "if you sent it another way), then complete the step."
        ),
        assign_to=Role("technical_specialist"),
        form=Form(solution=Text(label="Technical solution (summary)", multiline=True, max_length=5000)),
        # One working day (eight working hours of the specialist's calendar), a reminder an hour
        # before it ends.
        sla=SLA(due=timedelta(hours=8), remind_before=timedelta(hours=1)),
        required_action=EmailClient(or_attachment=True, subject="Your technical solution"),
    )

    confirm_payment = HumanStep(
        task_id="confirm_payment",
        title="Payment confirmation for {{ params.order_number }}",
        instructions=(
            "Confirm that {{ params.counterparty }} paid {{ params.amount }} EUR for order "
            "{{ params.order_number }}, or decline it."
        ),
        assign_to=Role("financial_manager"),
        form=Form(
            payment_reference=Text(label="Payment reference", required=False, max_length=100),
            note=Text(label="Note", required=False, multiline=True),
        ),
        outcomes=["confirmed", "declined"],
        sla=SLA(due=timedelta(hours=8), remind_before=timedelta(hours=1)),
    )

    @task
    def record_result(answer: dict) -> str:
        payment = answer["outcome"]  # "confirmed" or "declined"
        record(payment=payment, payment_checked_by=answer["completed_by"])
        return payment

    tell_requester = NotifyStep(task_id="tell_requester", to=Requester(), template="dealer_purchase_result")

    prepare_solution >> confirm_payment
    record_result(confirm_payment.output) >> tell_requester
