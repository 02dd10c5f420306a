"""The outbox of proactive notifications to buyers (shipped, after-sale approved, refunded).

Producers (the Doudian push channel) add rows; the Douyin output channel sends the
pending ones and marks them sent. Rows live in ``notifications`` of ``xiaoer.db`` under
the data folder, so that a restart loses none. ``dedupe_key`` (optional, unique) keeps
one notification per event even when the platform reports the event twice.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  buyer_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  order_id TEXT,
  text TEXT NOT NULL,
  created_at TEXT NOT NULL,
  sent_at TEXT,
  dedupe_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (sent_at, id);
"""

KINDS = ("order_shipped", "after_sale_approved", "refund_success")


@dataclass(frozen=True)
class Notification:
    id: int
    buyer_id: str
    kind: str
    order_id: str | None
    text: str  # what the buyer reads (Simplified Chinese)
    created_at: str
    sent_at: str | None = None


class NotificationOutbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _row(row: sqlite3.Row) -> Notification:
        return Notification(
            id=row["id"],
            buyer_id=row["buyer_id"],
            kind=row["kind"],
            order_id=row["order_id"],
            text=row["text"],
            created_at=row["created_at"],
            sent_at=row["sent_at"],
        )

    def add(
        self,
        buyer_id: str,
        kind: str,
        order_id: str | None,
        text: str,
        dedupe_key: str | None = None,
    ) -> Notification | None:
        """Queue a notification; None when one with the same ``dedupe_key`` exists."""
        if not buyer_id or not text:
            raise ValueError("a notification needs a buyer and a text")
        created = now_beijing().isoformat(timespec="seconds")
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO notifications "
                "(buyer_id, kind, order_id, text, created_at, dedupe_key) VALUES (?,?,?,?,?,?)",
                (buyer_id, kind, order_id, text, created, dedupe_key),
            )
            if cur.rowcount == 0:
                return None
            return Notification(cur.lastrowid or 0, buyer_id, kind, order_id, text, created)

    def pending(self, limit: int = 100, buyer_id: str | None = None) -> list[Notification]:
        """Unsent notifications, oldest first."""
        query = "SELECT * FROM notifications WHERE sent_at IS NULL"
        args: tuple[object, ...] = ()
        if buyer_id is not None:
            query += " AND buyer_id = ?"
            args = (buyer_id,)
        with closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [self._row(r) for r in rows]

    def mark_sent(self, notification_id: int) -> bool:
        """Mark one notification sent; False when it was unknown or already sent."""
        sent = now_beijing().isoformat(timespec="seconds")
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "UPDATE notifications SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
                (sent, notification_id),
            )
            return cur.rowcount == 1

    def all(self) -> list[Notification]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM notifications ORDER BY id").fetchall()
        return [self._row(r) for r in rows]


def get_outbox() -> NotificationOutbox:
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> NotificationOutbox:
    return NotificationOutbox(path)
