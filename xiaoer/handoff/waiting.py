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
import sqlite3
import time
from contextlib import closing
from functools import lru_cache
from pathlib import Path

from xiaoer.core.config import get_settings
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.store import get_handoff_store

ASKS_FOR_PERSON = re.compile(
    r"人呢|有人吗|有没有人|还有人|在吗|在不在|在不|客服呢|人工呢|还要等|要等多久|多久|等了|怎么还没人|理理我"
)
DEFAULT_MINUTES = 3.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_notices (
  sender_id TEXT PRIMARY KEY,
  told_at REAL NOT NULL
);
"""


class NoticeLog:
    """When each waiting customer was last told their place in the queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(SCHEMA)

    def last(self, sender_id: str) -> float | None:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            row = conn.execute(
                "SELECT told_at FROM queue_notices WHERE sender_id = ?", (sender_id,)
            ).fetchone()
            return float(row[0]) if row else None

    def told(self, sender_id: str, at: float) -> None:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.execute(
                "INSERT INTO queue_notices (sender_id, told_at) VALUES (?, ?) "
                "ON CONFLICT(sender_id) DO UPDATE SET told_at = excluded.told_at",
                (sender_id, at),
            )


@lru_cache(maxsize=8)
def _log_at(path: Path) -> NoticeLog:
    return NoticeLog(path)


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
    log = _log_at(get_settings().data_dir / "xiaoer.db")
    current = time.time() if now is None else now
    last = log.last(sender_id)
    if last is not None and current - last < notice_minutes() * 60:
        return None
    log.told(sender_id, current)
    ahead = store.position(request)
    if ahead:
        return f"您在排队，前面还有 {ahead} 位，客服接入后会马上回复您，请稍等～"
    return "您在排队，下一位就是您，客服接入后会马上回复您，请稍等～"
