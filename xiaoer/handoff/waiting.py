"""A customer waiting for an agent who asks "人呢": their place in the queue, not silence.

After a handoff in working hours the bot is paused for the conversation (it must not talk
over the agent), so nothing would answer "人呢" / "还有人吗". The channels call
``queue_notice`` for a message the assistant did not answer: when the conversation waits
in the queue and the message asks for a person, the customer hears their place in the
queue, at most once per ``handoff.queue_notice_minutes`` (xiaoer.yml, default 3);
otherwise nothing is said (the agent will answer).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from sqlalchemy import Column, Float, Table, Text, select

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.store import get_handoff_store

ASKS_FOR_PERSON = re.compile(
    r"人呢|有人吗|有没有人|还有人|在吗|在不在|在不|客服呢|人工呢|还要等|要等多久|多久|等了|怎么还没人|理理我"
)
DEFAULT_MINUTES = 3.0

queue_notices = Table(
    "queue_notices",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("told_at", Float, nullable=False),  # epoch seconds
)


class NoticeLog:
    """When each waiting customer was last told their place in the queue."""

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def last(self, sender_id: str) -> float | None:
        with self.db.connect() as conn:
            value = conn.execute(
                select(queue_notices.c.told_at).where(queue_notices.c.sender_id == sender_id)
            ).scalar()
        return None if value is None else float(value)

    def told(self, sender_id: str, at: float) -> None:
        with self.db.begin() as conn:
            self.db.upsert(
                conn,
                queue_notices,
                {"sender_id": sender_id, "told_at": at},
                ["sender_id"],
                ["told_at"],
            )

    def claim(self, sender_id: str, at: float, gap_seconds: float) -> bool:
        """Record a notice at ``at`` unless one was given less than ``gap_seconds`` before:
        whether this caller may tell the customer (one of two messages arriving together)."""
        if self.db.insert_ignore(queue_notices, sender_id=sender_id, told_at=at):
            return True
        with self.db.begin() as conn:
            result = conn.execute(
                queue_notices.update()
                .where(
                    queue_notices.c.sender_id == sender_id,
                    queue_notices.c.told_at <= at - gap_seconds,
                )
                .values(told_at=at)
            )
            return bool(result.rowcount == 1)


def notice_minutes() -> float:
    value = handoff_settings().extra.get("queue_notice_minutes", DEFAULT_MINUTES)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return DEFAULT_MINUTES


def queue_notice(sender_id: str, text: str, now: float | None = None) -> str | None:
    """The queue notice for this unanswered message, or None (say nothing)."""
    if not ASKS_FOR_PERSON.search(text or ""):
        return None
    store = get_handoff_store()
    request = store.active_for(sender_id)
    if request is None or request.status != "waiting":
        return None
    current = time.time() if now is None else now
    if not NoticeLog().claim(sender_id, current, notice_minutes() * 60):
        return None
    ahead = store.position(request)
    if ahead:
        return f"您在排队，前面还有 {ahead} 位，客服接入后会马上回复您，请稍等～"
    return "您在排队，下一位就是您，客服接入后会马上回复您，请稍等～"
