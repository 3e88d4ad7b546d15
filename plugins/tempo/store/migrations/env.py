"""Alembic environment for Tempo's store. Tempo's revisions live in their own version table."""

from __future__ import annotations

from alembic import context

from tempo.store.engine import get_engine
from tempo.store.models import Base

VERSION_TABLE = "alembic_version_tempo"


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = get_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
