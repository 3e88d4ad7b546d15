"""Benchmark DAG: one Tempo human step, then the task whose start time is measured."""

from __future__ import annotations

from airflow.sdk import task

from tempo import Form, HumanStep, Person, Text, process

with process("bench_tempo_step", title="Benchmark: Tempo step", start_form=Form(ref=Text())) as dag:
    approve = HumanStep(
        task_id="approve",
        title="Approve {{ params.ref }}",
        assign_to=Person("sandra"),
        outcomes=["approve", "reject"],
    )

    @task
    def after() -> None:
        pass

    approve >> after()
