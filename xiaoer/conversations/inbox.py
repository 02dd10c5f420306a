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
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, func, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata

rest_inbox = Table(
    "rest_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient_id", Text, nullable=False),
    Column("message_json", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("rest_inbox_by_recipient", "recipient_id", "id"),
    sqlite_autoincrement=True,
)
rest_inbox_tokens = Table(
    "rest_inbox_tokens",
    metadata,
    Column("recipient_id", Text, primary_key=True),
    Column("token_sha256", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)


class RestInbox:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def add(self, recipient_id: str, message: dict[str, Any]) -> int:
        with self.db.begin() as conn:
            done = conn.execute(
                rest_inbox.insert().values(
                    recipient_id=recipient_id,
                    message_json=json.dumps(message, ensure_ascii=False, default=str),
                    created_at=now_beijing().isoformat(timespec="seconds"),
                )
            )
            return int(done.inserted_primary_key[0])

    def since(self, recipient_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Messages for ``recipient_id`` with an id above ``after``, oldest first."""
        query = (
            select(rest_inbox.c.id, rest_inbox.c.message_json, rest_inbox.c.created_at)
            .where(rest_inbox.c.recipient_id == recipient_id, rest_inbox.c.id > after)
            .order_by(rest_inbox.c.id)
            .limit(limit)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [{"id": i, "created_at": c, **json.loads(m)} for i, m, c in rows]

    # --- per-conversation read tokens ---------------------------------------------------
    def issue_token(self, recipient_id: str) -> str | None:
        """A new inbox token for ``recipient_id``, or None when one was already handed out
        (only the first reply of a conversation carries it)."""
        token = secrets.token_urlsafe(24)
        digest = hashlib.sha256(token.encode()).hexdigest()
        issued = self.db.insert_ignore(
            rest_inbox_tokens,
            recipient_id=recipient_id,
            token_sha256=digest,
            created_at=now_beijing().isoformat(timespec="seconds"),
        )
        return token if issued else None

    def token_valid(self, recipient_id: str, token: str | None) -> bool:
        if not token:
            return False
        with self.db.connect() as conn:
            stored = conn.execute(
                select(rest_inbox_tokens.c.token_sha256).where(
                    rest_inbox_tokens.c.recipient_id == recipient_id
                )
            ).scalar()
        if stored is None:
            return False
        given = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(given, str(stored))

    def count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(rest_inbox)).scalar() or 0)


def get_rest_inbox() -> RestInbox:
    return RestInbox()
