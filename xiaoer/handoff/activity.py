"""What happens in an open handoff besides the tracker: the customer's messages (for the
queue's preview, wait times, unread counts and search), what each agent has read, and the
chat's own log (taken, transferred, reassigned, internal notes).

* ``handoff_activity``: one row per request: the latest customer message, when it came,
  how many the customer wrote since the request opened and a searchable text of them
  (capped). The channels call :func:`record_customer_message` for every customer message;
  it also touches the request so that the console's live feed sees the change at once.
* ``handoff_reads``: per (request, agent) how many customer messages the agent has seen:
  unread = ``customer_count - seen_count``.
* ``handoff_log``: taken / transferred / reassigned / returned / closed / note, with who
  did it, to whom, and the note. Internal notes live here and never reach the customer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, func, select
from sqlalchemy.engine import Row

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.handoff.store import HandoffRequest, handoff_requests, parse_time

logger = logging.getLogger(__name__)

SEARCH_TEXT_CHARS = 20_000
PREVIEW_CHARS = 300

handoff_activity = Table(
    "handoff_activity",
    metadata,
    Column("handoff_id", Integer, primary_key=True),
    Column("sender_id", Text, nullable=False),
    Column("last_customer_at", Text),
    Column("last_customer_text", Text, nullable=False, server_default=""),
    Column("customer_count", Integer, nullable=False, server_default="0"),
    Column("search_text", Text, nullable=False, server_default=""),
    Index("handoff_activity_by_sender", "sender_id"),
)

handoff_reads = Table(
    "handoff_reads",
    metadata,
    Column("handoff_id", Integer, primary_key=True),
    Column("agent_id", Integer, primary_key=True),
    Column("seen_count", Integer, nullable=False, server_default="0"),
    Column("seen_at", Text, nullable=False),
)

handoff_log = Table(
    "handoff_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("handoff_id", Integer, nullable=False),
    Column("at", Text, nullable=False),
    Column("kind", Text, nullable=False),  # taken | transferred | reassigned | note | closed
    Column("actor_id", Integer),  # the agent who did it (None: the system)
    Column("from_agent_id", Integer),  # who held it before
    Column("to_agent_id", Integer),  # who holds it now (transfers to a colleague)
    Column("group_name", Text, nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Index("handoff_log_by_handoff", "handoff_id", "id"),
    sqlite_autoincrement=True,
)

LOG_KINDS = ("taken", "transferred", "reassigned", "note", "closed", "handed_back")


def _now() -> str:
    return now_beijing().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Activity:
    handoff_id: int
    last_customer_at: str | None = None
    last_customer_text: str = ""
    customer_count: int = 0


@dataclass(frozen=True)
class LogEntry:
    id: int
    handoff_id: int
    at: str
    kind: str
    actor_id: int | None
    from_agent_id: int | None
    to_agent_id: int | None
    group_name: str
    note: str


class ActivityStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- customer messages ---------------------------------------------------------------
    def customer_message(self, request: HandoffRequest, text: str) -> None:
        """Count a customer message of an open request (and touch the request, so that the
        live queue sends it)."""
        now = _now()
        text = (text or "").strip()
        with self.db.begin() as conn:
            row = conn.execute(
                select(handoff_activity.c.customer_count, handoff_activity.c.search_text).where(
                    handoff_activity.c.handoff_id == request.id
                )
            ).first()
            search = ((row.search_text + "\n") if row else "") + text
            values = {
                "handoff_id": request.id,
                "sender_id": request.sender_id,
                "last_customer_at": now,
                "last_customer_text": text[:PREVIEW_CHARS],
                "customer_count": (row.customer_count if row else 0) + 1,
                "search_text": search[-SEARCH_TEXT_CHARS:],
            }
            self.db.upsert(
                conn,
                handoff_activity,
                values,
                ["handoff_id"],
                ["last_customer_at", "last_customer_text", "customer_count", "search_text"],
            )
            conn.execute(
                handoff_requests.update()
                .where(handoff_requests.c.id == request.id)
                .values(updated_at=now)
            )

    def activity(self, ids: list[int]) -> dict[int, Activity]:
        if not ids:
            return {}
        t = handoff_activity.c
        with self.db.connect() as conn:
            rows = conn.execute(
                select(
                    t.handoff_id, t.last_customer_at, t.last_customer_text, t.customer_count
                ).where(t.handoff_id.in_(ids))
            ).all()
        return {r.handoff_id: Activity(*r) for r in rows}

    def search_texts(self, ids: list[int]) -> dict[int, str]:
        """The customer messages of each request since it opened (for search snippets)."""
        if not ids:
            return {}
        t = handoff_activity.c
        with self.db.connect() as conn:
            rows = conn.execute(select(t.handoff_id, t.search_text).where(t.handoff_id.in_(ids)))
            return {int(r.handoff_id): str(r.search_text) for r in rows}

    # --- reads ---------------------------------------------------------------------------
    def mark_read(self, handoff_id: int, agent_id: int) -> int:
        """The agent has seen every customer message so far; returns that count."""
        with self.db.begin() as conn:
            count = conn.execute(
                select(handoff_activity.c.customer_count).where(
                    handoff_activity.c.handoff_id == handoff_id
                )
            ).scalar()
            count = int(count or 0)
            current = conn.execute(
                select(handoff_reads.c.seen_count).where(
                    handoff_reads.c.handoff_id == handoff_id, handoff_reads.c.agent_id == agent_id
                )
            ).scalar()
            if current is None or int(current) != count:
                self.db.upsert(
                    conn,
                    handoff_reads,
                    {
                        "handoff_id": handoff_id,
                        "agent_id": agent_id,
                        "seen_count": count,
                        "seen_at": _now(),
                    },
                    ["handoff_id", "agent_id"],
                    ["seen_count", "seen_at"],
                )
        return count

    def seen(self, agent_id: int, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        t = handoff_reads.c
        with self.db.connect() as conn:
            rows = conn.execute(
                select(t.handoff_id, t.seen_count).where(
                    t.agent_id == agent_id, t.handoff_id.in_(ids)
                )
            ).all()
        return {int(r.handoff_id): int(r.seen_count) for r in rows}

    def unread(self, agent_id: int, ids: list[int]) -> dict[int, int]:
        """Customer messages this agent has not seen, per request (those with any)."""
        activity = self.activity(ids)
        seen = self.seen(agent_id, ids)
        out = {}
        for handoff_id, a in activity.items():
            n = a.customer_count - seen.get(handoff_id, 0)
            if n > 0:
                out[handoff_id] = n
        return out

    def reads_revision(self, agent_id: int) -> str:
        """Changes whenever this agent reads something (their other tabs update too)."""
        t = handoff_reads.c
        with self.db.connect() as conn:
            row = conn.execute(
                select(func.count(), func.sum(t.seen_count), func.max(t.seen_at)).where(
                    t.agent_id == agent_id
                )
            ).one()
        return repr(tuple(row))

    # --- the chat's log ------------------------------------------------------------------
    def log(
        self,
        handoff_id: int,
        kind: str,
        *,
        actor_id: int | None = None,
        from_agent_id: int | None = None,
        to_agent_id: int | None = None,
        group: str = "",
        note: str = "",
    ) -> int:
        if kind not in LOG_KINDS:
            raise ValueError(kind)
        now = _now()
        with self.db.begin() as conn:
            result = conn.execute(
                handoff_log.insert().values(
                    handoff_id=handoff_id,
                    at=now,
                    kind=kind,
                    actor_id=actor_id,
                    from_agent_id=from_agent_id,
                    to_agent_id=to_agent_id,
                    group_name=group,
                    note=note[:1000],
                )
            )
            # the live feed wakes up for every entry (a note included)
            conn.execute(
                handoff_requests.update()
                .where(handoff_requests.c.id == handoff_id)
                .values(updated_at=now)
            )
            return int(result.inserted_primary_key[0])

    @staticmethod
    def _entry(row: Row) -> LogEntry:
        return LogEntry(**dict(row._mapping))

    def entries(self, handoff_id: int) -> list[LogEntry]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(handoff_log)
                .where(handoff_log.c.handoff_id == handoff_id)
                .order_by(handoff_log.c.id)
            ).all()
        return [self._entry(r) for r in rows]

    def entries_after(self, after_id: int, limit: int = 200) -> list[LogEntry]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(handoff_log)
                .where(handoff_log.c.id > after_id)
                .order_by(handoff_log.c.id)
                .limit(limit)
            ).all()
        return [self._entry(r) for r in rows]

    def last_log_id(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.max(handoff_log.c.id))).scalar() or 0)


def get_activity_store() -> ActivityStore:
    return ActivityStore()


def record_customer_message(
    sender_id: str, text: str, metadata: dict[str, Any] | None = None
) -> None:
    """A customer wrote (called by the channels for every message): counted for the open
    request of the conversation, if any; a Douyin nickname is remembered for the console.
    Never raises (a channel must answer the customer whatever happens here)."""
    try:
        from xiaoer.handoff.customers import get_customer_store
        from xiaoer.handoff.store import get_handoff_store

        nickname = str((metadata or {}).get("nickname") or "").strip()
        if nickname:
            get_customer_store().set_nickname(sender_id, nickname)
        request = get_handoff_store().active_for(sender_id)
        if request is not None:
            get_activity_store().customer_message(request, text)
    except Exception:  # noqa: BLE001 - logged without text
        logger.exception("could not record a customer message of %s", sender_id)


def waiting_since(request: HandoffRequest, activity: Activity | None) -> str | None:
    """When the customer started waiting for a human answer: their latest message that
    no agent has answered yet (the request's creation when they wrote nothing since);
    None: an agent answered the latest message."""
    last_customer = parse_time(activity.last_customer_at) if activity else None
    last_agent = parse_time(request.last_agent_reply_at)
    start = last_customer or parse_time(request.created_at)
    if last_agent is not None and start is not None and last_agent >= start:
        return None
    return start.isoformat() if start else None
