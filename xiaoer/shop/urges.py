"""Urge requests: customers asking to ship faster, visible to agents with how overdue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Float, Index, Integer, Table, Text, delete, func, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata

urge_requests = Table(
    "urge_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("overdue_hours", Float, nullable=False),
    Column("created_at", Text, nullable=False),
    # who urged (the platform buyer id; empty for an anonymous conversation)
    Column("buyer_id", Text, nullable=False, server_default=""),
    Index("urges_by_order", "order_id"),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class UrgeRequest:
    id: int
    sender_id: str
    order_id: str
    overdue_hours: float
    created_at: str
    buyer_id: str = ""


class UrgeStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def record(
        self, sender_id: str, order_id: str, overdue_hours: float, buyer_id: str | None = None
    ) -> int:
        """Record an urge; returns how many times the same customer urged this order today
        (Beijing time, this one included). The customer is the platform buyer when known,
        else the conversation: another buyer's urges never count."""
        now = now_beijing()
        t = urge_requests.c
        with self.db.begin() as conn:
            conn.execute(
                urge_requests.insert().values(
                    sender_id=sender_id,
                    order_id=order_id,
                    overdue_hours=round(overdue_hours, 1),
                    created_at=now.isoformat(timespec="seconds"),
                    buyer_id=buyer_id or "",
                )
            )
            who = t.buyer_id == buyer_id if buyer_id else t.sender_id == sender_id
            today = now.date().isoformat()
            count = conn.execute(
                select(func.count())
                .select_from(urge_requests)
                .where(t.order_id == order_id, who, func.substr(t.created_at, 1, 10) == today)
            ).scalar()
            return int(count or 0)

    def clear(self) -> int:
        """Delete every urge (``xiaoer seed --reset``); how many were deleted."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(urge_requests)).rowcount)

    def for_order(self, order_id: str) -> list[UrgeRequest]:
        query = (
            select(urge_requests)
            .where(urge_requests.c.order_id == order_id)
            .order_by(urge_requests.c.id)
        )
        with self.db.connect() as conn:
            return [UrgeRequest(**r._asdict()) for r in conn.execute(query)]

    def recent(self, limit: int = 50) -> list[UrgeRequest]:
        query = select(urge_requests).order_by(urge_requests.c.id.desc()).limit(limit)
        with self.db.connect() as conn:
            return [UrgeRequest(**r._asdict()) for r in conn.execute(query)]


def get_urge_store() -> UrgeStore:
    """The urges of the project database."""
    return UrgeStore()
