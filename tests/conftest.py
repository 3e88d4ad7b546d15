from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Airflow reads AIRFLOW_HOME when it is first imported: every test process gets its own.
_HOME = Path(tempfile.mkdtemp(prefix="tempo-test-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__TEMPO__SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["AIRFLOW__TEMPO__BASE_URL"] = "http://tempo.example.test"
# In-process tests tick the clock by hand (``Clock.tick``); the stacks of the e2e tests run their own.
os.environ["AIRFLOW__TEMPO__CLOCK_INTERVAL"] = "0"
# Airflow users of the web tests: people of the demo directory, a viewer, and a stranger.
os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.web.restricted_auth.RestrictedSimpleAuthManager"
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = (
    "admin:admin,sandra:user,rob:user,helen:user,john:user,olga:user,vera:viewer,stranger:user,blind:user"
)
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = "test-jwt-secret-not-for-production-" + "0123456789abcdef" * 2
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")

import pytest  # noqa: E402

from tests.pgcluster import PgCluster, start_cluster  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def new_pg_database(cluster: PgCluster) -> str:
    import psycopg

    name = "tempo_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster.url().replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


def drop_pg_database(cluster: PgCluster, name: str) -> None:
    import psycopg

    with psycopg.connect(cluster.url().replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store database, once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tempo.db'}"
    else:
        url = new_pg_database(request.getfixturevalue("pg_cluster"))
    yield url
    from tempo.store.engine import dispose_all

    dispose_all()
    if request.param == "postgres":
        # Hundreds of per-test databases would leave the cluster's directory with ~1,000 files each.
        drop_pg_database(request.getfixturevalue("pg_cluster"), url.rsplit("/", 1)[1])


@pytest.fixture
def store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated store, configured as Tempo's store for the test."""
    from tempo.store.migrate import upgrade

    monkeypatch.setenv("AIRFLOW__TEMPO__SQL_ALCHEMY_CONN", store_url)
    upgrade(store_url)
    return store_url


@pytest.fixture(scope="session")
def airflow_metadata() -> None:
    """Airflow's metadata database of the test process, migrated, with the project's DAGs."""
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *command],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture
def smtp(monkeypatch):
    """A real SMTP server on loopback that keeps what Tempo sends."""
    from tempo_dev import mailcatcher

    controller, handler = mailcatcher.start()
    handler.controller = controller  # a test may stop it and put a restarted one here
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {controller.port}, '
        '"extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 5}}',
    )
    yield handler
    handler.controller.stop()
