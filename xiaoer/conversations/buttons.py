"""Typed button labels: a customer who types "确认取消" instead of tapping the button
means the button (issue 12: it was read as "are you a robot").

The channel remembers the buttons of its latest reply to each conversation (``remember``)
and, for the next message, ``resolve`` turns a text equal to one of their titles (ignoring
spaces, punctuation and width) into the button's payload. Only the latest reply counts: a
reply without buttons forgets the earlier ones.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.core.config import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS offered_buttons (
  sender_id TEXT PRIMARY KEY,
  buttons_json TEXT NOT NULL,
  offered_at REAL NOT NULL
);
"""
# buttons older than this are not "the last message's" any more
MAX_AGE_SECONDS = 2 * 3600
_IGNORED = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _IGNORED.sub("", unicodedata.normalize("NFKC", text or "")).lower()


class ButtonMemory:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(SCHEMA)

    def remember(self, sender_id: str, messages: list[dict[str, Any]]) -> None:
        """Keep the buttons of the last message of this reply (none: forget)."""
        if not messages:
            return  # nothing said (e.g. paused for an agent): the offer still stands
        buttons = [
            {"title": str(b.get("title") or ""), "payload": str(b.get("payload") or "")}
            for b in messages[-1].get("buttons") or []
            if b.get("title") and b.get("payload")
        ]
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            if not buttons:
                conn.execute("DELETE FROM offered_buttons WHERE sender_id = ?", (sender_id,))
                return
            conn.execute(
                "INSERT INTO offered_buttons (sender_id, buttons_json, offered_at) VALUES (?,?,?)"
                " ON CONFLICT(sender_id) DO UPDATE SET buttons_json = excluded.buttons_json,"
                " offered_at = excluded.offered_at",
                (sender_id, json.dumps(buttons, ensure_ascii=False), time.time()),
            )

    def resolve(self, sender_id: str, text: str) -> str:
        """The payload of the button whose title is ``text``, else ``text`` unchanged."""
        typed = normalise(text)
        if not typed or text.startswith("/"):
            return text
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            row = conn.execute(
                "SELECT buttons_json, offered_at FROM offered_buttons WHERE sender_id = ?",
                (sender_id,),
            ).fetchone()
        if row is None or time.time() - float(row[1]) > MAX_AGE_SECONDS:
            return text
        for button in json.loads(row[0]):
            if normalise(button["title"]) == typed:
                return str(button["payload"])
        return text


def get_button_memory() -> ButtonMemory:
    return _memory_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _memory_at(path: Path) -> ButtonMemory:
    return ButtonMemory(path)
