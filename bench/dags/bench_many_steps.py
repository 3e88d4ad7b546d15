"""Benchmark and fault-injection DAG: one run opens ``steps`` human steps at once (a mapped HumanStep).

Each mapped step is its own Tempo task (one per map index) assigned to sandra, with one text field.
The run ends when every step is answered.
"""

from __future__ import annotations

from airflow.sdk import task

from tempo import Form, HumanStep, Person, Text, process

with process(
    "bench_many_steps",
    title="Benchmark: many steps",
    business_key="ref",
    start_form=Form(ref=Text(label="Reference"), steps=Text(label="Steps", pattern=r"\d{1,5}")),
) as dag:

    @task
    def step_titles(params: dict | None = None) -> list[str]:
        params = params or {}
        return [f"{params['ref']} step {index}" for index in range(int(params["steps"]))]

    HumanStep.partial(
        task_id="answer",
        assign_to=Person("sandra"),
        form=Form(answer=Text(label="Answer")),
    ).expand(title=step_titles())
