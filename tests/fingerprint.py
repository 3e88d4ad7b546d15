"""A fingerprint of everything in Tempo's store, to prove a refused request changed nothing.

Every row of every Tempo table, read in primary-key order and hashed: two fingerprints are equal
exactly when no row was added, removed or changed in between (on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from tempo.store.engine import read_session
from tempo.store.models import Base


def store_fingerprint() -> dict[str, str]:
    """Table name -> digest of its rows (row count included, so a difference names the table)."""
    digests: dict[str, str] = {}
    with read_session() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()[:16]
            digests[table.name] = f"{len(rows)}:{digest}"
    return digests


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
