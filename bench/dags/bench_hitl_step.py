"""Benchmark DAG: Airflow's own human-in-the-loop ApprovalOperator, then the measured task."""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, task

with DAG("bench_hitl_step", schedule=None, catchup=False, tags=["bench"]) as dag:
    approve = ApprovalOperator(task_id="approve", subject="Approve the benchmark run")

    @task
    def after() -> None:
        pass

    approve >> after()
