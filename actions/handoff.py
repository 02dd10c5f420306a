"""Offering and performing the handoff to a human agent.

A handoff puts the conversation into the queue of the skill group that fits it (售前 /
售后 / 投诉), with a summary for the agent (intent, order, collected slots, last
messages). Within agent working hours the customer hears roughly how long the wait is
and the bot is paused for the conversation (``ConversationPaused``: Rasa keeps storing
the customer's messages but predicts nothing), so it never talks over the agent; the
console resumes it when the agent hands back. Outside hours the customer hears when
agents are back and is asked for a phone or WeChat for a call-back; the bot keeps
answering meanwhile and the case waits in the queue.
"""

from __future__ import annotations

import math
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.messages import say
from xiaoer.agents import get_agent_store
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.store import HandoffRequest, get_handoff_store
from xiaoer.nlu.keywords import KEYWORD_FIELD

# set only by the REST channel (xiaoer/channels/rest.py), never taken from the client
HANDOFF_LIMITED = "handoff_limited"
INTENT_REASONS = {"complain": "complaint", "request_human": "requested"}
PRIORITY_REASONS = {"complaint": 2, "keyword": 2, "quality_issue": 1}
QUALITY_REASONS = ("质量问题", "发错货", "少件")
# slots worth showing to the agent (internal counters and flags are left out)
SUMMARY_SLOTS = (
    "order_id", "product", "color", "size", "as_type", "as_reason", "as_photo",
    "wanted_variant", "new_name", "new_phone", "new_address", "height_cm", "weight_kg",
)  # fmt: skip
LAST_MESSAGES = 6


def offer_human(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, after_misses: bool = False
) -> list[EventType]:
    """Ask whether the customer wants a human; the answer is handled by rules."""
    say(dispatcher, "offer_human_after_misses" if after_misses else "offer_human")
    log_event("handoff_offered", tracker, reason=reason)
    return [SlotSet("handoff_offered", True), SlotSet("handoff_reason", reason)]


def keyword_of(tracker: Tracker) -> str | None:
    """The merchant keyword that forced this message to a human (see xiaoer/handoff/keywords)."""
    value = (tracker.latest_message.get("intent") or {}).get(KEYWORD_FIELD)
    return str(value) if value else None


def summary_of(tracker: Tracker, reason: str) -> dict[str, Any]:
    """What the agent needs to pick the conversation up without asking again."""
    slots = {s: tracker.get_slot(s) for s in SUMMARY_SLOTS if tracker.get_slot(s) not in (None, "")}
    messages: list[dict[str, str]] = []
    for event in reversed(tracker.events):
        if event.get("event") in ("user", "bot") and (event.get("text") or "").strip():
            messages.append({"who": event["event"], "text": str(event["text"])[:300]})
            if len(messages) >= LAST_MESSAGES:
                break
    metadata = tracker.latest_message.get("metadata") or {}
    return {
        "reason": reason,
        "intent": latest_intent(tracker) or "",
        "topic": topic_intent(tracker),
        "order_id": mentioned_order(tracker),
        "slots": slots,
        "last_messages": list(reversed(messages)),
        "buyer_id": str(metadata.get("buyer_id") or ""),
        "channel": tracker.get_latest_input_channel() or "",
        "keyword": keyword_of(tracker) or "",
    }


# intents that say nothing about the topic: a handoff after them is routed by what the
# customer talked about before
GENERIC_INTENTS = {
    "request_human", "affirm", "deny", "greet", "goodbye", "thank", "bot_challenge",
    "nlu_fallback", "out_of_scope", "provide_contact",
}  # fmt: skip


def topic_intent(tracker: Tracker) -> str:
    """The latest intent that names the topic (the latest intent when none does)."""
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if name and name not in GENERIC_INTENTS:
            return str(name)
    return latest_intent(tracker) or ""


def mentioned_order(tracker: Tracker) -> str:
    """The order the conversation is about: the form's slot, else the latest order id given."""
    if tracker.get_slot("order_id"):
        return str(tracker.get_slot("order_id"))
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        for entity in (event.get("parse_data") or {}).get("entities") or []:
            if entity.get("entity") == "order_id" and entity.get("value"):
                return str(entity["value"])
    return ""


def priority_of(tracker: Tracker, reason: str) -> int:
    if reason in PRIORITY_REASONS:
        return PRIORITY_REASONS[reason]
    if tracker.get_slot("as_photo") and tracker.get_slot("as_reason") in QUALITY_REASONS:
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


def start_handoff(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    reason: str,
    details: str,
    what: str | None = None,
) -> list[EventType]:
    """Queue the conversation for an agent and tell the customer what happens next."""
    if (tracker.latest_message.get("metadata") or {}).get(HANDOFF_LIMITED):
        # the REST channel says this client address opened too many handoffs this hour:
        # no queue entry (the agents' queue cannot be flooded), the customer is asked to wait
        say(dispatcher, "handoff_busy")
        log_event("handoff_limited", tracker, reason=reason)
        return [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]
    settings = handoff_settings()
    in_hours = settings.in_hours()
    topic = topic_intent(tracker)
    request = get_handoff_store().request(
        tracker.sender_id,
        reason,
        details=details[:1000],
        priority=priority_of(tracker, reason),
        group=settings.group_for(topic, reason),
        intent=topic,
        summary=summary_of(tracker, reason),
        in_hours=in_hours,
    )
    values: dict[str, Any] = {"service_hours": settings.hours_text, "what": what or ""}
    events: list[EventType] = [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]
    if in_hours:
        ahead, values["wait_minutes"] = wait_minutes(request, settings.minutes_per_case)
        values["queue_text"] = queue_text(ahead)
        say(dispatcher, "handed_over" if what else "handoff", **values)
        events.append(ConversationPaused())
    else:
        values["back_at"] = settings.next_start()
        say(dispatcher, "handed_over_off_hours" if what else "handoff_off_hours", **values)
    log_event(
        "handoff_requested",
        tracker,
        reason=reason,
        request=request.id,
        group=request.group_name,
        priority=request.priority,
        paused=in_hours,
    )
    return events


def held_by_agent(sender_id: str) -> bool:
    """Whether the bot must stay paused: an agent holds the conversation, or it waits in
    the queue after a handoff in working hours."""
    request = get_handoff_store().active_for(sender_id)
    if request is None:
        return False
    return request.status == "active" or request.in_hours


class ActionOfferHuman(Action):
    def name(self) -> str:
        return "action_offer_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if keyword_of(tracker):  # a merchant keyword forces a human at once, even mid-form
            return start_handoff(
                dispatcher, tracker, "keyword", tracker.latest_message.get("text") or ""
            )
        reason = INTENT_REASONS.get(latest_intent(tracker) or "", "needs_agent")
        return offer_human(dispatcher, tracker, reason)


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if keyword_of(tracker):
            reason = "keyword"
        else:
            reason = tracker.get_slot("handoff_reason") or INTENT_REASONS.get(
                latest_intent(tracker) or "", "requested"
            )
        return start_handoff(
            dispatcher, tracker, reason, (tracker.latest_message.get("text") or "")[:500]
        )


class ActionDeclineHuman(Action):
    def name(self) -> str:
        return "action_decline_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        say(dispatcher, "handoff_declined")
        return [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]


def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, what: str, details: str
) -> list[EventType]:
    """Hand the conversation to an agent at once, with what the bot collected."""
    return start_handoff(dispatcher, tracker, reason, details, what=what)
