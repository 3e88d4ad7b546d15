"""Test-only process: a step due in 20 seconds, reminded 10 seconds before, escalated 10 seconds after.

(Airflow's safe-mode DAG discovery only parses files that mention both "airflow" and "dag".)
"""

from __future__ import annotations

from datetime import timedelta

from tempo import SLA, Escalate, Form, HumanStep, Person, Text, process

with process("e2e_sla", title="SLA probe", start_form=Form(ref=Text())) as dag:
    HumanStep(
        task_id="ask",
        title="SLA {{ params.ref }}",
        assign_to=Person("sandra"),
        form=Form(answer=Text(required=False)),
        sla=SLA(
            due=timedelta(seconds=20),
            remind_before=timedelta(seconds=10),
            escalations=(Escalate(after=timedelta(seconds=10)),),
            business_time=False,
        ),
    )
