"""Test-only airflow DAG: a process with a 15-second deadline (an Airflow Deadline Alert)."""

from __future__ import annotations

from datetime import timedelta

from tempo import Form, HumanStep, Person, Text, process

with process(
    "e2e_deadline",
    title="Deadline probe",
    owner="customer_service",
    start_form=Form(ref=Text()),
    business_key="ref",
    deadline=timedelta(seconds=15),
) as dag:
    HumanStep(task_id="ask", title="Deadline {{ params.ref }}", assign_to=Person("sandra"), form=Form())
