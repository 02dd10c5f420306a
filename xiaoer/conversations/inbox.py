"""Inbox of messages for REST clients that are not the answer to a request.

An agent's reply, the bot's "back to the bot" note, a re-announcement or a proactive
notification reaches a conversation through Rasa's API (``output_channel=latest``); for a
conversation whose latest channel is REST there is no open request to answer, so the REST
channel's output channel stores the message here and the client polls
``GET /webhooks/rest/inbox?sender=<id>&after=<last id>`` with the conversation's inbox
token (``X-Xiaoer-Inbox-Token``), which the first webhook reply of the conversation
handed out (only its SHA-256 is kept). Rows live in ``rest_inbox`` of
``xiaoer.db``; nothing is deleted on reading, so a client that missed a poll loses nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS rest_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient_id TEXT NOT NULL,
  message_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rest_inbox_by_recipient ON rest_inbox (recipient_id, id);
CREATE TABLE IF NOT EXISTS rest_inbox_tokens (
  recipient_id TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL
);
"""


class RestInbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.executescript(SCHEMA)

    def add(self, recipient_id: str, message: dict[str, Any]) -> int:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            cur = conn.execute(
                "INSERT INTO rest_inbox (recipient_id, message_json, created_at) VALUES (?,?,?)",
                (
                    recipient_id,
                    json.dumps(message, ensure_ascii=False, default=str),
                    now_beijing().isoformat(timespec="seconds"),
                ),
            )
            return int(cur.lastrowid or 0)

    def since(self, recipient_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Messages for ``recipient_id`` with an id above ``after``, oldest first."""
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            rows = conn.execute(
                "SELECT id, message_json, created_at FROM rest_inbox"
                " WHERE recipient_id = ? AND id > ? ORDER BY id LIMIT ?",
                (recipient_id, after, limit),
            ).fetchall()
        return [{"id": i, "created_at": c, **json.loads(m)} for i, m, c in rows]

    # --- per-conversation read tokens ---------------------------------------------------
    def issue_token(self, recipient_id: str) -> str | None:
        """A new inbox token for ``recipient_id``, or None when one was already handed out
        (only the first reply of a conversation carries it)."""
        token = secrets.token_urlsafe(24)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO rest_inbox_tokens (recipient_id, token_sha256, created_at)"
                " VALUES (?,?,?)",
                (recipient_id, digest, now_beijing().isoformat(timespec="seconds")),
            )
            return token if cur.rowcount == 1 else None

    def token_valid(self, recipient_id: str, token: str | None) -> bool:
        if not token:
            return False
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            row = conn.execute(
                "SELECT token_sha256 FROM rest_inbox_tokens WHERE recipient_id = ?",
                (recipient_id,),
            ).fetchone()
        if row is None:
            return False
        given = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(given, str(row[0]))

    def count(self) -> int:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rest_inbox").fetchone()[0])


def get_rest_inbox() -> RestInbox:
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> RestInbox:
    return RestInbox(path)
