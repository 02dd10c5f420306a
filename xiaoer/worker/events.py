"""Follower of Rasa's SQL event broker: every tracker event, once, in order.

Rasa publishes each event of every conversation to the ``events`` table of the broker
database (``event_broker`` in endpoints.yml: ``type: SQL, dialect: sqlite, db: ...``;
columns ``id``, ``sender_id``, ``data`` = the event as JSON). ``EventFollower`` reads
rows after the last processed id, hands each event to the handlers (lead capture; later
analytics) and stores the id it reached in ``event_cursor`` of ``xiaoer.db``, after
every row: a restart resumes where it stopped, nothing is lost. A crash between a
handler's work and the cursor update replays at most that one row, and the handlers
are idempotent for it (lead capture ignores a message id it has seen).

Between polls it runs the periodic jobs: CRM deliveries that are due, assignment of
leads waiting for an agent, re-scoring (recency).

Run: ``python -m xiaoer.worker.events`` (``xiaoer up`` starts it beside the servers).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Float, Integer, Table, Text, select
from sqlalchemy.pool import NullPool

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.core.db import Database, database_for, metadata

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]

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


def default_jobs() -> list[tuple[float, Callable[[], Any]]]:
    """(interval in seconds, job) run between polls."""
    from xiaoer.leads.assign import assign_pending
    from xiaoer.leads.crm import get_crm_outbox
    from xiaoer.leads.store import get_lead_store

    return [
        (1.0, lambda: get_crm_outbox().deliver_due()),
        (15.0, lambda: assign_pending(get_lead_store())),
        (300.0, lambda: get_lead_store().refresh_scores()),
    ]


class EventFollower:
    def __init__(
        self,
        events_db: Path | str,
        *,
        state_db: Database | str | Path | None = None,
        handlers: list[Handler] | None = None,
        jobs: list[tuple[float, Callable[[], Any]]] | None = None,
        name: str = "main",
        batch: int = 200,
    ) -> None:
        # a SQLite file (embedded default) or a SQLAlchemy URL (e.g. PostgreSQL)
        self.events_db: Path | str = events_db if isinstance(events_db, str) else Path(events_db)
        self._engine: Any = None
        # where the cursor lives: the project database (a path or URL in tests)
        self.state = database_for(state_db)
        self.handlers = default_handlers() if handlers is None else handlers
        self.jobs = default_jobs() if jobs is None else jobs
        self._last_run = [0.0] * len(self.jobs)
        self.name = name
        self.batch = batch

    # --- cursor ------------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        with self.state.connect() as conn:
            last = conn.execute(
                select(event_cursor.c.last_id).where(event_cursor.c.name == self.name)
            ).scalar()
        return int(last or 0)

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
    def _fetch(self, after: int) -> list[tuple[int, str]]:
        if self._engine is None:
            if isinstance(self.events_db, str):
                self._engine = sa.create_engine(self.events_db, pool_pre_ping=True)
            else:
                if not self.events_db.exists():
                    return []
                # Rasa's own file: read-only, opened per poll (Rasa writes it meanwhile)
                self._engine = sa.create_engine(
                    f"sqlite:///file:{self.events_db.resolve()}?mode=ro&uri=true",
                    poolclass=NullPool,
                    connect_args={"timeout": 10},
                )
        if not sa.inspect(self._engine).has_table("events"):
            return []  # Rasa has not created it yet
        with self._engine.connect() as c:
            top = c.execute(sa.text("SELECT MAX(id) FROM events")).scalar() or 0
            if top < after:
                log.warning("event broker table was reset (max id %s < %s): from 0", top, after)
                after = 0
                self._save(0)
            rows = c.execute(
                sa.text("SELECT id, data FROM events WHERE id > :after ORDER BY id LIMIT :n"),
                {"after": after, "n": self.batch},
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

    def poll(self) -> int:
        """Process every new row; the number of rows processed."""
        done = 0
        while True:
            rows = self._fetch(self.last_id)
            if not rows:
                return done
            for row_id, data in rows:
                self._dispatch(row_id, data)
                self._save(row_id)
                done += 1

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

    def run_jobs(self) -> None:
        now = time.monotonic()
        for i, (interval, job) in enumerate(self.jobs):
            if now - self._last_run[i] >= interval:
                self._last_run[i] = now
                try:
                    job()
                except Exception:  # noqa: BLE001
                    log.exception("periodic job %s failed", i)

    def run_forever(self, stop: threading.Event, interval: float = 0.2) -> None:
        where = self.events_db
        if isinstance(where, str):  # a URL: never log its password
            where = sa.engine.make_url(where).render_as_string(hide_password=True)
        log.info("following %s from id %s", where, self.last_id)
        while not stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - e.g. the database is locked for a moment
                log.exception("event follower poll failed")
            self.run_jobs()
            stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Follow Rasa's SQL event broker.")
    parser.add_argument("--db", type=Path, help="broker SQLite file (default: endpoints.yml)")
    # (a non-SQLite broker is read from endpoints.yml, so its password is never on a command line)
    parser.add_argument("--endpoints", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)
    from xiaoer.core.security import log_level, process_start

    logging.basicConfig(level=log_level(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    process_start()
    db = args.db or broker_db(args.endpoints)
    if db is None:
        print("error: no SQL event broker in endpoints.yml")
        return 2
    stop = threading.Event()
    try:
        EventFollower(db).run_forever(stop, args.interval)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
