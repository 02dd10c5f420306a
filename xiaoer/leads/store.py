"""The lead store: one lead per customer, merged across conversations.

Tables in ``xiaoer.db`` under the data folder:

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
  actions that must be traceable; ``lead_kv``: the round-robin pointer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.config import get_settings
from xiaoer.leads.rules import CATEGORIES, SCORES, STATUSES, LeadRules

SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL DEFAULT '',
  category TEXT NOT NULL DEFAULT 'purchase',
  score TEXT NOT NULL DEFAULT 'cold',
  points REAL NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'new',
  assignee_id INTEGER,
  source_sender_id TEXT NOT NULL,
  source_channel TEXT NOT NULL DEFAULT '',
  source_message_id TEXT NOT NULL DEFAULT '',
  source_message TEXT NOT NULL DEFAULT '',
  has_lead_card INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_activity_at TEXT NOT NULL,
  merged_into INTEGER
);
CREATE INDEX IF NOT EXISTS leads_list ON leads (merged_into, created_at);
CREATE TABLE IF NOT EXISTS lead_contacts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  message_id TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT 'message',
  created_at TEXT NOT NULL,
  UNIQUE (kind, value)
);
CREATE INDEX IF NOT EXISTS lead_contacts_lead ON lead_contacts (lead_id);
CREATE TABLE IF NOT EXISTS lead_senders (
  sender_id TEXT PRIMARY KEY,
  lead_id INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lead_senders_lead ON lead_senders (lead_id);
CREATE TABLE IF NOT EXISTS lead_activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  message_id TEXT NOT NULL DEFAULT '',
  intent TEXT NOT NULL DEFAULT '',
  signals TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lead_activity_sender ON lead_activity (sender_id, at);
CREATE TABLE IF NOT EXISTS lead_notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  author TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lead_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS lead_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    def __init__(self, path: Path, rules: LeadRules | None = None) -> None:
        self.path = Path(path)
        self._rules = rules
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @property
    def rules(self) -> LeadRules:
        return self._rules or LeadRules.from_settings()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    # --- the interface other engineers use -----------------------------------------
    def contacts_for(self, sender_id: str) -> list[dict[str, str]]:
        """Contacts of the customer of a conversation: [{"kind", "value", "masked"}]."""
        lead = self.lead_for(sender_id)
        return list(lead.contacts) if lead else []

    def lead_for(self, sender_id: str) -> Lead | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT lead_id FROM lead_senders WHERE sender_id = ?", (sender_id,)
            ).fetchone()
            return self._load(conn, self._resolve(conn, row["lead_id"])) if row else None

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
            if (
                message_id
                and conn.execute(
                    "SELECT 1 FROM lead_activity WHERE sender_id = ? AND message_id = ?",
                    (sender_id, message_id),
                ).fetchone()
            ):
                row = conn.execute(
                    "SELECT lead_id FROM lead_senders WHERE sender_id = ?", (sender_id,)
                ).fetchone()
                lead = self._load(conn, self._resolve(conn, row["lead_id"])) if row else None
                return CaptureResult(lead)  # the same message twice: nothing changes
            conn.execute(
                "INSERT INTO lead_activity (sender_id, message_id, intent, signals, text, at)"
                " VALUES (?,?,?,?,?,?)",
                (sender_id, message_id, intent or "", ",".join(signals), text[:2000], when),
            )
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
                cur = conn.execute(
                    "INSERT INTO leads (name, source_sender_id, source_channel, source_message_id,"
                    " source_message, created_at, updated_at, last_activity_at)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (name, sender_id, channel, message_id, text[:2000], when, when, when),
                )
                lead_id = int(cur.lastrowid or 0)
                created = True
            before = self._load(conn, lead_id) if not created else None
            for key in ids:
                conn.execute(
                    "INSERT OR IGNORE INTO lead_senders (sender_id, lead_id, created_at)"
                    " VALUES (?,?,?)",
                    (key, lead_id, when),
                )
            new: list[CapturedContact] = []
            for c in contacts:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO lead_contacts (lead_id, kind, value, sender_id,"
                    " message_id, source, created_at) VALUES (?,?,?,?,?,?,?)",
                    (lead_id, c.kind, c.value, sender_id, message_id, c.source, when),
                )
                if cur.rowcount:
                    new.append(c)
            updates = "last_activity_at = MAX(last_activity_at, ?)"
            params: list[Any] = [when]
            if name:
                updates += ", name = CASE WHEN name = '' THEN ? ELSE name END"
                params.append(name)
            if lead_card:
                updates += ", has_lead_card = 1"
            conn.execute(f"UPDATE leads SET {updates} WHERE id = ?", (*params, lead_id))
            self._rescore(conn, lead_id, rules)
            after = self._load(conn, lead_id)
            assert after is not None
            changed = created or bool(new) or _differs(before, after)
            if changed:
                conn.execute("UPDATE leads SET updated_at = ? WHERE id = ?", (_now(), lead_id))
                after = self._load(conn, lead_id)
            return CaptureResult(after, created, changed, tuple(new))

    def _leads_matching(
        self, conn: sqlite3.Connection, ids: list[str], contacts: list[CapturedContact]
    ) -> list[int]:
        """Leads of these sender / open ids or contacts, oldest first, merged ones resolved."""
        found: set[int] = set()
        for key in ids:
            row = conn.execute(
                "SELECT lead_id FROM lead_senders WHERE sender_id = ?", (key,)
            ).fetchone()
            if row:
                found.add(self._resolve(conn, row["lead_id"]))
        for c in contacts:
            row = conn.execute(
                "SELECT lead_id FROM lead_contacts WHERE kind = ? AND value = ?",
                (c.kind, c.value),
            ).fetchone()
            if row:
                found.add(self._resolve(conn, row["lead_id"]))
        return sorted(found)

    def _resolve(self, conn: sqlite3.Connection, lead_id: int) -> int:
        for _ in range(50):
            row = conn.execute("SELECT merged_into FROM leads WHERE id = ?", (lead_id,)).fetchone()
            if not row or row["merged_into"] is None:
                return lead_id
            lead_id = int(row["merged_into"])
        return lead_id

    def _merge(self, conn: sqlite3.Connection, into: int, other: int) -> None:
        """Move everything of lead ``other`` into the older lead ``into``."""
        for table in ("lead_contacts", "lead_senders", "lead_notes"):
            conn.execute(f"UPDATE {table} SET lead_id = ? WHERE lead_id = ?", (into, other))
        row = conn.execute("SELECT * FROM leads WHERE id = ?", (other,)).fetchone()
        conn.execute(
            "UPDATE leads SET last_activity_at = MAX(last_activity_at, ?),"
            " has_lead_card = MAX(has_lead_card, ?),"
            " assignee_id = COALESCE(assignee_id, ?),"
            " name = CASE WHEN name = '' THEN ? ELSE name END WHERE id = ?",
            (row["last_activity_at"], row["has_lead_card"], row["assignee_id"], row["name"], into),
        )
        conn.execute(
            "UPDATE leads SET merged_into = ?, updated_at = ? WHERE id = ?", (into, _now(), other)
        )
        conn.execute(
            "INSERT INTO lead_notes (lead_id, author, status, text, at) VALUES (?,?,?,?,?)",
            (into, "system", "", f"合并了线索 #{other}", _now()),
        )

    def _rescore(self, conn: sqlite3.Connection, lead_id: int, rules: LeadRules) -> None:
        lead = conn.execute("SELECT * FROM leads WHERE id = ?", (lead_id,)).fetchone()
        senders = [
            r["sender_id"]
            for r in conn.execute(
                "SELECT sender_id FROM lead_senders WHERE lead_id = ?", (lead_id,)
            )
        ]
        marks = ",".join("?" * len(senders))
        rows = conn.execute(
            f"SELECT intent, signals FROM lead_activity WHERE sender_id IN ({marks})", senders
        ).fetchall()
        intents = [r["intent"] for r in rows if r["intent"]]
        signals = [s for r in rows for s in r["signals"].split(",") if s]
        has_contact = bool(
            conn.execute("SELECT 1 FROM lead_contacts WHERE lead_id = ?", (lead_id,)).fetchone()
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
            "UPDATE leads SET category = ?, points = ?, score = ? WHERE id = ?",
            (rules.category(signals), points, rules.score(points), lead_id),
        )

    def refresh_scores(self) -> list[int]:
        """Re-score open leads (recency decays); the ids whose score changed."""
        rules = self.rules
        changed: list[int] = []
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, score FROM leads WHERE merged_into IS NULL"
                " AND status IN ('new', 'contacted')"
            ).fetchall()
            for row in rows:
                self._rescore(conn, row["id"], rules)
                score = conn.execute(
                    "SELECT score FROM leads WHERE id = ?", (row["id"],)
                ).fetchone()
                if score["score"] != row["score"]:
                    conn.execute(
                        "UPDATE leads SET updated_at = ? WHERE id = ?", (_now(), row["id"])
                    )
                    changed.append(row["id"])
        return changed

    # --- loading -----------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection, lead_id: int) -> Lead | None:
        row = conn.execute("SELECT * FROM leads WHERE id = ?", (lead_id,)).fetchone()
        if not row:
            return None
        contacts = [
            {"kind": c["kind"], "value": c["value"], "masked": mask_contact(c["kind"], c["value"])}
            for c in conn.execute(
                "SELECT kind, value FROM lead_contacts WHERE lead_id = ? ORDER BY id", (lead_id,)
            )
        ]
        senders = [
            s["sender_id"]
            for s in conn.execute(
                "SELECT sender_id FROM lead_senders WHERE lead_id = ? ORDER BY created_at, rowid",
                (lead_id,),
            )
        ]
        return Lead(
            id=row["id"],
            name=row["name"],
            category=row["category"],
            score=row["score"],
            points=row["points"],
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
        where = ["merged_into IS NULL"]
        params: list[Any] = []
        for column, value, allowed in (
            ("category", category, CATEGORIES),
            ("score", score, SCORES),
            ("status", status, STATUSES),
        ):
            if value:
                if value not in allowed:
                    raise ValueError(f"unknown {column}: {value}")
                where.append(f"{column} = ?")
                params.append(value)
        if assignee_id is not None:
            where.append("assignee_id = ?")
            params.append(assignee_id)
        if unassigned:
            where.append("assignee_id IS NULL")
        if date_from:
            where.append("substr(created_at, 1, 10) >= ?")
            params.append(_date(date_from))
        if date_to:
            where.append("substr(created_at, 1, 10) <= ?")
            params.append(_date(date_to))
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT id FROM leads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC"
                " LIMIT ?",
                (*params, limit),
            ).fetchall()
            return [lead for r in rows if (lead := self._load(conn, r["id"]))]

    def activity(self, lead_id: int) -> list[dict[str, str]]:
        """The customer messages of the lead's conversations, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT a.sender_id, a.intent, a.text, a.at FROM lead_activity a"
                " JOIN lead_senders s ON s.sender_id = a.sender_id WHERE s.lead_id = ?"
                " ORDER BY a.at, a.id",
                (self._resolve(conn, lead_id),),
            ).fetchall()
            return [dict(r) for r in rows]

    # --- agents' work ----------------------------------------------------------------
    def set_status(self, lead_id: int, status: str, author: str, note: str = "") -> Lead:
        if status not in STATUSES:
            raise ValueError(f"unknown status: {status}")
        with self._tx() as conn:
            lead_id = self._resolve(conn, lead_id)
            if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                raise KeyError(lead_id)
            conn.execute(
                "UPDATE leads SET status = ?, updated_at = ? WHERE id = ?",
                (status, _now(), lead_id),
            )
            conn.execute(
                "INSERT INTO lead_notes (lead_id, author, status, text, at) VALUES (?,?,?,?,?)",
                (lead_id, author, status, note, _now()),
            )
            lead = self._load(conn, lead_id)
        assert lead is not None
        return lead

    def add_note(self, lead_id: int, author: str, text: str) -> None:
        with self._tx() as conn:
            lead_id = self._resolve(conn, lead_id)
            if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                raise KeyError(lead_id)
            conn.execute(
                "INSERT INTO lead_notes (lead_id, author, status, text, at) VALUES (?,?,?,?,?)",
                (lead_id, author, "", text, _now()),
            )

    def notes(self, lead_id: int) -> list[Note]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM lead_notes WHERE lead_id = ? ORDER BY at, id",
                (self._resolve(conn, lead_id),),
            ).fetchall()
            return [Note(**dict(r)) for r in rows]

    def set_assignee(self, lead_id: int, agent_id: int | None, author: str) -> Lead:
        with self._tx() as conn:
            lead_id = self._resolve(conn, lead_id)
            if not conn.execute("SELECT 1 FROM leads WHERE id = ?", (lead_id,)).fetchone():
                raise KeyError(lead_id)
            conn.execute(
                "UPDATE leads SET assignee_id = ?, updated_at = ? WHERE id = ?",
                (agent_id, _now(), lead_id),
            )
            text = f"分配给客服 #{agent_id}" if agent_id is not None else "取消分配"
            conn.execute(
                "INSERT INTO lead_notes (lead_id, author, status, text, at) VALUES (?,?,?,?,?)",
                (lead_id, author, "", text, _now()),
            )
            lead = self._load(conn, lead_id)
        assert lead is not None
        return lead

    def open_counts(self) -> dict[int, int]:
        """Open (new / contacted) leads per assignee."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT assignee_id, COUNT(*) AS n FROM leads WHERE merged_into IS NULL"
                " AND assignee_id IS NOT NULL AND status IN ('new', 'contacted')"
                " GROUP BY assignee_id"
            ).fetchall()
            return {int(r["assignee_id"]): int(r["n"]) for r in rows}

    def kv_get(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM lead_kv WHERE key = ?", (key,)).fetchone()
            return row["value"] if row else None

    def kv_set(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO lead_kv (key, value) VALUES (?,?)", (key, value))

    # --- audit -------------------------------------------------------------------------
    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO lead_audit (at, actor, action, detail) VALUES (?,?,?,?)",
                (_now(), actor, action, json.dumps(detail, ensure_ascii=False, sort_keys=True)),
            )

    def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM lead_audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            return [{**dict(r), "detail": json.loads(r["detail"] or "{}")} for r in rows]


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
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> LeadStore:
    return LeadStore(path)
