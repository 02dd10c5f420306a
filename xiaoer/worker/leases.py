"""Leases: at most one worker process at a time runs an exclusive job.

A lease is a row of ``worker_leases`` in the project database: the job's name, who holds
it and until when (``expires_at``, seconds since the epoch). A worker takes or renews a
lease with ONE conditional upsert::

    INSERT INTO worker_leases (name, holder, expires_at) VALUES (:name, :me, :until)
    ON CONFLICT (name) DO UPDATE SET holder = :me, expires_at = :until
    WHERE worker_leases.holder = :me OR worker_leases.expires_at < :now

The database decides atomically (SQLite: the statement runs under its write lock, taken
at ``BEGIN IMMEDIATE``; PostgreSQL: the conflicting row is locked by ``ON CONFLICT``), so
of two workers asking at the same moment exactly one gets a row count of 1. A holder
renews its leases well within their lifetime while it runs; a holder that dies stops
renewing and its leases expire, after which any other worker takes them. A worker that
stops cleanly releases its leases at once.

Workers compare ``expires_at`` with their own clock: on several machines the clocks must
agree to well within the lease lifetime (NTP does).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Column, Float, String, Table, delete, select

from xiaoer.core.db import Database, database_for, metadata

worker_leases = Table(
    "worker_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)


def new_holder() -> str:
    """A name for one worker process, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseStore:
    """Take, renew and release leases for one holder (one worker process)."""

    def __init__(
        self,
        db: Database | str | None = None,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = database_for(db)
        self.holder = holder or new_holder()
        self.clock = clock

    def acquire(self, name: str, seconds: float) -> bool:
        """Take the lease ``name`` for ``seconds``, or renew it when this holder has it.

        True when this holder now holds it; False when another live holder does."""
        now = self.clock()
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(worker_leases).values(name=name, holder=self.holder, expires_at=now + seconds)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=(worker_leases.c.holder == self.holder) | (worker_leases.c.expires_at < now),
        )
        with self.db.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def release(self, name: str) -> bool:
        """Give the lease up (only when this holder has it): another worker may take it at once."""
        with self.db.begin() as conn:
            result = conn.execute(
                delete(worker_leases).where(
                    worker_leases.c.name == name, worker_leases.c.holder == self.holder
                )
            )
            return bool(result.rowcount == 1)

    def holder_of(self, name: str) -> str | None:
        """Who holds the lease now (None when nobody does or it has expired)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(worker_leases.c.holder, worker_leases.c.expires_at).where(
                    worker_leases.c.name == name
                )
            ).first()
        if row is None or row.expires_at < self.clock():
            return None
        return str(row.holder)
