"""CRM webhook: every new or updated lead is POSTed to the merchant's URL.

Each change is queued in ``crm_outbox`` (``xiaoer.db``) first, then delivered; a failed
delivery (network error, timeout, non-2xx answer) is retried with exponential backoff
(``retry_base_seconds`` doubling up to ``retry_max_seconds``) and stays in the outbox
until the CRM accepts it: nothing is dropped, a restart loses nothing.

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
import sqlite3
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings
from xiaoer.leads.store import Lead

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  delivered_at TEXT,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS crm_outbox_due ON crm_outbox (delivered_at, next_attempt_at);
"""


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
    def __init__(self, path: Path, settings: CrmSettings | None = None) -> None:
        self.path = Path(path)
        self._settings = settings
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
            conn.executescript(SCHEMA)

    @property
    def settings(self) -> CrmSettings:
        return self._settings or CrmSettings.from_settings()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def enqueue(self, lead: Lead, created: bool) -> int | None:
        """Queue the lead's current state; None when no CRM is configured."""
        if not self.settings.url:
            return None
        event = "lead.created" if created else "lead.updated"
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "INSERT INTO crm_outbox (lead_id, event, payload, created_at, next_attempt_at)"
                " VALUES (?,?,?,?,?)",
                (lead.id, event, json.dumps(lead.to_json(), ensure_ascii=False), _iso(), _iso()),
            )
            return int(cur.lastrowid or 0)

    def rows(self, pending_only: bool = False) -> list[OutboxRow]:
        where = "WHERE delivered_at IS NULL" if pending_only else ""
        with closing(self._connect()) as conn:
            return [
                OutboxRow(**{k: r[k] for k in OutboxRow.__dataclass_fields__})
                for r in conn.execute(f"SELECT * FROM crm_outbox {where} ORDER BY id")
            ]

    def deliver_due(self, limit: int = 50) -> int:
        """Try every row that is due, oldest first; the number delivered."""
        settings = self.settings
        if not settings.url:
            return 0
        with closing(self._connect()) as conn:
            due = conn.execute(
                "SELECT * FROM crm_outbox WHERE delivered_at IS NULL AND next_attempt_at <= ?"
                " ORDER BY id LIMIT ?",
                (_iso(), limit),
            ).fetchall()
        delivered = 0
        for row in due:
            error = self._post(settings, row)
            with closing(self._connect()) as conn, conn:
                if error is None:
                    conn.execute(
                        "UPDATE crm_outbox SET delivered_at = ?, attempts = attempts + 1,"
                        " last_error = '' WHERE id = ?",
                        (_iso(), row["id"]),
                    )
                    delivered += 1
                else:
                    attempts = row["attempts"] + 1
                    wait = min(
                        settings.retry_base_seconds * 2 ** (attempts - 1),
                        settings.retry_max_seconds,
                    )
                    conn.execute(
                        "UPDATE crm_outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                        " WHERE id = ?",
                        (attempts, _iso(wait), error[:500], row["id"]),
                    )
                    log.warning(
                        "CRM delivery %s failed (attempt %s, next in %.0fs): %s",
                        row["id"], attempts, wait, error,
                    )  # fmt: skip
        return delivered

    @staticmethod
    def _post(settings: CrmSettings, row: sqlite3.Row) -> str | None:
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
    return CrmOutbox(get_settings().data_dir / "xiaoer.db")
