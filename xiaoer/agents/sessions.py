"""Console logins: one row per logged-in browser in ``console_sessions`` of the project
database. Only a hash of the session token is stored; the CSRF token is kept with it."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Float, Integer, Table, Text, select

from xiaoer.core.db import Database, database_for, metadata

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("agent_id", Integer, nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created_at", Float, nullable=False),  # epoch seconds
    Column("expires_at", Float, nullable=False),
)
_t = console_sessions


@dataclass(frozen=True)
class Session:
    token_hash: str
    agent_id: int
    csrf: str
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database | str | Path | None, lifetime_seconds: float) -> None:
        self.db = database_for(db)
        self.lifetime = lifetime_seconds

    def create(self, agent_id: int) -> str:
        """A new login of ``agent_id``: the token for its cookie (expired logins are dropped)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(_t.delete().where(_t.c.expires_at < now))
            conn.execute(
                _t.insert().values(
                    token_hash=_hash(token),
                    agent_id=agent_id,
                    csrf=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
        return token

    def get(self, token: str) -> Session | None:
        if not token:
            return None
        with self.db.connect() as conn:
            row = conn.execute(
                select(_t.c.token_hash, _t.c.agent_id, _t.c.csrf, _t.c.expires_at).where(
                    _t.c.token_hash == _hash(token)
                )
            ).first()
        if row is None or row.expires_at < time.time():
            return None
        return Session(row.token_hash, int(row.agent_id), row.csrf, float(row.expires_at))

    def delete(self, token: str) -> None:
        with self.db.begin() as conn:
            conn.execute(_t.delete().where(_t.c.token_hash == _hash(token)))

    def delete_for_agent(self, agent_id: int) -> None:
        with self.db.begin() as conn:
            conn.execute(_t.delete().where(_t.c.agent_id == agent_id))
