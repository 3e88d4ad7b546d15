"""Benchmark DAG (``bench/waiting.py``): one run opens ``steps`` Tempo steps, each with a reminder.

A mapped ``HumanStep`` assigned to sandra; each step's SLA reminds her a fixed time after the step
opens, in plain elapsed time: ``TEMPO_BENCH_REMIND_AFTER`` seconds (default 300), set by the bench
for every component. The due date is an hour after the reminder, so that only the reminder fires
while the bench watches. The DAG uses only API that Tempo had before and after steps stopped
deferring to triggers, so one file serves both.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import task

from tempo import SLA, Form, HumanStep, Person, Text, process

REMIND_AFTER = timedelta(seconds=float(os.environ.get("TEMPO_BENCH_REMIND_AFTER", "300")))
AFTER_REMINDER = timedelta(hours=1)

with process(
    "bench_waiting_steps",
    title="Benchmark: waiting steps with reminders",
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
        sla=SLA(due=REMIND_AFTER + AFTER_REMINDER, remind_before=AFTER_REMINDER, business_time=False),
    ).expand(title=step_titles())
