"""One real Airflow for the end-to-end tests: api-server, scheduler, dag-processor, triggerer.

Started once per test session on loopback ports with a temporary AIRFLOW_HOME, SQLite databases,
LocalExecutor and a real SMTP server (aiosmtpd) as the SMTP connection. The DAGs are the project's
``dags/`` plus the test-only DAGs of ``tests/e2e/dags``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempo_dev import mailcatcher
from tempo_dev.devstack import AirflowStack, wait_until  # noqa: F401 (shared by the e2e tests)
from tests.conftest import REPO

E2E_DAGS = Path(__file__).parent / "dags"


def dag_ids_in(folder: Path) -> list[str]:
    """The DAG ids a folder defines, found without importing it (one ``process("id"``/``DAG("id"`` each)."""
    import re

    ids = []
    for path in sorted(folder.glob("*.py")):
        ids += re.findall(r'(?:process|DAG)\(\s*"([a-z0-9_]+)"', path.read_text())
    # YAML templates, each loaded by the DAG file beside it.
    for path in sorted(folder.glob("templates/*.yaml")):
        ids += re.findall(r"^id:\s*([a-z0-9_]+)\s*$", path.read_text(), flags=re.MULTILINE)
    return ids


@pytest.fixture(scope="package")
def mail() -> Iterator[mailcatcher.CatchingHandler]:
    controller, handler = mailcatcher.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    handler.controller = controller  # type: ignore[attr-defined]  (tests take SMTP down and up)
    yield handler
    handler.controller.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="package")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory, mail) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    for folder in (REPO / "dags", E2E_DAGS):
        for path in folder.glob("*.py"):
            (dags / path.name).symlink_to(path)
    (dags / "templates").symlink_to(REPO / "dags" / "templates", target_is_directory=True)
    stack = AirflowStack(
        home=home,
        dags_folder=dags,
        smtp_port=mail.port,
        extra_env={
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "32",
            "AIRFLOW__TEMPO__CLOCK_INTERVAL": "1",
            "AIRFLOW__TEMPO__OUTBOX_SWEEP_INTERVAL": "2",
        },
    )
    stack.prepare()
    # The test process reads and writes the same store as the components, until the e2e tests end.
    shared = {
        "AIRFLOW__TEMPO__SQL_ALCHEMY_CONN": str(stack.store_url),
        "AIRFLOW__TEMPO__SECRET_KEY": stack.env()["AIRFLOW__TEMPO__SECRET_KEY"],
        "AIRFLOW__TEMPO__BASE_URL": stack.base_url,
    }
    saved = {key: os.environ.get(key) for key in shared}
    os.environ.update(shared)
    stack.start()
    try:
        stack.wait_ready(dag_ids_in(REPO / "dags") + dag_ids_in(E2E_DAGS))
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from tempo.store.engine import dispose_all

        dispose_all()
        artifacts = REPO / "tests" / "artifacts" / "e2e-logs"
        artifacts.mkdir(parents=True, exist_ok=True)
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            (artifacts / f"{name}.log").write_text(stack.log(name)[-200_000:])


def open_task(run_id: str, task_id: str | None = None):
    """The run's task still in an inbox (of step ``task_id``, if given), or None."""
    from sqlalchemy import select

    from tempo.store.engine import read_session
    from tempo.store.models import Task, TaskStatus

    query = select(Task).where(Task.run_id == run_id, Task.status == TaskStatus.OPEN)
    if task_id is not None:
        query = query.where(Task.task_id == task_id)
    with read_session() as session:
        return session.scalar(query)


def trigger_classpaths(stack: AirflowStack) -> list[str]:
    """The classpath of every trigger row in the stack's (SQLite) Airflow metadata database."""
    import sqlite3

    path = str(stack.metadata_url).removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT classpath FROM trigger")]
