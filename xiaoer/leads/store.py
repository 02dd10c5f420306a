"""The lead store: one lead per customer, merged across conversations.

Tables in the project database (``xiaoer.core.db``; release 0.1 kept them in ``xiaoer.db``):

* ``leads``: category, score, status, assignee, the conversation and message that
  created the lead; a lead merged into another keeps a pointer (``merged_into``) and is
  hidden from lists.
* ``lead_contacts``: phones and WeChat ids, each unique: a contact seen again in another
  conversation finds the same lead.
* ``lead_senders``: conversation (sender) ids and open ids that belong to a lead.
* ``lead_activity``: every customer message of every conversation (intent, signals),
  kept whether or not the customer is a lead yet, so that the score and category of a
  lead created later count what came before.
* ``lead_notes``: status changes and notes by agents; ``lead_audit``: exports and other
  actions that must be traceable; ``lead_kv``: the round-robin pointer (and the row
  that serialises the writers on PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    case,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.leads.rules import CATEGORIES, SCORES, STATUSES, LeadRules

# --- tables (names and columns of release 0.1's xiaoer.db) ---------------------------------
leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("category", Text, nullable=False, server_default="purchase"),
    Column("score", Text, nullable=False, server_default="cold"),
    Column("points", Float, nullable=False, server_default="0"),
    Column("status", Text, nullable=False, server_default="new"),
    Column("assignee_id", Integer),
    Column("source_sender_id", Text, nullable=False),
    Column("source_channel", Text, nullable=False, server_default=""),
    Column("source_message_id", Text, nullable=False, server_default=""),
    Column("source_message", Text, nullable=False, server_default=""),
    Column("has_lead_card", Integer, nullable=False, server_default="0"),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("last_activity_at", Text, nullable=False),
    Column("merged_into", Integer),
    Index("leads_list", "merged_into", "created_at"),
    sqlite_autoincrement=True,
)
lead_contacts = Table(
    "lead_contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default="message"),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("kind", "value"),
    Index("lead_contacts_lead", "lead_id"),
    sqlite_autoincrement=True,
)
lead_senders = Table(
    "lead_senders",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("lead_id", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("lead_senders_lead", "lead_id"),
)
lead_activity = Table(
    "lead_activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("intent", Text, nullable=False, server_default=""),
    Column("signals", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),
    Column("at", Text, nullable=False),
    Index("lead_activity_sender", "sender_id", "at"),
    # a message is counted once, also when two processes record it at the same time
    Index(
        "lead_activity_message",
        "sender_id",
        "message_id",
        unique=True,
        sqlite_where=text("message_id != ''"),
        postgresql_where=text("message_id != ''"),
    ),
    sqlite_autoincrement=True,
)
lead_notes = Table(
    "lead_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", Integer, nullable=False),
    Column("author", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),
    Column("at", Text, nullable=False),
    sqlite_autoincrement=True,
)
lead_audit = Table(
    "lead_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    sqlite_autoincrement=True,
)
lead_kv = Table(
    "lead_kv",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# the lead_kv row every write transaction locks (SELECT .. FOR UPDATE): capture, merge and
# rescoring read several rows and write from what they read, so they run one at a time on
# PostgreSQL as they do on SQLite (whose writers are serialised by BEGIN IMMEDIATE)
_WRITE_LOCK = "lock:leads"
_OPEN = ("new", "contacted")


def mask_contact(kind: str, value: str) -> str:
    """What an agent without the permission sees: 138****5678, ab****9."""
    if len(value) == 11 and value.isdigit():  # a phone, also when it is the WeChat id
        return f"{value[:3]}****{value[-4:]}"
    if len(value) <= 4:
        return value[:1] + "***"
    return f"{value[:2]}****{value[-2:]}"


@dataclass(frozen=True)
class Note:
    id: int
    lead_id: int
    author: str
    status: str
    text: str
    at: str


@dataclass(frozen=True)
class Lead:
    id: int
    name: str
    category: str  # purchase | wholesale | after_sales | complaint
    score: str  # hot | warm | cold
    points: float
    status: str  # new | contacted | won | lost
    assignee_id: int | None
    source_sender_id: str
    source_channel: str
    source_message_id: str
    source_message: str
    created_at: str
    updated_at: str
    last_activity_at: str
    contacts: list[dict[str, str]] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)

    @property
    def phones(self) -> list[str]:
        return [c["value"] for c in self.contacts if c["kind"] == "phone"]

    @property
    def wechats(self) -> list[str]:
        return [c["value"] for c in self.contacts if c["kind"] == "wechat"]

    def to_json(self) -> dict[str, Any]:
        """The lead as the CRM webhook and the API send it (full contacts)."""
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "score": self.score,
            "points": self.points,
            "status": self.status,
            "assignee_id": self.assignee_id,
            "phones": self.phones,
            "wechats": self.wechats,
            "conversations": self.senders,
            "source": {
                "conversation_id": self.source_sender_id,
                "channel": self.source_channel,
                "message_id": self.source_message_id,
                "text": self.source_message,
            },
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_activity_at": self.last_activity_at,
        }


@dataclass(frozen=True)
class CapturedContact:
    kind: str  # phone | wechat
    value: str
    source: str = "message"  # message | lead_card


@dataclass(frozen=True)
class CaptureResult:
    lead: Lead | None
    created: bool = False
    changed: bool = False  # category, score, contacts or conversations changed
    new_contacts: tuple[CapturedContact, ...] = ()


def _now() -> str:
    return now_beijing().isoformat(timespec="seconds")


def _parse(at: str) -> datetime:
    value = datetime.fromisoformat(at)
    return value if value.tzinfo else value.replace(tzinfo=BEIJING)


class LeadStore:
    def __init__(
        self, db: Database | str | Path | None = None, rules: LeadRules | None = None
    ) -> None:
        self.db = database_for(db)
        self._rules = rules

    @property
    def path(self) -> Path | None:
        """The SQLite file of the store (None on PostgreSQL)."""
        return self.db.sqlite_path

    @property
    def rules(self) -> LeadRules:
        return self._rules or LeadRules.from_settings()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction, serialised with every other writer of the lead tables."""
        with self.db.begin() as conn:
            if self.db.dialect != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises
                self.db.upsert(conn, lead_kv, {"key": _WRITE_LOCK, "value": ""}, ["key"], [])
                conn.execute(
                    select(lead_kv.c.key).where(lead_kv.c.key == _WRITE_LOCK).with_for_update()
                )
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.db.connect() as conn:
            yield conn

    # --- the interface other engineers use -----------------------------------------
    def contacts_for(self, sender_id: str) -> list[dict[str, str]]:
        """Contacts of the customer of a conversation: [{"kind", "value", "masked"}]."""
        lead = self.lead_for(sender_id)
        return list(lead.contacts) if lead else []

    def lead_for(self, sender_id: str) -> Lead | None:
        with self._read() as conn:
            return self._lead_of_sender(conn, sender_id)

    def _lead_of_sender(self, conn: Connection, sender_id: str) -> Lead | None:
        lead_id = conn.execute(
            select(lead_senders.c.lead_id).where(lead_senders.c.sender_id == sender_id)
        ).scalar()
        return self._load(conn, self._resolve(conn, lead_id)) if lead_id is not None else None

    def get(self, lead_id: int) -> Lead | None:
        with self._read() as conn:
            return self._load(conn, self._resolve(conn, lead_id))

    # --- capture ---------------------------------------------------------------------
    def record_message(
        self,
        sender_id: str,
        *,
        text: str = "",
        intent: str | None = None,
        message_id: str = "",
        at: datetime | None = None,
        contacts: list[CapturedContact] | None = None,
        open_id: str | None = None,
        channel: str = "",
        name: str = "",
        lead_card: bool = False,
    ) -> CaptureResult:
        """Record one customer message; create, merge or update the customer's lead.

        A lead is created when the message carries a contact (text or lead card); a
        customer who is already a lead gets the message counted (activity, score)."""
        rules = self.rules
        when = (at or now_beijing()).astimezone(BEIJING).isoformat(timespec="seconds")
        signals = rules.signals(intent, text)
        contacts = _dedupe(contacts or [])
        with self._tx() as conn:
            activity = {
                "sender_id": sender_id,
                "message_id": message_id,
                "intent": intent or "",
                "signals": ",".join(signals),
                "text": text[:2000],
                "at": when,
            }
            seen = (
                message_id
                and conn.execute(
                    select(lead_activity.c.id).where(
                        lead_activity.c.sender_id == sender_id,
                        lead_activity.c.message_id == message_id,
                    )
                ).first()
            )
            if seen or not self._insert_new(conn, lead_activity, activity):
                # the same message twice: nothing changes
                return CaptureResult(self._lead_of_sender(conn, sender_id))
            ids = [k for k in (sender_id, open_id) if k]
            found = self._leads_matching(conn, ids, contacts)
            if not found and not contacts:
                return CaptureResult(None)
            created = False
            if found:
                lead_id = found[0]
                for other in found[1:]:
                    self._merge(conn, lead_id, other)
            else:
                lead_id = conn.execute(
                    leads.insert().values(
                        name=name,
                        source_sender_id=sender_id,
                        source_channel=channel,
                        source_message_id=message_id,
                        source_message=text[:2000],
                        created_at=when,
                        updated_at=when,
                        last_activity_at=when,
                    )
                ).inserted_primary_key[0]
                created = True
            before = self._load(conn, lead_id) if not created else None
            for key in ids:
                self._insert_new(
                    conn, lead_senders, {"sender_id": key, "lead_id": lead_id, "created_at": when}
                )
            new: list[CapturedContact] = []
            for c in contacts:
                row = {
                    "lead_id": lead_id,
                    "kind": c.kind,
                    "value": c.value,
                    "sender_id": sender_id,
                    "message_id": message_id,
                    "source": c.source,
                    "created_at": when,
                }
                if self._insert_new(conn, lead_contacts, row):
                    new.append(c)
            values: dict[str, Any] = {
                "last_activity_at": _later(leads.c.last_activity_at, when),
            }
            if name:
                values["name"] = case((leads.c.name == "", name), else_=leads.c.name)
            if lead_card:
                values["has_lead_card"] = 1
            conn.execute(leads.update().where(leads.c.id == lead_id).values(**values))
            self._rescore(conn, lead_id, rules)
            after = self._load(conn, lead_id)
            assert after is not None
            changed = created or bool(new) or _differs(before, after)
            if changed:
                conn.execute(leads.update().where(leads.c.id == lead_id).values(updated_at=_now()))
                after = self._load(conn, lead_id)
            return CaptureResult(after, created, changed, tuple(new))

    def _insert_new(self, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
        """INSERT .. ON CONFLICT DO NOTHING (any unique key) on ``conn``: whether it inserted."""
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return conn.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount == 1

    def _leads_matching(
        self, conn: Connection, ids: list[str], contacts: list[CapturedContact]
    ) -> list[int]:
        """Leads of these sender / open ids or contacts, oldest first, merged ones resolved."""
        found: set[int] = set()
        for key in ids:
            lead_id = conn.execute(
                select(lead_senders.c.lead_id).where(lead_senders.c.sender_id == key)
            ).scalar()
            if lead_id is not None:
                found.add(self._resolve(conn, lead_id))
        for c in contacts:
            lead_id = conn.execute(
                select(lead_contacts.c.lead_id).where(
                    lead_contacts.c.kind == c.kind, lead_contacts.c.value == c.value
                )
            ).scalar()
            if lead_id is not None:
                found.add(self._resolve(conn, lead_id))
        return sorted(found)

    def _resolve(self, conn: Connection, lead_id: int) -> int:
        for _ in range(50):
            row = conn.execute(select(leads.c.merged_into).where(leads.c.id == lead_id)).first()
            if not row or row.merged_into is None:
                return lead_id
            lead_id = int(row.merged_into)
        return lead_id

    def _merge(self, conn: Connection, into: int, other: int) -> None:
        """Move everything of lead ``other`` into the older lead ``into``."""
        for table in (lead_contacts, lead_senders, lead_notes):
            conn.execute(table.update().where(table.c.lead_id == other).values(lead_id=into))
        row = conn.execute(select(leads).where(leads.c.id == other)).mappings().one()
        conn.execute(
            leads.update()
            .where(leads.c.id == into)
            .values(
                last_activity_at=_later(leads.c.last_activity_at, row["last_activity_at"]),
                has_lead_card=case(
                    (leads.c.has_lead_card < row["has_lead_card"], row["has_lead_card"]),
                    else_=leads.c.has_lead_card,
                ),
                assignee_id=func.coalesce(leads.c.assignee_id, row["assignee_id"]),
                name=case((leads.c.name == "", row["name"]), else_=leads.c.name),
            )
        )
        conn.execute(
            leads.update().where(leads.c.id == other).values(merged_into=into, updated_at=_now())
        )
        self._note(conn, into, "system", "", f"合并了线索 #{other}")

    @staticmethod
    def _note(conn: Connection, lead_id: int, author: str, status: str, text: str) -> None:
        conn.execute(
            lead_notes.insert().values(
                lead_id=lead_id, author=author, status=status, text=text, at=_now()
            )
        )

    def _rescore(self, conn: Connection, lead_id: int, rules: LeadRules) -> None:
        lead = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
        senders = select(lead_senders.c.sender_id).where(lead_senders.c.lead_id == lead_id)
        rows = conn.execute(
            select(lead_activity.c.intent, lead_activity.c.signals).where(
                lead_activity.c.sender_id.in_(senders.scalar_subquery())
            )
        ).all()
        intents = [r.intent for r in rows if r.intent]
        signals = [s for r in rows for s in r.signals.split(",") if s]
        has_contact = (
            conn.execute(
                select(lead_contacts.c.id).where(lead_contacts.c.lead_id == lead_id).limit(1)
            ).first()
            is not None
        )
        points = rules.points(
            intents=intents,
            signals=signals,
            messages=len(rows),
            has_contact=has_contact,
            has_lead_card=bool(lead["has_lead_card"]),
            last_activity=_parse(lead["last_activity_at"]),
            now=now_beijing(),
        )
        conn.execute(
            leads.update()
            .where(leads.c.id == lead_id)
            .values(category=rules.category(signals), points=points, score=rules.score(points))
        )

    def refresh_scores(self) -> list[int]:
        """Re-score open leads (recency decays); the ids whose score changed."""
        rules = self.rules
        changed: list[int] = []
        with self._tx() as conn:
            rows = conn.execute(
                select(leads.c.id, leads.c.score).where(
                    leads.c.merged_into.is_(None), leads.c.status.in_(_OPEN)
                )
            ).all()
            for row in rows:
                self._rescore(conn, row.id, rules)
                score = conn.execute(select(leads.c.score).where(leads.c.id == row.id)).scalar()
                if score != row.score:
                    conn.execute(
                        leads.update().where(leads.c.id == row.id).values(updated_at=_now())
                    )
                    changed.append(row.id)
        return changed

    # --- loading -----------------------------------------------------------------------
    def _load(self, conn: Connection, lead_id: int) -> Lead | None:
        row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
        if not row:
            return None
        contacts = [
            {"kind": c.kind, "value": c.value, "masked": mask_contact(c.kind, c.value)}
            for c in conn.execute(
                select(lead_contacts.c.kind, lead_contacts.c.value)
                .where(lead_contacts.c.lead_id == lead_id)
                .order_by(lead_contacts.c.id)
            )
        ]
        senders = list(
            conn.execute(
                select(lead_senders.c.sender_id)
                .where(lead_senders.c.lead_id == lead_id)
                .order_by(lead_senders.c.created_at, lead_senders.c.sender_id)
            ).scalars()
        )
        return Lead(
            id=row["id"],
            name=row["name"],
            category=row["category"],
            score=row["score"],
            points=float(row["points"]),
            status=row["status"],
            assignee_id=row["assignee_id"],
            source_sender_id=row["source_sender_id"],
            source_channel=row["source_channel"],
            source_message_id=row["source_message_id"],
            source_message=row["source_message"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            last_activity_at=row["last_activity_at"],
            contacts=contacts,
            senders=senders,
        )

    def list_leads(
        self,
        *,
        category: str | None = None,
        score: str | None = None,
        status: str | None = None,
        assignee_id: int | None = None,
        unassigned: bool = False,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int = 1000,
    ) -> list[Lead]:
        """Leads, newest first. Dates are YYYY-MM-DD (Beijing), inclusive."""
        query = select(leads.c.id).where(leads.c.merged_into.is_(None))
        for column, value, allowed in (
            ("category", category, CATEGORIES),
            ("score", score, SCORES),
            ("status", status, STATUSES),
        ):
            if value:
                if value not in allowed:
                    raise ValueError(f"unknown {column}: {value}")
                query = query.where(leads.c[column] == value)
        if assignee_id is not None:
            query = query.where(leads.c.assignee_id == assignee_id)
        if unassigned:
            query = query.where(leads.c.assignee_id.is_(None))
        day = func.substr(leads.c.created_at, 1, 10)
        if date_from:
            query = query.where(day >= _date(date_from))
        if date_to:
            query = query.where(day <= _date(date_to))
        query = query.order_by(leads.c.created_at.desc(), leads.c.id.desc()).limit(limit)
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
            return [lead for lead_id in ids if (lead := self._load(conn, lead_id))]

    def search(self, query: str, limit: int = 50) -> list[Lead]:
        """Leads whose name, contacts, conversations or messages mention ``query``."""
        like = f"%{query}%"
        by_contact = select(lead_contacts.c.lead_id).where(lead_contacts.c.value.like(like))
        by_sender = select(lead_senders.c.lead_id).where(
            lead_senders.c.sender_id.in_(
                select(lead_activity.c.sender_id).where(lead_activity.c.text.like(like))
            )
            | lead_senders.c.sender_id.like(like)
        )
        found = (
            select(leads.c.id)
            .where(
                leads.c.merged_into.is_(None),
                leads.c.name.like(like)
                | leads.c.source_message.like(like)
                | leads.c.id.in_(by_contact)
                | leads.c.id.in_(by_sender),
            )
            .order_by(leads.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            ids = list(conn.execute(found).scalars())
            return [lead for lead_id in ids if (lead := self._load(conn, lead_id))]

    def activity(self, lead_id: int) -> list[dict[str, str]]:
        """The customer messages of the lead's conversations, oldest first."""
        a, s = lead_activity, lead_senders
        with self._read() as conn:
            rows = conn.execute(
                select(a.c.sender_id, a.c.intent, a.c.text, a.c.at)
                .join(s, s.c.sender_id == a.c.sender_id)
                .where(s.c.lead_id == self._resolve(conn, lead_id))
                .order_by(a.c.at, a.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # --- agents' work ----------------------------------------------------------------
    def _existing(self, conn: Connection, lead_id: int) -> int:
        lead_id = self._resolve(conn, lead_id)
        if conn.execute(select(leads.c.id).where(leads.c.id == lead_id)).first() is None:
            raise KeyError(lead_id)
        return lead_id

    def set_status(self, lead_id: int, status: str, author: str, note: str = "") -> Lead:
        if status not in STATUSES:
            raise ValueError(f"unknown status: {status}")
        with self._tx() as conn:
            lead_id = self._existing(conn, lead_id)
            conn.execute(
                leads.update().where(leads.c.id == lead_id).values(status=status, updated_at=_now())
            )
            self._note(conn, lead_id, author, status, note)
            lead = self._load(conn, lead_id)
        assert lead is not None
        return lead

    def add_note(self, lead_id: int, author: str, text: str) -> None:
        with self._tx() as conn:
            self._note(conn, self._existing(conn, lead_id), author, "", text)

    def notes(self, lead_id: int) -> list[Note]:
        with self._read() as conn:
            rows = conn.execute(
                select(lead_notes)
                .where(lead_notes.c.lead_id == self._resolve(conn, lead_id))
                .order_by(lead_notes.c.at, lead_notes.c.id)
            ).mappings()
            return [Note(**dict(r)) for r in rows]

    def set_assignee(self, lead_id: int, agent_id: int | None, author: str) -> Lead:
        """Give the lead to an agent (or to nobody), whoever had it (the console)."""
        with self._tx() as conn:
            lead_id = self._existing(conn, lead_id)
            self._assign(conn, lead_id, agent_id, author, only_if_unassigned=False)
            lead = self._load(conn, lead_id)
        assert lead is not None
        return lead

    def assign_if_unassigned(
        self, lead_id: int, agent_id: int, author: str, max_open: int | None = None
    ) -> Lead | None:
        """Give an open, unassigned lead to an agent who holds fewer than ``max_open`` open
        leads: one conditional UPDATE in a serialised transaction, so of two callers at once
        exactly one assigns, and an agent's cap holds. The lead as it is now (unchanged when
        it was taken or the agent is full), or None if there is no such lead."""
        with self._tx() as conn:
            lead_id = self._resolve(conn, lead_id)
            if max_open is None or self._open_count(conn, agent_id) < max_open:
                self._assign(conn, lead_id, agent_id, author, only_if_unassigned=True)
            return self._load(conn, lead_id)

    @staticmethod
    def _open_count(conn: Connection, agent_id: int) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(leads)
                .where(
                    leads.c.merged_into.is_(None),
                    leads.c.assignee_id == agent_id,
                    leads.c.status.in_(_OPEN),
                )
            ).scalar_one()
        )

    def _assign(
        self,
        conn: Connection,
        lead_id: int,
        agent_id: int | None,
        author: str,
        *,
        only_if_unassigned: bool,
    ) -> bool:
        update = leads.update().where(leads.c.id == lead_id)
        if only_if_unassigned:
            update = update.where(leads.c.assignee_id.is_(None), leads.c.status.in_(_OPEN))
        if conn.execute(update.values(assignee_id=agent_id, updated_at=_now())).rowcount != 1:
            return False
        text = f"分配给{self._agent_name(agent_id)}" if agent_id is not None else "取消分配"
        self._note(conn, lead_id, author, "", text)
        return True

    def _agent_name(self, agent_id: int) -> str:
        """How a note names an agent: their display name, as the console shows them."""
        from xiaoer.agents.store import AgentStore

        agent = AgentStore(self.db).get(agent_id)
        return f"客服{agent.display_name}" if agent is not None else "已删除的客服账号"

    def open_counts(self) -> dict[int, int]:
        """Open (new / contacted) leads per assignee."""
        with self._read() as conn:
            rows = conn.execute(
                select(leads.c.assignee_id, func.count().label("n"))
                .where(
                    leads.c.merged_into.is_(None),
                    leads.c.assignee_id.is_not(None),
                    leads.c.status.in_(_OPEN),
                )
                .group_by(leads.c.assignee_id)
            ).all()
            return {int(r.assignee_id): int(r.n) for r in rows}

    def rotate(self, key: str, ids: list[int]) -> int | None:
        """Round robin: the first of ``ids`` (ascending) after the one stored under ``key``
        (wrapping around), stored as the new pointer, in one serialised transaction."""
        if not ids:
            return None
        ordered = sorted(ids)
        with self._tx() as conn:
            last = int(
                conn.execute(select(lead_kv.c.value).where(lead_kv.c.key == key)).scalar() or 0
            )
            chosen = next((i for i in ordered if i > last), ordered[0])
            self.db.upsert(conn, lead_kv, {"key": key, "value": str(chosen)}, ["key"], ["value"])
        return chosen

    def kv_get(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(lead_kv.c.value).where(lead_kv.c.key == key)).scalar()

    def kv_set(self, key: str, value: str) -> None:
        with self.db.begin() as conn:
            self.db.upsert(conn, lead_kv, {"key": key, "value": value}, ["key"], ["value"])

    # --- audit -------------------------------------------------------------------------
    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        with self.db.begin() as conn:
            conn.execute(
                lead_audit.insert().values(
                    at=_now(),
                    actor=actor,
                    action=action,
                    detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
                )
            )

    def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                select(lead_audit).order_by(lead_audit.c.id.desc()).limit(limit)
            ).mappings()
            return [{**dict(r), "detail": json.loads(r["detail"] or "{}")} for r in rows]


def _later(column: Any, value: str) -> Any:
    """The later of a TEXT timestamp column and ``value`` (SQLite's MAX(a, b), portably)."""
    return case((column < value, value), else_=column)


def _dedupe(contacts: list[CapturedContact]) -> list[CapturedContact]:
    seen: set[tuple[str, str]] = set()
    out: list[CapturedContact] = []
    for c in contacts:
        if (c.kind, c.value) not in seen:
            seen.add((c.kind, c.value))
            out.append(c)
    return out


def _differs(before: Lead | None, after: Lead) -> bool:
    if before is None:
        return True
    return (before.category, before.score, before.senders, before.contacts) != (
        after.category,
        after.score,
        after.senders,
        after.contacts,
    )


def _date(value: str) -> str:
    return datetime.strptime(value, "%Y-%m-%d").date().isoformat()


def get_lead_store() -> LeadStore:
    """The store on the project database."""
    return LeadStore()
