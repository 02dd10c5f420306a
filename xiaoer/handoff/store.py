"""Handoff requests: who wants a human, why, and what the bot already knows."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xiaoer.config import get_settings
from xiaoer.shop.models import now_beijing

SCHEMA = """
CREATE TABLE IF NOT EXISTS handoff_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'waiting',
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoff_by_status ON handoff_requests (status, created_at);
"""


@dataclass(frozen=True)
class HandoffRequest:
    id: int
    sender_id: str
    reason: str
    details: str
    status: str
    created_at: str


class HandoffStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(SCHEMA)

    def request(self, sender_id: str, reason: str, details: str = "") -> HandoffRequest:
        """Record a request; a conversation has at most one waiting request."""
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM handoff_requests WHERE sender_id = ? AND status = 'waiting'",
                (sender_id,),
            ).fetchone()
            if row:
                return HandoffRequest(**dict(row))
            created = now_beijing().isoformat(timespec="seconds")
            cur = conn.execute(
                "INSERT INTO handoff_requests (sender_id, reason, details, created_at) VALUES (?,?,?,?)",
                (sender_id, reason, details, created),
            )
            return HandoffRequest(
                cur.lastrowid or 0, sender_id, reason, details, "waiting", created
            )

    def waiting(self) -> list[HandoffRequest]:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM handoff_requests WHERE status = 'waiting' ORDER BY created_at"
            ).fetchall()
            return [HandoffRequest(**dict(r)) for r in rows]


def get_handoff_store() -> HandoffStore:
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> HandoffStore:
    return HandoffStore(path)
