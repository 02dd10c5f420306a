"""Who may read and change which order: per-channel trust and the verification record.

Two kinds of channel (``security.channels`` in xiaoer.yml):

* **buyer known** (Douyin: the platform tells us the open id, put into the message
  metadata ``buyer_id`` by the channel itself, never by the client). Only that buyer's
  orders exist for the conversation; another buyer's order id is answered exactly like
  an unknown one.
* **buyer unknown** (REST, a web widget). Anyone may read an order's status, courier,
  tracking number and latest trace by its id (like a courier lookup), never the
  recipient, phone, address or amounts. A change (cancel, address, after-sales) first
  needs the last 4 digits of the recipient's phone; distinct order ids looked up per
  conversation are capped per hour against enumeration.

Why a server-side record (and not a slot) proves the verification: everything in a
tracker — slots such as ``cancel_confirmed`` or ``verify_phone_tail``, events, metadata —
is what the caller of the action server sends, so a final action that trusted it could be
driven by a forged request. Only the form's validation action, after comparing the
customer's answer with the recipient phone from the shop backend, writes a row
(conversation id, order id, expiry) into the ``order_checks`` table of the project's
SQLite store; the final actions (cancel, address change, after-sales) look that row up
themselves. A forged tracker can name any order and any slot value but cannot create the
row without knowing the phone digits, and wrong guesses are counted in the same table
(per conversation and per order), so guessing is capped even across made-up senders.
The same table records order-id lookups for the rate limit.
"""

from __future__ import annotations

import hmac
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, Table, Text, delete, func, select
from sqlalchemy.engine import Connection

from xiaoer.core.config import get_settings
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.text.parsing import digits_from_chinese

VERIFY_PHONE_TAIL = "phone_tail"
VERIFY_OFF = "off"
DEFAULT_CHANNEL = "default"

