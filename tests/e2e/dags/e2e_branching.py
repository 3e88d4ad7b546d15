"""Test-only process: the outcome a person chooses decides which path runs."""

from __future__ import annotations

from airflow.sdk import task

from tempo import Form, HumanStep, Person, Text, process, record

with process("e2e_branching", title="Branching", start_form=Form(ref=Text())) as dag:
    review = HumanStep(
        task_id="review",
        title="Review {{ params.ref }}",
        assign_to=Person("helen"),
        form=Form(reason=Text(required=False)),
        outcomes=["approve", "reject"],
        branches={"approve": "on_approve", "reject": "on_reject"},
    )

    @task
    def on_approve() -> None:
        record(path="approved")

    @task
    def on_reject(answer: dict) -> None:
        record(path="rejected", reason=answer["form"]["reason"])

    review >> on_approve()
    on_reject(review.output)
