"""Airflow DAG loader for the YAML template beside this file (rma_sales_order.yaml).

One loader per template: a broken template fails this file's import alone (Airflow shows the error,
naming file, step and field) and leaves every other DAG running.
"""

from __future__ import annotations

from tempo import dag_from_yaml

dag = dag_from_yaml(__file__)
