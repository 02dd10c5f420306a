"""Requesting a human agent: the rules of the handoff, apart from Rasa.

A handoff puts the conversation into the queue of the skill group that fits it (售前 /
售后 / 投诉), with a priority and a summary for the agent (intent, order, collected
slots, last messages). Within agent working hours the customer hears roughly how long the
wait is and the bot is paused for the conversation, so it never talks over the agent;
outside hours the customer hears when agents are back and the case waits in the queue.

The action (``actions/handoff.py``) reads the conversation from Rasa's tracker into a
``Conversation``, calls ``request_handoff`` and says the ``HandoffOutcome``'s message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xiaoer.agents import get_agent_store
from xiaoer.core.senders import is_sandbox
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.store import HandoffRequest, get_handoff_store

# the reason a handoff is asked for, from the customer's intent
INTENT_REASONS = {"complain": "complaint", "request_human": "requested"}
PRIORITY_REASONS = {"complaint": 2, "keyword": 2, "quality_issue": 1}
QUALITY_REASONS = ("质量问题", "发错货", "少件")
# slots worth showing to the agent (internal counters and flags are left out)
SUMMARY_SLOTS = (
    "order_id", "product", "color", "size", "as_type", "as_reason", "as_photo",
    "wanted_variant", "new_name", "new_phone", "new_address", "height_cm", "weight_kg",
)  # fmt: skip
LAST_MESSAGES = 6
# intents that say nothing about the topic: a handoff after them is routed by what the
# customer talked about before
GENERIC_INTENTS = {
    "request_human", "affirm", "deny", "greet", "goodbye", "thank", "bot_challenge",
    "nlu_fallback", "out_of_scope", "provide_contact",
}  # fmt: skip


@dataclass(frozen=True)
class Conversation:
    """What a handoff needs to know about a conversation (read from the tracker)."""

    sender_id: str
    intent: str = ""  # of the latest message
    intents: Sequence[str] = ()  # of the customer's messages, oldest first
    slots: Mapping[str, Any] = field(default_factory=dict)
    messages: Sequence[tuple[str, str]] = ()  # ("user" | "bot", text), oldest first
    order_id: str = ""  # the order the conversation is about
    buyer_id: str = ""
    channel: str = ""
    keyword: str = ""  # the merchant keyword that forced a human, if any
    limited: bool = False  # the channel says this client opened too many handoffs


@dataclass(frozen=True)
class HandoffOutcome:
    """What the customer is told: ``message`` (actions/messages.yml) with ``values``;
    ``paused``: the bot stays quiet until the agent hands back."""

    message: str
    values: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    request: HandoffRequest | None = None  # None: no queue entry (limited)


def reason_for_intent(intent: str, default: str) -> str:
    return INTENT_REASONS.get(intent, default)


def topic_of(conversation: Conversation) -> str:
    """The latest intent that names the topic (the latest intent when none does)."""
    for name in reversed(conversation.intents):
        if name and name not in GENERIC_INTENTS:
            return name
    return conversation.intent


def summary_of(conversation: Conversation, reason: str) -> dict[str, Any]:
    """What the agent needs to pick the conversation up without asking again."""
    slots = {
        s: conversation.slots.get(s)
        for s in SUMMARY_SLOTS
        if conversation.slots.get(s) not in (None, "")
    }
    last = [
        {"who": who, "text": text[:300]} for who, text in conversation.messages if text.strip()
    ][-LAST_MESSAGES:]
    return {
        "reason": reason,
        "intent": conversation.intent,
        "topic": topic_of(conversation),
        "order_id": conversation.order_id,
        "slots": slots,
        "last_messages": last,
        "buyer_id": conversation.buyer_id,
        "channel": conversation.channel,
        "keyword": conversation.keyword,
    }


def priority_of(conversation: Conversation, reason: str) -> int:
    """Complaints and merchant keywords first, then quality issues shown with a photo."""
    if reason in PRIORITY_REASONS:
        return PRIORITY_REASONS[reason]
    slots = conversation.slots
    if slots.get("as_photo") and slots.get("as_reason") in QUALITY_REASONS:
        return PRIORITY_REASONS["quality_issue"]
    return 0


def wait_minutes(request: HandoffRequest, minutes_per_case: float) -> tuple[int, int]:
    """(requests ahead in the same group, rough wait in minutes) from the current queue."""
    ahead = get_handoff_store().position(request)
    agents = get_agent_store().on_shift(request.group_name) or get_agent_store().on_shift()
    minutes = math.ceil((ahead + 1) * minutes_per_case / max(1, len(agents)))
    return ahead, max(1, minutes)


def queue_text(ahead: int) -> str:
    return f"前面还有{ahead}位在排队" if ahead else "您排在第一位"


def request_handoff(
    conversation: Conversation, reason: str, details: str, what: str | None = None
) -> HandoffOutcome:
    """Queue the conversation for an agent; what the customer hears next.

    ``what``: what the bot collected for the agent ("订单信息"), when it hands over at
    once after a flow (the ``handed_over*`` messages) rather than on request."""
    if is_sandbox(conversation.sender_id):
        # the console's test chat: the merchant sees that it would hand over; no queue
        # entry, no pause, nothing an agent or a report counts
        return HandoffOutcome("handoff_sandbox")
    if conversation.limited:
        # no queue entry (the agents' queue cannot be flooded): the customer is asked to wait
        return HandoffOutcome("handoff_busy")
    settings = handoff_settings()
    in_hours = settings.in_hours()
    topic = topic_of(conversation)
    request = get_handoff_store().request(
        conversation.sender_id,
        reason,
        details=details[:1000],
        priority=priority_of(conversation, reason),
        group=settings.group_for(topic, reason),
        intent=topic,
        summary=summary_of(conversation, reason),
        in_hours=in_hours,
    )
    values: dict[str, Any] = {"service_hours": settings.hours_text, "what": what or ""}
    if in_hours:
        ahead, values["wait_minutes"] = wait_minutes(request, settings.minutes_per_case)
        values["queue_text"] = queue_text(ahead)
        return HandoffOutcome("handed_over" if what else "handoff", values, True, request)
    values["back_at"] = settings.next_start()
    message = "handed_over_off_hours" if what else "handoff_off_hours"
    return HandoffOutcome(message, values, False, request)


def held_by_agent(sender_id: str) -> bool:
    """Whether the bot must stay paused: an agent holds the conversation, or it waits in
    the queue after a handoff in working hours."""
    request = get_handoff_store().active_for(sender_id)
    if request is None:
        return False
    return request.status == "active" or request.in_hours
