"""Real Airflow on PostgreSQL (Airflow's metadata and Tempo's store), scaled out: two triggerers and
two API servers share one scheduler, one dag-processor and the databases, so every test here runs
the way a scaled-out deployment does."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.faults import BENCH_DAGS
from tempo_dev import mailcatcher
from tempo_dev.devstack import AirflowStack
from tests.conftest import REPO
from tests.e2e.conftest import E2E_DAGS
from tests.pgcluster import PgCluster


@pytest.fixture(scope="package")
def pg_mail() -> Iterator[mailcatcher.CatchingHandler]:
    controller, handler = mailcatcher.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@pytest.fixture(scope="package")
def pg_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster, pg_mail
) -> Iterator[AirflowStack]:
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE airflow_e2e")
        conn.execute("CREATE DATABASE tempo_e2e")
    home = tmp_path_factory.mktemp("airflow-pg-home")
    dags = home / "dags"
    dags.mkdir()
    for dag_file in (
        E2E_DAGS / "e2e_sla.py",
        E2E_DAGS / "e2e_quick_step.py",
        BENCH_DAGS / "bench_many_steps.py",
    ):
        (dags / dag_file.name).symlink_to(dag_file)
    stack = AirflowStack(
        home=home,
        dags_folder=dags,
        smtp_port=pg_mail.port,
        metadata_url=pg_cluster.url("airflow_e2e", driver="psycopg2"),
        store_url=pg_cluster.url("tempo_e2e"),
        extra_env={
            "AIRFLOW__TEMPO__OUTBOX_SWEEP_INTERVAL": "2",
            "AIRFLOW__TEMPO__CLOCK_INTERVAL": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
        },
    )
    stack.prepare()
    saved = os.environ.get("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN")
    os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = str(stack.store_url)
    stack.start()
    stack.add_triggerer("triggerer-2")
    stack.add_api_server("api-server-2")
    try:
        stack.wait_ready(["e2e_sla", "e2e_quick_step", "bench_many_steps"])
        stack.wait_api_server("api-server-2")
        yield stack
    finally:
        stack.stop()
        # Kept for a failure's post-mortem: which component did what, when.
        artifacts = REPO / "tests" / "artifacts" / "e2e-postgres-logs"
        artifacts.mkdir(parents=True, exist_ok=True)
        for name in stack.commands:
            (artifacts / f"{name}.log").write_text(stack.log(name)[-500_000:])
        if saved is None:
            os.environ.pop("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN", None)
        else:
            os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = saved
        from tempo.store.engine import dispose_all

        dispose_all()
