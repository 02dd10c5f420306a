"""Follower of Rasa's SQL event broker: every tracker event, once, in order.

Rasa publishes each event of every conversation to the ``events`` table of the broker
database (``event_broker`` in endpoints.yml: ``type: SQL, dialect: sqlite, db: ...``;
columns ``id``, ``sender_id``, ``data`` = the event as JSON). ``EventFollower`` reads
rows after the last processed id, hands each event to the handlers (lead capture; later
analytics) and stores the id it reached in ``event_cursor`` of the project database,
keyed by the broker's identity (:func:`broker_identity`), after every row: a restart
resumes where it stopped, nothing is lost. A crash between a
handler's work and the cursor update replays at most that one row, and the handlers
are idempotent for it (lead capture ignores a message id it has seen).

The worker (``xiaoer worker``) runs it as the job ``events.follow``: each run follows up
to :data:`ROWS_PER_RUN` new rows. The broker is read from ``$XIAOER_ENDPOINTS`` (``xiaoer
worker --endpoints FILE``), else the project's endpoints.yml.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Float, Integer, Table, Text, select

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.engine import masked_url
from xiaoer.worker.jobs import Job

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]

ENDPOINTS_ENV = "XIAOER_ENDPOINTS"
ROWS_PER_RUN = 1000

event_cursor = Table(
    "event_cursor",
    metadata,
    Column("name", Text, primary_key=True),
    Column("last_id", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def broker_db(endpoints: Path | None = None) -> Path | str | None:
    """Where the SQL event broker configured in ``endpoints`` writes: the SQLite file, or a
    SQLAlchemy URL for another dialect (PostgreSQL in the scale-out profile). ``${VAR}``
    values are read from the environment, as Rasa does."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    endpoints = endpoints or PROJECT_ROOT / "endpoints.yml"
    broker = read_endpoint_config(str(endpoints), "event_broker")
    if broker is None or str(broker.type or "").lower() != "sql":
        return None
    kwargs = broker.kwargs
    dialect = str(kwargs.get("dialect") or "sqlite")
    if dialect == "sqlite":
        db = Path(str(kwargs.get("db") or "events.db"))
        return db if db.is_absolute() else PROJECT_ROOT / db  # Rasa runs in the project folder
    return str(
        SQLTrackerStore.get_db_url(
            dialect,
            broker.url,
            kwargs.get("port"),
            str(kwargs.get("db") or "rasa"),
            kwargs.get("username"),
            kwargs.get("password"),
        )
    )


def default_handlers() -> list[Handler]:
    from xiaoer.leads.capture import handle_event

    return [handle_event]


LEGACY_CURSOR = "main"  # the one cursor of earlier versions, whatever the broker


def broker_identity(events_db: Path | str) -> str:
    """The broker's identity, which keys its read position in ``event_cursor``: the
    SQLite file's absolute path, or the URL without user and password
    (``postgresql://db.internal:5432/xiaoer_events``). Pointing the follower at another
    broker starts that broker's own position, never one read from another database."""
    if not isinstance(events_db, str) or "://" not in events_db:
        return f"sqlite:///{Path(events_db).resolve()}"
    url = sa.engine.make_url(events_db)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{Path(str(url.database)).resolve()}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{url.get_backend_name()}://{host}{port}/{url.database}"


