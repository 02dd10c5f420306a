"""Inbox of messages for REST clients that are not the answer to a request.

An agent's reply, the bot's "back to the bot" note, a re-announcement or a proactive
notification reaches a conversation through Rasa's API (``output_channel=latest``); for a
conversation whose latest channel is REST there is no open request to answer, so the REST
channel's output channel stores the message here and the client polls
``GET /webhooks/rest/inbox?sender=<id>&after=<last id>``. Rows live in ``rest_inbox`` of
``xiaoer.db``; nothing is deleted on reading, so a client that missed a poll loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.config import get_settings
from xiaoer.shop.models import now_beijing

SCHEMA = """
CREATE TABLE IF NOT EXISTS rest_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient_id TEXT NOT NULL,
  message_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rest_inbox_by_recipient ON rest_inbox (recipient_id, id);
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


def get_rest_inbox() -> RestInbox:
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> RestInbox:
    return RestInbox(path)
