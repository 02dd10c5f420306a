"""SQLite state of the Douyin channel (``douyin.db`` in the data folder, WAL mode).

* ``douyin_events``: every accepted webhook event, keyed by what identifies the event
  (``server_message_id``, else ``log_id``, else a hash of the content), with its
  processing state: a duplicate delivery — also after a restart — is recognised here,
  and an event whose processing was cut short is processed when the server starts;
* ``douyin_deliveries``: the ``Msg-Id`` of every delivery (a retry of one delivery);
* ``douyin_conversations``: per customer: the message to answer and its conversation id,
  the numbered options last offered, a pause after a human answered from the app;
* ``douyin_outbox``: replies the send API did not take (after retries), resent later
  in order, visible to agents (console page 待重发 ``/outbox``, ``xiaoer douyin-outbox``), never dropped;
* ``douyin_sent``: messages the bot sent, to tell the platform's ``im_send_msg`` echo of
  them apart from a human's message;
* ``douyin_tokens``: the access / refresh token after a refresh (never logged).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.douyin.protocol import Envelope, as_object

MAX_ATTEMPTS = 5
CLAIM_LEASE_SECONDS = 120.0
ECHO_WINDOW_SECONDS = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS douyin_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_key TEXT NOT NULL UNIQUE,
  event TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  create_time INTEGER NOT NULL DEFAULT 0,
  envelope TEXT NOT NULL,
  received_at REAL NOT NULL,
  claimed_at REAL,
  processed_at REAL,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
CREATE INDEX IF NOT EXISTS douyin_events_pending ON douyin_events (processed_at, sender_id);
CREATE TABLE IF NOT EXISTS douyin_deliveries (
  msg_id TEXT PRIMARY KEY,
  event_key TEXT NOT NULL,
  received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS douyin_conversations (
  sender_id TEXT PRIMARY KEY,
  conversation_short_id TEXT,
  last_msg_id TEXT,
  last_msg_at REAL,
  nickname TEXT,
  options TEXT,
  paused_until REAL,
  last_customer_at REAL,
  last_greeted_at REAL
);
CREATE TABLE IF NOT EXISTS douyin_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  body TEXT NOT NULL,
  preview TEXT NOT NULL,
  created_at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL,
  last_error TEXT,
  sent_at REAL
);
CREATE INDEX IF NOT EXISTS douyin_outbox_pending ON douyin_outbox (sent_at, sender_id, id);
CREATE TABLE IF NOT EXISTS douyin_sent (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  msg_id TEXT,
  text_hash TEXT,
  sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS douyin_sent_by_sender ON douyin_sent (sender_id, sent_at);
CREATE TABLE IF NOT EXISTS douyin_tokens (
  client_key TEXT PRIMARY KEY,
  access_token TEXT NOT NULL,
  refresh_token TEXT,
  expires_at REAL,
  refresh_expires_at REAL,
  updated_at REAL NOT NULL
);
"""


def text_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event_key: str
    event: str
    sender_id: str
    create_time: int
    envelope: Envelope
    attempts: int


@dataclass(frozen=True)
class Conversation:
    sender_id: str
    conversation_short_id: str = ""
    last_msg_id: str = ""
    last_msg_at: float = 0.0
    nickname: str = ""
    options: tuple[str, ...] = ()
    paused_until: float = 0.0
    last_customer_at: float = 0.0
    last_greeted_at: float = 0.0


@dataclass(frozen=True)
class OutboxItem:
    id: int
    sender_id: str
    body: dict[str, Any]
    preview: str  # what the customer would read (masked when shown)
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None
    sent_at: float | None


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    refresh_token: str
    expires_at: float
    refresh_expires_at: float


class DouyinStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
            conn.row_factory = sqlite3.Row
            yield conn

    # --- events -------------------------------------------------------------------------
    def record(
        self, envelope: Envelope, sender_id: str, create_time: int, msg_id: str = ""
    ) -> int | None:
        """Store an accepted event; None when this delivery or this event was seen."""
        now = time.time()
        key = envelope.event_key
        with self._conn() as conn:
            if msg_id:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO douyin_deliveries (msg_id, event_key, received_at) "
                    "VALUES (?,?,?)",
                    (msg_id, key, now),
                )
                if cur.rowcount == 0:
                    return None
            cur = conn.execute(
                "INSERT OR IGNORE INTO douyin_events (event_key, event, sender_id, create_time, "
                "envelope, received_at) VALUES (?,?,?,?,?,?)",
                (
                    key,
                    envelope.event,
                    sender_id,
                    create_time,
                    json.dumps(envelope.__dict__, ensure_ascii=False),
                    now,
                ),
            )
            return cur.lastrowid if cur.rowcount == 1 else None

    @staticmethod
    def _event(row: sqlite3.Row) -> StoredEvent:
        raw = as_object(row["envelope"])
        return StoredEvent(
            id=row["id"],
            event_key=row["event_key"],
            event=row["event"],
            sender_id=row["sender_id"],
            create_time=row["create_time"],
            envelope=Envelope(**raw),
            attempts=row["attempts"],
        )

    def pending_for(self, sender_id: str) -> list[StoredEvent]:
        """Unprocessed events of one customer, in the order the customer sent them."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT * FROM douyin_events WHERE sender_id = ? AND processed_at IS NULL "
                "AND attempts < ? ORDER BY create_time, id",
                (sender_id, MAX_ATTEMPTS),
            ).fetchall()
        return [self._event(r) for r in rows]

    def senders_with_pending(self, older_than: float = 0.0) -> list[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT sender_id FROM douyin_events WHERE processed_at IS NULL "
                "AND attempts < ? AND received_at <= ?",
                (MAX_ATTEMPTS, time.time() - older_than),
            ).fetchall()
        return [r[0] for r in rows]

    def claim(self, event_id: int) -> bool:
        """Take an event for processing (False: done, given up, or taken elsewhere)."""
        now = time.time()
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE douyin_events SET claimed_at = ? WHERE id = ? AND processed_at IS NULL "
                "AND attempts < ? AND (claimed_at IS NULL OR claimed_at < ?)",
                (now, event_id, MAX_ATTEMPTS, now - CLAIM_LEASE_SECONDS),
            )
            return cur.rowcount == 1

    def done(self, event_id: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE douyin_events SET processed_at = ?, error = NULL WHERE id = ?",
                (time.time(), event_id),
            )

    def failed(self, event_id: int, error: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE douyin_events SET claimed_at = NULL, attempts = attempts + 1, error = ? "
                "WHERE id = ?",
                (error, event_id),
            )

    def event_state(self, event_key: str) -> dict[str, Any] | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM douyin_events WHERE event_key = ?", (event_key,)
            ).fetchone()
        return dict(row) if row else None

    def count_events(self) -> int:
        with self._conn() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM douyin_events").fetchone()[0])

    # --- conversations ------------------------------------------------------------------
    def conversation(self, sender_id: str) -> Conversation:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM douyin_conversations WHERE sender_id = ?", (sender_id,)
            ).fetchone()
        if row is None:
            return Conversation(sender_id)
        return Conversation(
            sender_id=sender_id,
            conversation_short_id=row["conversation_short_id"] or "",
            last_msg_id=row["last_msg_id"] or "",
            last_msg_at=row["last_msg_at"] or 0.0,
            nickname=row["nickname"] or "",
            options=tuple(json.loads(row["options"] or "[]")),
            paused_until=row["paused_until"] or 0.0,
            last_customer_at=row["last_customer_at"] or 0.0,
            last_greeted_at=row["last_greeted_at"] or 0.0,
        )

    def update_conversation(self, sender_id: str, **fields: Any) -> None:
        """Set some columns (``options`` as a list); the row is created when missing."""
        if "options" in fields:
            fields["options"] = json.dumps(list(fields["options"] or []), ensure_ascii=False)
        allowed = set(Conversation.__dataclass_fields__) - {"sender_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown conversation fields: {sorted(unknown)}")
        with self._conn() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO douyin_conversations (sender_id) VALUES (?)", (sender_id,)
            )
            if fields:
                assignments = ", ".join(f"{name} = ?" for name in fields)
                conn.execute(
                    f"UPDATE douyin_conversations SET {assignments} WHERE sender_id = ?",  # noqa: S608
                    (*fields.values(), sender_id),
                )

    # --- outbox -------------------------------------------------------------------------
    def add_outbox(
        self, sender_id: str, body: dict[str, Any], preview: str, error: str, retry_at: float
    ) -> int:
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO douyin_outbox (sender_id, body, preview, created_at, attempts, "
                "next_attempt_at, last_error) VALUES (?,?,?,?,?,?,?)",
                (
                    sender_id,
                    json.dumps(body, ensure_ascii=False),
                    preview,
                    time.time(),
                    1 if error else 0,
                    retry_at,
                    error or None,
                ),
            )
            return int(cur.lastrowid or 0)

    @staticmethod
    def _outbox(row: sqlite3.Row) -> OutboxItem:
        return OutboxItem(
            id=row["id"],
            sender_id=row["sender_id"],
            body=json.loads(row["body"]),
            preview=row["preview"],
            created_at=row["created_at"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            sent_at=row["sent_at"],
        )

    def outbox_pending(self, sender_id: str | None = None, limit: int = 500) -> list[OutboxItem]:
        """Unsent replies, oldest first (of one customer, or of everyone)."""
        query = "SELECT * FROM douyin_outbox WHERE sent_at IS NULL"
        args: tuple[Any, ...] = ()
        if sender_id is not None:
            query += " AND sender_id = ?"
            args = (sender_id,)
        with self._conn() as conn:
            rows = conn.execute(query + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [self._outbox(r) for r in rows]

    def outbox_senders_due(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT sender_id, MIN(id) AS first FROM douyin_outbox WHERE sent_at IS NULL "
                "GROUP BY sender_id HAVING MIN(next_attempt_at) <= ? ORDER BY first",
                (now,),
            ).fetchall()
        return [r[0] for r in rows]

    def has_outbox(self, sender_id: str) -> bool:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT 1 FROM douyin_outbox WHERE sender_id = ? AND sent_at IS NULL LIMIT 1",
                (sender_id,),
            ).fetchone()
        return row is not None

    def outbox_sent(self, item_id: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE douyin_outbox SET sent_at = ?, last_error = NULL WHERE id = ?",
                (time.time(), item_id),
            )

    def outbox_failed(self, item_id: int, error: str, retry_at: float) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE douyin_outbox SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE id = ?",
                (error, retry_at, item_id),
            )

    # --- echoes of the bot's own messages -----------------------------------------------
    def remember_sent(self, sender_id: str, msg_id: str, text: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO douyin_sent (sender_id, msg_id, text_hash, sent_at) VALUES (?,?,?,?)",
                (sender_id, msg_id or None, text_hash(text) if text else None, time.time()),
            )
            conn.execute("DELETE FROM douyin_sent WHERE sent_at < ?", (time.time() - 24 * 3600,))

    def is_own_echo(self, sender_id: str, msg_id: str, text: str) -> bool:
        """True when ``im_send_msg`` reports a message the bot sent itself."""
        with self._conn() as conn:
            if msg_id:
                row = conn.execute(
                    "SELECT 1 FROM douyin_sent WHERE msg_id = ? LIMIT 1", (msg_id,)
                ).fetchone()
                if row:
                    return True
            if not text:
                return False
            row = conn.execute(
                "SELECT 1 FROM douyin_sent WHERE sender_id = ? AND text_hash = ? "
                "AND sent_at >= ? LIMIT 1",
                (sender_id, text_hash(text), time.time() - ECHO_WINDOW_SECONDS),
            ).fetchone()
            return row is not None

    # --- tokens -------------------------------------------------------------------------
    def token(self, client_key: str) -> StoredToken | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM douyin_tokens WHERE client_key = ?", (client_key,)
            ).fetchone()
        if row is None:
            return None
        return StoredToken(
            row["access_token"],
            row["refresh_token"] or "",
            row["expires_at"] or 0.0,
            row["refresh_expires_at"] or 0.0,
        )

    def save_token(self, client_key: str, token: StoredToken) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO douyin_tokens (client_key, access_token, refresh_token, "
                "expires_at, refresh_expires_at, updated_at) VALUES (?,?,?,?,?,?)",
                (
                    client_key,
                    token.access_token,
                    token.refresh_token,
                    token.expires_at,
                    token.refresh_expires_at,
                    time.time(),
                ),
            )


def get_douyin_store() -> DouyinStore:
    """The store of the configured data folder."""
    from xiaoer.core.config import get_settings

    return _store_at(get_settings().data_dir / "douyin.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> DouyinStore:
    return DouyinStore(path)
