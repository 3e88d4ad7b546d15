from __future__ import annotations

from sqlalchemy import inspect

from tempo.store.engine import get_engine
from tempo.store.migrate import current_revision, downgrade, head_revision, upgrade
from tempo.store.models import Base

EXPECTED_TABLES = {
    "tempo_sla_fired",
    "tempo_process",
    "tempo_task",
    "tempo_history",
    "tempo_outbox",
    "tempo_attachment",
    "tempo_person",
    "tempo_unit",
    "tempo_role",
    "tempo_person_role",
    "tempo_counterparty",
    "tempo_pending_request",
}


def test_upgrade_from_empty_creates_every_table(store_url):
    upgrade(store_url)

    tables = set(inspect(get_engine(store_url)).get_table_names())
    assert tables >= EXPECTED_TABLES
    # Tempo's revisions live in their own version table, never Airflow's alembic_version.
    assert "alembic_version_tempo" in tables
    assert "alembic_version" not in tables
    assert current_revision(store_url) == head_revision()


def test_migrations_match_the_models(store_url):
    """A model change without a migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(store_url)
    with get_engine(store_url).connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": "alembic_version_tempo"}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_downgrade_empties(store_url):
    upgrade(store_url)
    upgrade(store_url)
    downgrade(store_url)

    tables = set(inspect(get_engine(store_url)).get_table_names())
    assert not tables & EXPECTED_TABLES


def test_the_history_keeps_its_rows_when_its_table_is_renamed(store_url):
    from sqlalchemy import text

    upgrade(store_url, "0005")
    engine = get_engine(store_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tempo_process (id, dag_id, run_id, template, title, status, data, started_at) "
                "VALUES (1, 'd', 'r', 'd', 'T', 'running', '{}', '2026-12-01 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO tempo_task_event (id, process_id, at, actor, kind, details) "
                "VALUES (7, 1, '2026-12-01 10:00:00', 'ann', 'process_started', '{}')"
            )
        )
    upgrade(store_url)
    tables = set(inspect(engine).get_table_names())
    assert "tempo_history" in tables and "tempo_task_event" not in tables
    with engine.begin() as connection:
        assert connection.execute(text("SELECT id, actor, kind FROM tempo_history")).all() == [
            (7, "ann", "process_started")
        ]
        # New events carry on after the moved ones (PostgreSQL's sequence moved on too).
        connection.execute(
            text(
                "INSERT INTO tempo_history (process_id, at, kind, details) "
                "VALUES (1, '2026-12-01 11:00:00', 'stage', '{}')"
            )
        )
        assert connection.execute(text("SELECT max(id) FROM tempo_history")).scalar() == 8
    downgrade(store_url, "0005")
    with engine.connect() as connection:
        moved_back = connection.execute(text("SELECT id FROM tempo_task_event ORDER BY id")).scalars()
        assert moved_back.all() == [7, 8]
