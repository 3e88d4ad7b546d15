"""Real Airflow on PostgreSQL (Airflow's metadata and Tempo's store) with two triggerers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tempo import mailcatcher
from tempo.devstack import AirflowStack
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
    (dags / "e2e_sla.py").symlink_to(E2E_DAGS / "e2e_sla.py")
    stack = AirflowStack(
        home=home,
        dags_folder=dags,
        smtp_port=pg_mail.port,
        metadata_url=pg_cluster.url("airflow_e2e", driver="psycopg2"),
        store_url=pg_cluster.url("tempo_e2e"),
        extra_env={
            "AIRFLOW__TEMPO__OUTBOX_SWEEP_INTERVAL": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
        },
    )
    stack.prepare()
    saved = os.environ.get("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN")
    os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = str(stack.store_url)
    stack.start()
    # A second triggerer on the same databases: triggers are shared out between the two.
    stack.start_component(
        "triggerer-2", ["triggerer", "--skip-serve-logs"], stack.env(), home / "component-logs"
    )
    try:
        stack.wait_ready(["e2e_sla"])
        yield stack
    finally:
        stack.stop()
        if saved is None:
            os.environ.pop("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN", None)
        else:
            os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = saved
        from tempo.store.engine import dispose_all

        dispose_all()
