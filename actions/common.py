"""Helpers shared by the actions: the backend, shop facts, who the buyer is."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker

from xiaoer.core.senders import is_sandbox
from xiaoer.shop.access import ChannelSecurity, security_settings
from xiaoer.shop.backend import ReadOnlyBackend, ShopBackend
from xiaoer.shop.factory import get_backend

logger = logging.getLogger("xiaoer.actions")


def backend(tracker: Tracker | None = None) -> ShopBackend:
    """The shop backend; read-only for the console's test chat (``tracker`` of a sandboxed
    sender): a test conversation never changes the shop."""
    shop = get_backend()
    if tracker is not None and is_sandbox(tracker.sender_id):
        return ReadOnlyBackend(shop)
    return shop


def shop_facts() -> dict[str, str]:
    """The shop's facts for answers; the bot's name and service hours come from the bot's
    profile (console 基本信息, read live: xiaoer/core/profile.py)."""
    from xiaoer.core.profile import bot_profile

    return {**backend().policies().facts(), **bot_profile().facts()}


def metadata_buyer_id(tracker: Tracker) -> str | None:
    """The ``buyer_id`` in the message metadata, whichever channel put it there."""
    metadata: dict[str, Any] = tracker.latest_message.get("metadata") or {}
    value = metadata.get("buyer_id")
    return str(value) if value else None


def channel_security(tracker: Tracker) -> ChannelSecurity:
    """The security settings of the channel the customer writes from."""
    return security_settings().channel(tracker.get_latest_input_channel())


def buyer_id(tracker: Tracker) -> str | None:
    """The platform buyer id, when the channel knows who is writing.

    Only channels with ``buyer_known: true`` in ``security.channels`` (Douyin, whose
    channel sets the metadata itself) are believed; elsewhere the customer is anonymous."""
    return metadata_buyer_id(tracker) if channel_security(tracker).buyer_known else None


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def fmt_time(value: datetime | None) -> str:
    return f"{value:%m月%d日 %H:%M}" if value else ""


def log_event(event: str, tracker: Tracker, **fields: Any) -> None:
    """Structured log line: event name, conversation id, non-personal fields only."""
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info("event=%s conversation=%s %s", event, tracker.sender_id, extra)