order_checks = Table(
    "order_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # lookup | verified | verify_failed
    Column("at", Float, nullable=False),
    Index("order_checks_by_sender", "sender_id", "kind", "at"),
    Index("order_checks_by_order", "order_id", "kind", "at"),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class ChannelSecurity:
    """What one channel knows about its customers (``security.channels.<name>``)."""

    buyer_known: bool = False
    verify_changes: str = VERIFY_PHONE_TAIL
    max_order_lookups_per_hour: int = 5  # 0: no limit

    @classmethod
    def from_section(cls, section: dict[str, Any], base: ChannelSecurity) -> ChannelSecurity:
        verify = str(section.get("verify_changes", base.verify_changes))
        if verify not in (VERIFY_PHONE_TAIL, VERIFY_OFF):
            raise ValueError(f"security: verify_changes must be phone_tail or off, not {verify!r}")
        return cls(
            buyer_known=bool(section.get("buyer_known", base.buyer_known)),
            verify_changes=verify,
            max_order_lookups_per_hour=int(
                section.get("max_order_lookups_per_hour", base.max_order_lookups_per_hour) or 0
            ),
        )


@dataclass(frozen=True)
class SecuritySettings:
    channels: dict[str, ChannelSecurity]
    verification_minutes: float = 30.0  # a verification holds this long in a conversation
    max_verify_failures_per_order: int = 6  # wrong tails per order per hour, all senders

    def channel(self, name: str | None) -> ChannelSecurity:
        """The channel's settings; unlisted channels (and none) get ``default``."""
        return self.channels.get(name or DEFAULT_CHANNEL) or self.channels[DEFAULT_CHANNEL]


def security_settings() -> SecuritySettings:
    """``security`` of xiaoer.yml; a channel not listed there gets the safe ``default``."""
    section = get_settings().section("security")
    raw = section.get("channels") or {}
    if not isinstance(raw, dict):
        raise ValueError("security.channels must be a mapping of channel name to settings")
    default = ChannelSecurity.from_section(raw.get(DEFAULT_CHANNEL) or {}, ChannelSecurity())
    channels = {DEFAULT_CHANNEL: default}
    for name, values in raw.items():
        if name != DEFAULT_CHANNEL:
            channels[str(name)] = ChannelSecurity.from_section(values or {}, default)
    return SecuritySettings(
        channels=channels,
        verification_minutes=float(section.get("verification_minutes") or 30),
        max_verify_failures_per_order=int(section.get("max_verify_failures_per_order") or 6),
    )


def phone_tail_matches(phone: str | None, answer: str | None) -> bool:
    """Whether ``answer`` holds exactly the last 4 digits of ``phone``: written as digits
    (full-width too) or, when it holds no 4 such digits, in Chinese numerals (零零零零,
    幺三八八)."""
    text = unicodedata.normalize("NFKC", str(answer or ""))
    digits = "".join(c for c in text if c.isascii() and c.isdigit())
    if len(digits) != 4:
        digits = "".join(c for c in digits_from_chinese(text) if c.isascii() and c.isdigit())
    phone_digits = "".join(c for c in str(phone or "") if c.isascii() and c.isdigit())
    if len(digits) != 4 or len(phone_digits) < 4:
        return False
    return hmac.compare_digest(digits, phone_digits[-4:])


class OrderCheckStore:
    """Order-id lookups, verifications and failed verifications per conversation."""

    HOUR = 3600.0

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    @staticmethod
    def _add(conn: Connection, sender_id: str, order_id: str, kind: str) -> None:
        now = time.time()
        conn.execute(
            order_checks.insert().values(sender_id=sender_id, order_id=order_id, kind=kind, at=now)
        )
        # rows older than a day are never consulted again
        conn.execute(
            delete(order_checks).where(order_checks.c.at < now - 24 * OrderCheckStore.HOUR)
        )

    # --- lookups (rate limit) ---------------------------------------------------------
    def lookup_allowed(self, sender_id: str, order_id: str, per_hour: int) -> bool:
        """Record a lookup of ``order_id``; False when it would be one distinct id too many."""
        if per_hour <= 0:
            return True
        t = order_checks.c
        with self.db.begin() as conn:
            seen = set(
                conn.execute(
                    select(t.order_id)
                    .distinct()
                    .where(
                        t.sender_id == sender_id, t.kind == "lookup", t.at > time.time() - self.HOUR
                    )
                ).scalars()
            )
            if order_id not in seen and len(seen) >= per_hour:
                return False
            self._add(conn, sender_id, order_id, "lookup")
            return True

    # --- verification -------------------------------------------------------------------
    def record_verified(self, sender_id: str, order_id: str) -> None:
        with self.db.begin() as conn:
            self._add(conn, sender_id, order_id, "verified")

    def record_failure(self, sender_id: str, order_id: str) -> None:
        with self.db.begin() as conn:
            self._add(conn, sender_id, order_id, "verify_failed")

    def is_verified(self, sender_id: str, order_id: str, minutes: float) -> bool:
        t = order_checks.c
        query = (
            select(t.id)
            .where(
                t.sender_id == sender_id,
                t.order_id == order_id,
                t.kind == "verified",
                t.at > time.time() - minutes * 60,
            )
            .limit(1)
        )
        with self.db.connect() as conn:
            return conn.execute(query).first() is not None

    def clear(self) -> int:
        """Forget every lookup and verification (``xiaoer seed --reset``); how many rows."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(order_checks)).rowcount)

    def failures(self, order_id: str, sender_id: str | None = None) -> int:
        """Wrong answers in the last hour for the order (by this conversation, or by all)."""
        t = order_checks.c
        query = (
            select(func.count())
            .select_from(order_checks)
            .where(
                t.order_id == order_id, t.kind == "verify_failed", t.at > time.time() - self.HOUR
            )
        )
        if sender_id is not None:
            query = query.where(t.sender_id == sender_id)
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def get_order_check_store() -> OrderCheckStore:
    """The order checks of the project database."""
    return OrderCheckStore()
