"""The outbox of proactive notifications to buyers (shipped, after-sale approved, refunded).

Producers (the Doudian push channel) add rows; the Douyin output channel sends the
pending ones and marks them sent. Rows live in ``notifications`` of ``xiaoer.db`` under
the data folder, so that a restart loses none. ``dedupe_key`` (optional, unique) keeps
one notification per event even when the platform reports the event twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, select, update

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("buyer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("order_id", Text),
    Column("text", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("sent_at", Text),
    Column("dedupe_key", Text, unique=True),
    Index("notifications_pending", "sent_at", "id"),
    sqlite_autoincrement=True,
)

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
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    @staticmethod
    def _row(row: Any) -> Notification:
        return Notification(
            id=row.id,
            buyer_id=row.buyer_id,
            kind=row.kind,
            order_id=row.order_id,
            text=row.text,
            created_at=row.created_at,
            sent_at=row.sent_at,
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
        values = {
            "buyer_id": buyer_id,
            "kind": kind,
            "order_id": order_id,
            "text": text,
            "created_at": created,
            "dedupe_key": dedupe_key,
        }
        with self.db.begin() as conn:
            done = conn.execute(
                self.db.insert(notifications).values(**values).on_conflict_do_nothing()
            )
            if done.rowcount != 1:
                return None
            new_id = done.inserted_primary_key[0]
        return Notification(int(new_id), buyer_id, kind, order_id, text, created)

    def pending(self, limit: int = 100, buyer_id: str | None = None) -> list[Notification]:
        """Unsent notifications, oldest first."""
        query = select(notifications).where(notifications.c.sent_at.is_(None))
        if buyer_id is not None:
            query = query.where(notifications.c.buyer_id == buyer_id)
        with self.db.connect() as conn:
            rows = conn.execute(query.order_by(notifications.c.id).limit(limit)).all()
        return [self._row(r) for r in rows]

    def mark_sent(self, notification_id: int) -> bool:
        """Mark one notification sent; False when it was unknown or already sent."""
        sent = now_beijing().isoformat(timespec="seconds")
        with self.db.begin() as conn:
            done = conn.execute(
                update(notifications)
                .where(notifications.c.id == notification_id, notifications.c.sent_at.is_(None))
                .values(sent_at=sent)
            )
            return done.rowcount == 1

    def all(self) -> list[Notification]:
        with self.db.connect() as conn:
            rows = conn.execute(select(notifications).order_by(notifications.c.id)).all()
        return [self._row(r) for r in rows]


def get_outbox() -> NotificationOutbox:
    """The outbox of the project database."""
    return NotificationOutbox()
