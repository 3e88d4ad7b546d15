"""Test-only process: one human step, then a task that records the answer on the process."""

from __future__ import annotations

from airflow.sdk import task

from tempo import Form, HumanStep, Person, Text, process, record

with process(
    "e2e_quick_step",
    title="Quick step",
    business_key="ref",
    start_form=Form(ref=Text(label="Reference")),
) as dag:
    ask = HumanStep(
        task_id="ask",
        title="Answer for {{ params.ref }}",
        assign_to=Person("sandra"),
        form=Form(answer=Text(label="Answer", pattern=r"[A-Z]{3}-\d+")),
    )

    @task
    def keep(answer: dict) -> str:
        record(answer=answer["form"]["answer"], by=answer["completed_by"])
        return answer["form"]["answer"]

    keep(ask.output)