class EventFollower:
    def __init__(
        self,
        events_db: Path | str,
        *,
        state_db: Database | Path | str | None = None,
        handlers: list[Handler] | None = None,
        name: str | None = None,
        batch: int = 200,
    ) -> None:
        # a SQLite file (embedded default) or a SQLAlchemy URL (e.g. PostgreSQL)
        self.events_db: Path | str = events_db if isinstance(events_db, str) else Path(events_db)
        self._engine: sa.engine.Engine | None = None
        self.state = database_for(state_db)  # the project database (the cursor)
        self.handlers = default_handlers() if handlers is None else handlers
        # the cursor's key: the broker's identity (a name given: that name)
        self.name = name or broker_identity(self.events_db)
        self.batch = batch
        if name is None:
            self._adopt_legacy_cursor()

    def _adopt_legacy_cursor(self) -> None:
        """Earlier versions kept one cursor, ``main``, whatever the broker. On the embedded
        default (a SQLite broker beside a SQLite project database, upgraded in place) it is
        this broker's: it becomes this broker's cursor. Anywhere else (e.g. a data folder
        copied into PostgreSQL) it belonged to another database and is left alone: this
        broker is read from its own position (from the start; the handlers are
        idempotent)."""
        if isinstance(self.events_db, str) or self.state.dialect != "sqlite":
            return
        with self.state.begin() as conn:
            rows = dict(
                conn.execute(
                    select(event_cursor.c.name, event_cursor.c.last_id).where(
                        event_cursor.c.name.in_([LEGACY_CURSOR, self.name])
                    )
                ).all()
            )
            if LEGACY_CURSOR not in rows or self.name in rows:
                return
            conn.execute(
                event_cursor.update()
                .where(event_cursor.c.name == LEGACY_CURSOR)
                .values(name=self.name, updated_at=time.time())
            )
        log.info("event cursor of an earlier version adopted for %s", self.name)

    def where(self) -> str:
        """The broker, for logs (never a password)."""
        if isinstance(self.events_db, str):
            return masked_url(self.events_db)
        return str(self.events_db)

    # --- cursor ------------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        with self.state.connect() as conn:
            value = conn.execute(
                select(event_cursor.c.last_id).where(event_cursor.c.name == self.name)
            ).scalar()
        return int(value or 0)

    def _save(self, last_id: int) -> None:
        with self.state.begin() as conn:
            self.state.upsert(
                conn,
                event_cursor,
                {"name": self.name, "last_id": last_id, "updated_at": time.time()},
                key=["name"],
                update=["last_id", "updated_at"],
            )

    # --- work --------------------------------------------------------------------------
    def _broker(self) -> sa.engine.Engine | None:
        if self._engine is None:
            if isinstance(self.events_db, str):
                self._engine = sa.create_engine(self.events_db, pool_pre_ping=True)
            else:
                if not self.events_db.exists():
                    return None  # Rasa has not written yet
                # read-only: the follower never writes to Rasa's broker file
                self._engine = sa.create_engine(
                    f"sqlite:///file:{self.events_db.resolve()}?mode=ro&uri=true",
                    connect_args={"timeout": 10},
                    poolclass=sa.pool.NullPool,
                )
        return self._engine

    def _fetch(self, after: int) -> list[tuple[int, str]]:
        engine = self._broker()
        if engine is None or not sa.inspect(engine).has_table("events"):
            return []  # Rasa has not created it yet
        with engine.connect() as c:
            top = c.execute(sa.text("SELECT MAX(id) FROM events")).scalar() or 0
            if top < after:
                log.warning(
                    "event broker %s was reset (max id %s < %s): from 0", self.where(), top, after
                )
                after = 0
                self._save(0)
            rows = c.execute(
                sa.text("SELECT id, data FROM events WHERE id > :after ORDER BY id LIMIT :n"),
                {"after": after, "n": self.batch},
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

    def poll(self, max_rows: int | None = None) -> int:
        """Process new rows (all of them, or up to ``max_rows``); the number processed."""
        done = 0
        while max_rows is None or done < max_rows:
            rows = self._fetch(self.last_id)
            if not rows:
                return done
            for row_id, data in rows[: None if max_rows is None else max_rows - done]:
                self._dispatch(row_id, data)
                self._save(row_id)
                done += 1
        return done

    def _dispatch(self, row_id: int, data: str) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            log.error("event %s: not JSON, skipped", row_id)
            return
        for handler in self.handlers:
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the stream
                log.exception(
                    "event %s: handler %s failed", row_id, getattr(handler, "__name__", handler)
                )


# --- the worker's job ---------------------------------------------------------------------
_follower: EventFollower | None = None
_follower_lock = threading.Lock()
_warned = False


def endpoints_file() -> Path:
    """The endpoints.yml whose event broker the worker follows."""
    configured = os.environ.get(ENDPOINTS_ENV)
    return Path(configured) if configured else PROJECT_ROOT / "endpoints.yml"


def follower() -> EventFollower | None:
    """This process's follower of the configured broker (None: no SQL broker configured)."""
    global _follower, _warned
    with _follower_lock:
        if _follower is None:
            db = broker_db(endpoints_file())
            if db is None:
                if not _warned:
                    log.warning(
                        "no SQL event_broker in %s: leads are not captured", endpoints_file()
                    )
                    _warned = True
                return None
            _follower = EventFollower(db)
            log.info(
                "following %s from id %s (cursor %s)",
                _follower.where(),
                _follower.last_id,
                _follower.name,
            )
        return _follower


def follow_events() -> None:
    """Hand up to :data:`ROWS_PER_RUN` new broker rows to the handlers (lead capture)."""
    current = follower()
    if current is not None:
        current.poll(max_rows=ROWS_PER_RUN)


JOBS = [
    Job(name="events.follow", every=0.2, run=follow_events),
]


if __name__ == "__main__":  # the follower of earlier versions ran alone
    raise SystemExit(
        "error: `python -m xiaoer.worker.events` is gone: run `xiaoer worker` (every "
        "background job, the event follower included; docs/deployment.md)"
    )
