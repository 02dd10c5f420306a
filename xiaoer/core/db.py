"""The project database as the stores see it: one engine per database, one timeout policy.

Every store declares its tables on :data:`metadata` (at the top of its store module) and
gets a :class:`Database` from :func:`database_for` (its constructor's argument) or
:func:`get_database`::

    things = Table("things", metadata, Column("id", Integer, primary_key=True), ...)

    class ThingStore:
        def __init__(self, db: Database | str | Path | None = None) -> None:
            self.db = database_for(db)

Which database: ``XIAOER_DATABASE_URL``, else ``database.url`` in xiaoer.yml, else
``sqlite:///<data_dir>/xiaoer.db``. SQLite runs in WAL mode with foreign keys on and waits
up to :data:`TIMEOUT_SECONDS` for a lock; its schema is migrated to the newest revision on
first use (under a file lock, so processes starting together do not race). PostgreSQL (the
scale-out profile) is migrated by ``xiaoer migrate``; a database that is not at the newest
revision is refused with an error naming that command.
"""

from __future__ import annotations

import threading
from pathlib import Path

from xiaoer.core import migrate
from xiaoer.core.engine import (
    TIMEOUT_SECONDS,
    Database,
    DatabaseError,
    create_database,
    default_url,
    metadata,
    sqlite_url,
)

__all__ = [
    "TIMEOUT_SECONDS",
    "Database",
    "DatabaseError",
    "create_database",
    "database_for",
    "default_url",
    "forget_databases",
    "get_database",
    "metadata",
    "sqlite_url",
]

_databases: dict[str, Database] = {}
_databases_lock = threading.RLock()


def get_database(url: str | None = None) -> Database:
    """The :class:`Database` for ``url`` (default: :func:`default_url`), one per URL and
    process, its schema checked (SQLite: migrated) on first use."""
    url = url or default_url()
    db = _databases.get(url)
    if db is not None:
        return db
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = create_database(url)
            _prepare(db)
            _databases[url] = db
    return db


def _prepare(db: Database) -> None:
    migrate.ensure_current(db)
    db.ensure_tables()


def database_for(target: Database | str | Path | None) -> Database:
    """What store constructors accept: None -> :func:`get_database`; a :class:`Database`
    -> itself; a URL (has ``://``) -> that database; a path -> that SQLite file."""
    if target is None:
        db = get_database()
    elif isinstance(target, Database):
        db = target
    elif isinstance(target, str) and "://" in target:
        db = get_database(target)
    else:
        db = get_database(sqlite_url(target))
    db.ensure_tables()
    return db


def forget_databases() -> None:
    """Dispose of every cached engine (tests, and after ``fork`` in a server)."""
    with _databases_lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()
