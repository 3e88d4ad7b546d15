"""Benchmark DAG (``bench/waiting.py``): one run opens ``steps`` of Airflow's ``ApprovalOperator``.

The same shape as ``bench_waiting_steps`` (a mapped step per title) with the standard provider's
human-in-the-loop operator, which has no reminders.
"""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

with DAG(
    "bench_waiting_hitl",
    schedule=None,
    catchup=False,
    tags=["bench"],
    params={"ref": Param("", type="string"), "steps": Param("1", type="string")},
) as dag:

    @task
    def step_titles(params: dict | None = None) -> list[str]:
        params = params or {}
        return [f"{params['ref']} step {index}" for index in range(int(params["steps"]))]

    ApprovalOperator.partial(task_id="answer").expand(subject=step_titles())
