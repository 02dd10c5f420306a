"""Helpers for action tests: hand-built trackers and a runner with CollectingDispatcher."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def tracker(
    intent: str = "order_status",
    text: str = "",
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    channel: str | None = None,
    sender_id: str = "test-user",
) -> Tracker:
    """A tracker after one user message; ``channel`` is the message's input channel (e.g.
    "douyin", whose ``buyer_id`` metadata is believed; none: an anonymous customer)."""
    latest = {
        "intent": {"name": intent, "confidence": 0.99},
        "entities": entities or [],
        "text": text,
        "metadata": metadata or {},
    }
    return Tracker(
        sender_id=sender_id,
        slots={"order_id_failures": 0.0, "handoff_offered": False, **(slots or {})},
        latest_message=latest,
        events=events
        or [{"event": "user", "text": text, "parse_data": latest, "input_channel": channel}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


async def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, DOMAIN)
    return dispatcher.messages, events


def texts(msgs: list[dict[str, Any]]) -> str:
    text = "\n".join(m.get("text") or "" for m in msgs)
    assert not re.search(r"\{\w+\}", text), f"unfilled placeholder in: {text}"
    return text
