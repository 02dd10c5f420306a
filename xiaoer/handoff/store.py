"""Handoff requests: who wants a human, why, what the bot already knows, and who holds it.

A request goes ``waiting`` (in the queue of its skill group) -> ``active`` (an agent took
it; the bot is paused for that conversation) -> ``closed`` (handed back to the bot, or
closed). A conversation has at most one open (waiting or active) request: a partial unique
index holds that on every database, and taking a request is one conditional UPDATE, so two
agents never hold the same conversation. Rows live in ``handoff_requests`` of the project
database (:mod:`xiaoer.core.db`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, case, func, select, true
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.db import Database, database_for, metadata

OPEN = ("waiting", "active")

handoff_requests = Table(
    "handoff_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="waiting"),
    Column("created_at", Text, nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("group_name", Text, nullable=False, server_default=""),
    Column("intent", Text, nullable=False, server_default=""),
    Column("summary_json", Text, nullable=False, server_default="{}"),
    Column("agent_id", Integer),
    Column("taken_at", Text),
    Column("closed_at", Text),
    Column("note", Text, nullable=False, server_default=""),
    Column("in_hours", Integer, nullable=False, server_default="1"),
    Column("last_agent_reply_at", Text),
    Column("announced_at", Text),
    Column("announce_count", Integer, nullable=False, server_default="0"),
    Column("updated_at", Text),
    Index("handoff_by_status", "status", "created_at"),
    Index("handoff_by_sender", "sender_id", "status"),
    sqlite_autoincrement=True,
)
_t = handoff_requests
_IS_OPEN = _t.c.status.in_(OPEN)
# at most one open request per conversation, also between processes on PostgreSQL
Index(
    "uq_handoff_requests_open_sender",
    _t.c.sender_id,
    unique=True,
    sqlite_where=_IS_OPEN,
    postgresql_where=_IS_OPEN,
)


def _now() -> str:
    return now_beijing().isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)


@dataclass(frozen=True)
class HandoffRequest:
    id: int
    sender_id: str
    reason: str
    details: str
    status: str
    created_at: str
    priority: int = 0
    group_name: str = ""
    intent: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    agent_id: int | None = None
    taken_at: str | None = None
    closed_at: str | None = None
    note: str = ""
    in_hours: bool = True
    last_agent_reply_at: str | None = None
    announced_at: str | None = None
    announce_count: int = 0
    updated_at: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def waiting_seconds(self, now: datetime | None = None) -> int:
        created = parse_time(self.created_at)
        if created is None:
            return 0
        return max(0, int(((now or now_beijing()) - created).total_seconds()))


class HandoffStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    @staticmethod
    def _row(row: Row) -> HandoffRequest:
        data = dict(row._mapping)
        summary = json.loads(data.pop("summary_json") or "{}")
        data["in_hours"] = bool(data["in_hours"])
        return HandoffRequest(summary=summary, **data)

    def _fetch(self, conn: Connection, request_id: int) -> HandoffRequest:
        row = conn.execute(select(_t).where(_t.c.id == request_id)).one()
        return self._row(row)

    # --- the bot's side --------------------------------------------------------------
    def request(
        self,
        sender_id: str,
        reason: str,
        details: str = "",
        *,
        priority: int = 0,
        group: str = "",
        intent: str = "",
        summary: dict[str, Any] | None = None,
        in_hours: bool = True,
    ) -> HandoffRequest:
        """Record a request; a conversation has at most one open request.

        A second request for an open one raises its priority when needed and refreshes its
        summary, so the agent sees the latest state."""
        now = _now()
        summary_json = json.dumps(summary or {}, ensure_ascii=False)
        with self.db.begin() as conn:
            for _attempt in range(5):
                row = conn.execute(
                    select(_t.c.id)
                    .where(_t.c.sender_id == sender_id, _IS_OPEN)
                    .order_by(_t.c.id.desc())
                    .limit(1)
                    .with_for_update()
                ).first()
                if row is not None:
                    sets: dict[str, Any] = {
                        "priority": case((_t.c.priority < priority, priority), else_=_t.c.priority),
                        "updated_at": now,
                    }
                    if summary_json != "{}":
                        sets["summary_json"] = summary_json
                    conn.execute(_t.update().where(_t.c.id == row.id).values(**sets))
                    return self._fetch(conn, row.id)
                try:
                    # another process may open one at the same moment: the unique index
                    # refuses the second, which then updates the first (next round)
                    with conn.begin_nested():
                        result = conn.execute(
                            _t.insert().values(
                                sender_id=sender_id,
                                reason=reason,
                                details=details,
                                status="waiting",
                                created_at=now,
                                priority=priority,
                                group_name=group,
                                intent=intent,
                                summary_json=summary_json,
                                in_hours=int(in_hours),
                                updated_at=now,
                            )
                        )
                except IntegrityError:
                    continue
                return self._fetch(conn, result.inserted_primary_key[0])
        raise RuntimeError(f"could not record the handoff request of {sender_id!r}")

    def active_for(self, sender_id: str) -> HandoffRequest | None:
        """The open (waiting or taken) request of a conversation, if any."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(_t)
                .where(_t.c.sender_id == sender_id, _IS_OPEN)
                .order_by(_t.c.id.desc())
                .limit(1)
            ).first()
        return self._row(row) if row else None

    # --- the queue -------------------------------------------------------------------
    def waiting(self, group: str | None = None) -> list[HandoffRequest]:
        """Waiting requests, highest priority first, then longest waiting."""
        return [r for r in self.open_requests(group) if r.status == "waiting"]

    def open_requests(self, group: str | None = None) -> list[HandoffRequest]:
        query = select(_t).where(_IS_OPEN)
        if group is not None:
            query = query.where(_t.c.group_name == group)
        query = query.order_by(_t.c.priority.desc(), _t.c.created_at, _t.c.id)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [self._row(r) for r in rows]

    def recent_closed(self, limit: int = 20) -> list[HandoffRequest]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(_t)
                .where(_t.c.status == "closed")
                .order_by(_t.c.closed_at.desc().nulls_last(), _t.c.id.desc())
                .limit(limit)
            ).all()
        return [self._row(r) for r in rows]

    def closed_page(
        self, offset: int = 0, limit: int = 50, visible_to: tuple[int, list[str]] | None = None
    ) -> tuple[list[HandoffRequest], int]:
        """One page of closed requests, newest first, and how many there are in all.
        ``visible_to`` (agent id, skill groups): only those of the groups, ungrouped ones
        and the agent's own (None: all, for admins)."""
        condition = _t.c.status == "closed"
        if visible_to is not None:
            agent_id, groups = visible_to
            condition = condition & (
                (_t.c.agent_id == agent_id) | (_t.c.group_name == "") | _t.c.group_name.in_(groups)
            )
        with self.db.connect() as conn:
            total = int(conn.execute(select(func.count()).where(condition)).scalar() or 0)
            rows = conn.execute(
                select(_t)
                .where(condition)
                .order_by(_t.c.closed_at.desc().nulls_last(), _t.c.id.desc())
                .offset(max(0, offset))
                .limit(limit)
            ).all()
        return [self._row(r) for r in rows], total

    def for_sender(self, sender_id: str, limit: int = 20) -> list[HandoffRequest]:
        """The conversation's requests, newest first (its past handoffs)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(_t).where(_t.c.sender_id == sender_id).order_by(_t.c.id.desc()).limit(limit)
            ).all()
        return [self._row(r) for r in rows]

    def search(self, query: str, limit: int = 50) -> list[HandoffRequest]:
        """Requests whose customer, order, summary or details mention ``query``, and those
        whose customer messages during the handoff do (newest first)."""
        from xiaoer.handoff.activity import handoff_activity

        like = f"%{query}%"
        matching = select(handoff_activity.c.handoff_id).where(
            handoff_activity.c.search_text.like(like)
        )
        with self.db.connect() as conn:
            rows = conn.execute(
                select(_t)
                .where(
                    _t.c.sender_id.like(like)
                    | _t.c.summary_json.like(like)
                    | _t.c.details.like(like)
                    | _t.c.note.like(like)
                    | _t.c.id.in_(matching)
                )
                .order_by(_t.c.id.desc())
                .limit(limit)
            ).all()
        return [self._row(r) for r in rows]

    def get(self, request_id: int) -> HandoffRequest | None:
        with self.db.connect() as conn:
            row = conn.execute(select(_t).where(_t.c.id == request_id)).first()
        return self._row(row) if row else None

    def position(self, request: HandoffRequest) -> int:
        """How many waiting requests of the same group are served before this one."""
        ahead = 0
        for other in self.waiting(request.group_name):
            if other.id == request.id:
                break
            ahead += 1
        return ahead

    def revision(self) -> str:
        """Changes whenever the queue changes (cheap; polled by the console's live feed)."""
        waiting = func.sum(case((_t.c.status == "waiting", 1), else_=0))
        with self.db.connect() as conn:
            totals = conn.execute(
                select(func.count(), func.max(_t.c.id), func.max(_t.c.updated_at), waiting)
            ).one()
            open_rows = conn.execute(
                select(
                    _t.c.id,
                    _t.c.status,
                    _t.c.agent_id,
                    _t.c.group_name,
                    _t.c.priority,
                    _t.c.updated_at,
                )
                .where(_IS_OPEN)
                .order_by(_t.c.id)
            ).all()
            # customer messages and the chats' log (notes, transfers) change it too, also
            # within the second of the last update
            from xiaoer.handoff.activity import handoff_activity, handoff_log

            messages = conn.execute(select(func.sum(handoff_activity.c.customer_count))).scalar()
            log_id = conn.execute(select(func.max(handoff_log.c.id))).scalar()
        state = (tuple(totals), [tuple(r) for r in open_rows], messages, log_id)
        return hashlib.sha1(repr(state).encode()).hexdigest()[:16]

    # --- the agents' side ------------------------------------------------------------
    def _update(self, request_id: int, condition: Any, **sets: Any) -> bool:
        """One conditional UPDATE: whether it changed the request (atomic on every database)."""
        sets["updated_at"] = _now()
        with self.db.begin() as conn:
            result = conn.execute(
                _t.update().where(_t.c.id == request_id, condition).values(**sets)
            )
            return bool(result.rowcount == 1)

    def take(self, request_id: int, agent_id: int) -> bool:
        """An agent takes a waiting request (or one they already hold)."""
        return self._update(
            request_id,
            (_t.c.status == "waiting") | ((_t.c.status == "active") & (_t.c.agent_id == agent_id)),
            status="active",
            agent_id=agent_id,
            taken_at=_now(),
        )

    def reassign(
        self, request_id: int, *, group: str | None = None, agent_id: int | None = None
    ) -> bool:
        """A supervisor moves an open request to another group (back to its queue) or
        straight to an agent."""
        sets: dict[str, Any] = {}
        if group is not None:
            sets["group_name"] = group
        if agent_id is not None:
            sets.update(status="active", agent_id=agent_id, taken_at=_now())
        elif group is not None:
            sets.update(status="waiting", agent_id=None, taken_at=None)
        if not sets:
            return False
        return self._update(request_id, _IS_OPEN, **sets)

    def agent_replied(self, request_id: int) -> None:
        self._update(request_id, true(), last_agent_reply_at=_now())

    def close(self, request_id: int, note: str = "") -> bool:
        """Hand back to the bot (or close): the request leaves the queue."""
        return self._update(
            request_id, _IS_OPEN, status="closed", closed_at=_now(), note=note[:1000]
        )

    def unanswered(self, after_seconds: float) -> list[HandoffRequest]:
        """Open requests in hours whose customer has heard nothing from a human (nor an
        announcement) for ``after_seconds``."""
        now = now_beijing()
        due: list[HandoffRequest] = []
        for r in self.open_requests():
            if not r.in_hours:
                continue
            last = max(
                t
                for t in (
                    parse_time(r.created_at),
                    parse_time(r.last_agent_reply_at),
                    parse_time(r.announced_at),
                )
                if t is not None
            )
            if (now - last).total_seconds() >= after_seconds:
                due.append(r)
        return due

    def mark_announced(self, request_id: int) -> None:
        self._update(
            request_id, true(), announced_at=_now(), announce_count=_t.c.announce_count + 1
        )

    def mark_in_hours(self, request_id: int) -> None:
        self._update(request_id, true(), in_hours=1)


def get_handoff_store() -> HandoffStore:
    """The store of the project database (cheap: the database is cached per process)."""
    return HandoffStore()
