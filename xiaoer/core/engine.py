"""The engine layer of the project database: :class:`Database` (one SQLAlchemy Core
engine per URL, one timeout policy), :data:`metadata` (every store's tables) and which URL
is used. Stores use the accessors of :mod:`xiaoer.core.db`; the migrations use this layer
directly (it knows nothing of them).

Which database: ``XIAOER_DATABASE_URL``, else ``database.url`` in xiaoer.yml, else
``sqlite:///<data_dir>/xiaoer.db``. SQLite runs in WAL mode with foreign keys on and waits
up to :data:`TIMEOUT_SECONDS` for a lock.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import MetaData, Table, create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool, StaticPool

log = logging.getLogger(__name__)

# The one timeout policy: how long any statement waits for a lock held by another
# connection (SQLite busy timeout, PostgreSQL lock_timeout) and for a connection.
TIMEOUT_SECONDS = 30

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class DatabaseError(RuntimeError):
    """The project database cannot be used as it is (e.g. not migrated)."""


class Database:
    """One database (one engine) and the few dialect-neutral helpers the stores need."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.dialect: str = engine.dialect.name  # "sqlite" | "postgresql"
        self._ensured: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({self.engine.url!r})"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None for PostgreSQL and in-memory SQLite)."""
        if self.dialect != "sqlite":
            return None
        name = self.engine.url.database
        return Path(name) if name and name != ":memory:" else None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction, committed at the end of the block (rolled back on error).

        On SQLite it takes the write lock at once (``BEGIN IMMEDIATE``), so a
        read-then-write inside it is atomic and never fails on a lock upgrade. PostgreSQL
        runs it READ COMMITTED: make such a step a conditional UPDATE (``WHERE state = ..``,
        check ``rowcount``) or lock the row (``select(...).with_for_update()``)."""
        with self.engine.connect() as conn:
            conn.execution_options(xiaoer_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading (what it writes is rolled back unless committed)."""
        with self.engine.connect() as conn:
            yield conn

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT construct (with ``on_conflict_do_nothing/do_update``)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def insert_ignore(self, table: Table, **values: Any) -> bool:
        """INSERT .. ON CONFLICT DO NOTHING in its own transaction: whether it inserted."""
        stmt = self.insert(table).values(**values).on_conflict_do_nothing()
        with self.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def upsert(
        self,
        conn: Connection,
        table: Table,
        values: dict[str, Any],
        key: list[str],
        update: list[str],
    ) -> None:
        """INSERT .. ON CONFLICT (key) DO UPDATE SET the ``update`` columns (on ``conn``).

        With an empty ``update`` an existing row is left as it is."""
        stmt = self.insert(table).values(**values)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=key, set_={name: stmt.excluded[name] for name in update}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=key)
        conn.execute(stmt)

    # --- schema ----------------------------------------------------------------------------
    def ensure_tables(self) -> None:
        """Create tables declared on :data:`metadata` that no migration has created yet.

        A safety net for development: a store declared in a branch before its migration
        exists still gets its table (with a warning). The migration test checks that the
        migrations alone produce :data:`metadata`."""
        declared = set(metadata.tables)
        if declared <= self._ensured:
            return
        with self._lock:
            missing = declared - self._ensured
            if not missing:
                return
            from sqlalchemy import inspect

            with self.begin() as conn:
                existing = set(inspect(conn).get_table_names())
                new = sorted(missing - existing)
                if new:
                    log.warning("tables without a migration, created directly: %s", new)
                    metadata.create_all(conn, tables=[metadata.tables[n] for n in new])
            self._ensured |= missing

    def dispose(self) -> None:
        self.engine.dispose()


def masked_url(url: str | URL) -> str:
    """A database URL fit for logs and messages: its password hidden."""
    return make_url(str(url)).render_as_string(hide_password=True)


# --- engines -------------------------------------------------------------------------------
def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # the driver's own transaction handling off: SQLAlchemy's "begin" event below says BEGIN
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {TIMEOUT_SECONDS * 1000}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("xiaoer_write")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_database(url: str) -> Database:
    """A new :class:`Database` for ``url`` (use :func:`get_database`, which caches)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if not memory:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            future=True,
            connect_args={"timeout": TIMEOUT_SECONDS, "check_same_thread": False},
            # a file is opened per use (cheap for SQLite, safe across fork and threads);
            # an in-memory database lives as long as its one connection
            poolclass=StaticPool if memory else NullPool,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif backend == "postgresql":
        engine = create_engine(
            parsed,
            future=True,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": TIMEOUT_SECONDS,
                "options": f"-c lock_timeout={TIMEOUT_SECONDS * 1000}",
            },
        )
    else:
        raise DatabaseError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return Database(parsed.render_as_string(hide_password=False), engine)


def _settings() -> Any:
    from xiaoer.core.config import get_settings

    return get_settings()


def default_url() -> str:
    """``XIAOER_DATABASE_URL``, else ``database.url`` in xiaoer.yml, else the data folder's
    ``xiaoer.db``. A relative SQLite path in xiaoer.yml is relative to ``data_dir``."""
    env = os.environ.get("XIAOER_DATABASE_URL")
    if env:
        return env
    settings = _settings()
    configured = _expand(str(settings.section("database").get("url") or ""))
    if configured:
        parsed = make_url(configured)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(str(parsed.database))
            if not path.is_absolute():
                return sqlite_url(settings.data_dir / path)
        return configured
    return sqlite_url(settings.data_dir / "xiaoer.db")


def _expand(url: str) -> str:
    """``${VAR}`` in xiaoer.yml's URL from the environment (URL-quoted), so the file holds
    no password: ``postgresql://xiaoer:${XIAOER_PG_PASSWORD}@db.internal/xiaoer``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise DatabaseError(f"database.url in xiaoer.yml needs the environment variable {name}")
        return quote(os.environ[name], safe="")

    return re.sub(r"\$\{(\w+)\}", value, url)


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"
