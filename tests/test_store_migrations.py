from __future__ import annotations

from sqlalchemy import inspect

from tempo.store.engine import get_engine
from tempo.store.migrate import current_revision, downgrade, head_revision, upgrade
from tempo.store.models import Base

EXPECTED_TABLES = {
    "tempo_sla_fired",
    "tempo_process",
    "tempo_task",
    "tempo_task_event",
    "tempo_outbox",
    "tempo_attachment",
    "tempo_person",
    "tempo_unit",
    "tempo_role",
    "tempo_person_role",
    "tempo_counterparty",
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
