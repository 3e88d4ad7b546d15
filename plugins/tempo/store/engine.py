"""Connections to Tempo's store: one engine per URL for workers, the web, the clock and the CLI.

Engines are created on first use (never at import) and cached per URL. SQLite is the default store,
shared by several Airflow processes at once, so every SQLite connection runs in WAL mode with a busy
timeout, and write transactions start with ``BEGIN IMMEDIATE``: two writers then queue for the lock
instead of one failing with "database is locked" when it upgrades a read lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tempo import config

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "tempo_write"
_lock = threading.Lock()


def sync_url(url: str) -> str:
    """The URL with Tempo's drivers: psycopg 3 for PostgreSQL, the standard library's for SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off so that ``_sqlite_on_begin`` decides
    # between a deferred and an immediate BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_engines: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    url = sync_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
        return engine


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    return engine


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or config.store_url())


@contextmanager
def read_session(url: str | None = None) -> Iterator[Session]:
    """A session for reading; commits nothing."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(url: str | None = None) -> Iterator[Session]:
    """One transaction: commits on success, rolls back on any error."""
    engine = get_engine(url).execution_options(**{_WRITE_OPTION: True})
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def dispose_all() -> None:
    """Close pooled sync connections and forget the engines (tests, processes that fork)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
