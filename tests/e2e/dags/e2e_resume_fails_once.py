"""Test-only process: the first resumed attempt of the human step fails, as it does when Airflow 3.3
applies a stale executor event to a task that resumed within seconds of deferring."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException

from tempo import Form, HumanStep, Person, Text, process


class ResumeFailsOnce(HumanStep):
    def execute_complete(self, context, event):
        if context["ti"].try_number == 1:
            raise AirflowException("simulated: state mismatch from a stale executor event")
        return super().execute_complete(context, event)


with process("e2e_resume_fails_once", title="Resume fails once", start_form=Form(ref=Text())) as dag:
    ResumeFailsOnce(
        task_id="ask",
        title="Answer {{ params.ref }}",
        assign_to=Person("sandra"),
        form=Form(answer=Text()),
    )
