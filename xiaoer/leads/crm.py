"""CRM webhook: every new or updated lead is POSTed to the merchant's URL.

Each change is queued in ``crm_outbox`` (the project database) first, then delivered; a failed
delivery (network error, timeout, non-2xx answer) is retried with exponential backoff
(``retry_base_seconds`` doubling up to ``retry_max_seconds``) and stays in the outbox
until the CRM accepts it: nothing is dropped, a restart loses nothing. Several senders
(workers on several machines) may run at once: a row is claimed by one of them with a
conditional UPDATE (its ``next_attempt_at`` moved past the request's timeout) before it is
posted, so a delivery is not posted twice by two senders; a sender that dies while posting
leaves the row due again when the claim runs out.

Request: ``POST <url>`` with the JSON body ``{"event": "lead.created" | "lead.updated",
"delivery_id": n, "sent_at": ..., "lead": {...}}`` (``Lead.to_json``) and headers
``X-Xiaoer-Event``, ``X-Xiaoer-Delivery`` (the outbox id, for de-duplication by the
receiver: a delivery can arrive twice when an answer is lost) and
``X-Xiaoer-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with the secret>``.
The secret is read from the environment variable named by ``secret_env``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, Text, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.leads.store import Lead

log = logging.getLogger(__name__)

crm_outbox = Table(
    "crm_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", Integer, nullable=False),
    Column("event", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Text, nullable=False),
    Column("delivered_at", Text),
    Column("last_error", Text, nullable=False, server_default=""),
    Index("crm_outbox_due", "delivered_at", "next_attempt_at"),
    sqlite_autoincrement=True,
)

# how long past the request's timeout a claimed row stays with its sender
CLAIM_MARGIN_SECONDS = 30.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiving CRM does (documented in docs/leads.md)."""
    return hmac.compare_digest(sign(secret, body), header or "")


@dataclass(frozen=True)
class CrmSettings:
    url: str = ""
    secret_env: str = "XIAOER_CRM_SECRET"
    timeout_seconds: float = 5.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0

    @classmethod
    def from_settings(cls, section: dict[str, Any] | None = None) -> CrmSettings:
        if section is None:
            section = get_settings().section("leads").get("crm") or {}
        base = cls()
        return cls(
            url=str(section.get("url") or ""),
            secret_env=str(section.get("secret_env") or base.secret_env),
            timeout_seconds=float(section.get("timeout_seconds", base.timeout_seconds)),
            retry_base_seconds=float(section.get("retry_base_seconds", base.retry_base_seconds)),
            retry_max_seconds=float(section.get("retry_max_seconds", base.retry_max_seconds)),
        )

    @property
    def secret(self) -> str:
        return os.environ.get(self.secret_env, "")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    lead_id: int
    event: str
    payload: str
    attempts: int
    next_attempt_at: str
    delivered_at: str | None
    last_error: str


def _iso(delta_seconds: float = 0.0) -> str:
    return (now_beijing() + timedelta(seconds=delta_seconds)).isoformat(timespec="milliseconds")


class CrmOutbox:
    def __init__(
        self, db: Database | str | Path | None = None, settings: CrmSettings | None = None
    ) -> None:
        self.db = database_for(db)
        self._settings = settings

    @property
    def settings(self) -> CrmSettings:
        return self._settings or CrmSettings.from_settings()

    def enqueue(self, lead: Lead, created: bool) -> int | None:
        """Queue the lead's current state; None when no CRM is configured."""
        if not self.settings.url:
            return None
        event = "lead.created" if created else "lead.updated"
        now = _iso()
        with self.db.begin() as conn:
            key = conn.execute(
                crm_outbox.insert().values(
                    lead_id=lead.id,
                    event=event,
                    payload=json.dumps(lead.to_json(), ensure_ascii=False),
                    created_at=now,
                    next_attempt_at=now,
                )
            ).inserted_primary_key[0]
        return int(key)

    def rows(self, pending_only: bool = False) -> list[OutboxRow]:
        query = select(crm_outbox).order_by(crm_outbox.c.id)
        if pending_only:
            query = query.where(crm_outbox.c.delivered_at.is_(None))
        with self.db.connect() as conn:
            return [
                OutboxRow(**{k: r[k] for k in OutboxRow.__dataclass_fields__})
                for r in conn.execute(query).mappings()
            ]

    def _claim(self, row: Mapping[str, Any], seconds: float) -> bool:
        """Take a due row for this sender: one conditional UPDATE (whoever moves its
        ``next_attempt_at`` first posts it)."""
        with self.db.begin() as conn:
            claimed = conn.execute(
                crm_outbox.update()
                .where(
                    crm_outbox.c.id == row["id"],
                    crm_outbox.c.delivered_at.is_(None),
                    crm_outbox.c.next_attempt_at == row["next_attempt_at"],
                )
                .values(next_attempt_at=_iso(seconds))
            )
            return bool(claimed.rowcount == 1)

    def deliver_due(self, limit: int = 50) -> int:
        """Try every row that is due, oldest first; the number delivered."""
        settings = self.settings
        if not settings.url:
            return 0
        with self.db.connect() as conn:
            due = (
                conn.execute(
                    select(crm_outbox)
                    .where(
                        crm_outbox.c.delivered_at.is_(None),
                        crm_outbox.c.next_attempt_at <= _iso(),
                    )
                    .order_by(crm_outbox.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        delivered = 0
        for row in due:
            if not self._claim(row, settings.timeout_seconds + CLAIM_MARGIN_SECONDS):
                continue  # another sender has it
            error = self._post(settings, row)
            mine = crm_outbox.update().where(
                crm_outbox.c.id == row["id"], crm_outbox.c.delivered_at.is_(None)
            )
            with self.db.begin() as conn:
                if error is None:
                    conn.execute(
                        mine.values(
                            delivered_at=_iso(),
                            attempts=crm_outbox.c.attempts + 1,
                            last_error="",
                        )
                    )
                    delivered += 1
                else:
                    attempts = row["attempts"] + 1
                    wait = min(
                        settings.retry_base_seconds * 2 ** (attempts - 1),
                        settings.retry_max_seconds,
                    )
                    conn.execute(
                        mine.values(
                            attempts=attempts, next_attempt_at=_iso(wait), last_error=error[:500]
                        )
                    )
                    log.warning(
                        "CRM delivery %s failed (attempt %s, next in %.0fs): %s",
                        row["id"], attempts, wait, error,
                    )  # fmt: skip
        return delivered

    @staticmethod
    def _post(settings: CrmSettings, row: Mapping[str, Any]) -> str | None:
        secret = settings.secret
        if not secret:
            return f"签名密钥未配置（环境变量 {settings.secret_env}）"
        body = json.dumps(
            {
                "event": row["event"],
                "delivery_id": row["id"],
                "sent_at": _iso(),
                "lead": json.loads(row["payload"]),
            },
            ensure_ascii=False,
        ).encode("utf-8")
        request = urllib.request.Request(
            settings.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Xiaoer-Event": row["event"],
                "X-Xiaoer-Delivery": str(row["id"]),
                "X-Xiaoer-Signature": sign(secret, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"


def get_crm_outbox() -> CrmOutbox:
    return CrmOutbox()
