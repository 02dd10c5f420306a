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
import time
import unicodedata
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Table, Text, delete, select

from xiaoer.core.db import Database, database_for, metadata

offered_buttons = Table(
    "offered_buttons",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("buttons_json", Text, nullable=False),
    Column("offered_at", Float, nullable=False),
)
# buttons older than this are not "the last message's" any more
MAX_AGE_SECONDS = 2 * 3600
_IGNORED = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _IGNORED.sub("", unicodedata.normalize("NFKC", text or "")).lower()


class ButtonMemory:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def remember(self, sender_id: str, messages: list[dict[str, Any]]) -> None:
        """Keep the buttons of the last message of this reply (none: forget)."""
        if not messages:
            return  # nothing said (e.g. paused for an agent): the offer still stands
        buttons = [
            {"title": str(b.get("title") or ""), "payload": str(b.get("payload") or "")}
            for b in messages[-1].get("buttons") or []
            if b.get("title") and b.get("payload")
        ]
        with self.db.begin() as conn:
            if not buttons:
                conn.execute(
                    delete(offered_buttons).where(offered_buttons.c.sender_id == sender_id)
                )
                return
            self.db.upsert(
                conn,
                offered_buttons,
                {
                    "sender_id": sender_id,
                    "buttons_json": json.dumps(buttons, ensure_ascii=False),
                    "offered_at": time.time(),
                },
                key=["sender_id"],
                update=["buttons_json", "offered_at"],
            )

    def resolve(self, sender_id: str, text: str) -> str:
        """The payload of the button whose title is ``text``, else ``text`` unchanged."""
        typed = normalise(text)
        if not typed or text.startswith("/"):
            return text
        with self.db.connect() as conn:
            row = conn.execute(
                select(offered_buttons.c.buttons_json, offered_buttons.c.offered_at).where(
                    offered_buttons.c.sender_id == sender_id
                )
            ).first()
        if row is None or time.time() - float(row[1]) > MAX_AGE_SECONDS:
            return text
        for button in json.loads(row[0]):
            if normalise(button["title"]) == typed:
                return str(button["payload"])
        return text


def get_button_memory() -> ButtonMemory:
    return ButtonMemory()
