"""Urge requests: customers asking to ship faster, visible to agents with how overdue."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xiaoer.config import get_settings
from xiaoer.shop.models import now_beijing

SCHEMA = """
CREATE TABLE IF NOT EXISTS urge_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  order_id TEXT NOT NULL,
  overdue_hours REAL NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS urges_by_order ON urge_requests (order_id);
"""


@dataclass(frozen=True)
class UrgeRequest:
    id: int
    sender_id: str
    order_id: str
    overdue_hours: float
    created_at: str


class UrgeStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(SCHEMA)

    def record(self, sender_id: str, order_id: str, overdue_hours: float) -> int:
        """Record an urge; returns how many times this order has been urged (this one included)."""
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.execute(
                "INSERT INTO urge_requests (sender_id, order_id, overdue_hours, created_at) "
                "VALUES (?,?,?,?)",
                (
                    sender_id,
                    order_id,
                    round(overdue_hours, 1),
                    now_beijing().isoformat(timespec="seconds"),
                ),
            )
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM urge_requests WHERE order_id = ?", (order_id,)
                ).fetchone()[0]
            )

    def for_order(self, order_id: str) -> list[UrgeRequest]:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM urge_requests WHERE order_id = ? ORDER BY id", (order_id,)
            ).fetchall()
            return [UrgeRequest(**dict(r)) for r in rows]

    def recent(self, limit: int = 50) -> list[UrgeRequest]:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM urge_requests ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            return [UrgeRequest(**dict(r)) for r in rows]


def get_urge_store() -> UrgeStore:
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> UrgeStore:
    return UrgeStore(path)
