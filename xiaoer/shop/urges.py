"""Urge requests: customers asking to ship faster, visible to agents with how overdue."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings

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
# added later: who urged (the platform buyer id; empty for an anonymous conversation)
MIGRATIONS = ("ALTER TABLE urge_requests ADD COLUMN buyer_id TEXT NOT NULL DEFAULT ''",)


@dataclass(frozen=True)
class UrgeRequest:
    id: int
    sender_id: str
    order_id: str
    overdue_hours: float
    created_at: str
    buyer_id: str = ""


class UrgeStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(urge_requests)")}
            if "buyer_id" not in columns:
                for statement in MIGRATIONS:
                    conn.execute(statement)

    def record(
        self, sender_id: str, order_id: str, overdue_hours: float, buyer_id: str | None = None
    ) -> int:
        """Record an urge; returns how many times the same customer urged this order today
        (Beijing time, this one included). The customer is the platform buyer when known,
        else the conversation: another buyer's urges never count."""
        now = now_beijing()
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.execute(
                "INSERT INTO urge_requests "
                "(sender_id, order_id, overdue_hours, created_at, buyer_id) VALUES (?,?,?,?,?)",
                (
                    sender_id,
                    order_id,
                    round(overdue_hours, 1),
                    now.isoformat(timespec="seconds"),
                    buyer_id or "",
                ),
            )
            who, value = ("buyer_id", buyer_id) if buyer_id else ("sender_id", sender_id)
            return int(
                conn.execute(
                    f"SELECT COUNT(*) FROM urge_requests WHERE order_id = ? AND {who} = ? "  # noqa: S608 - fixed column names
                    "AND substr(created_at, 1, 10) = ?",
                    (order_id, value, now.date().isoformat()),
                ).fetchone()[0]
            )

    def clear(self) -> int:
        """Delete every urge (``xiaoer seed --reset``); how many were deleted."""
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            return conn.execute("DELETE FROM urge_requests").rowcount

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
