"""Offering and performing the handoff to a human agent: Rasa's side.

The rules (skill group, priority, summary, wait estimate, queueing, pausing) are the
handoff service's (``xiaoer/handoff/service.py``); these actions read the conversation
from the tracker, call it and say its answer. Within agent working hours the bot is
paused (``ConversationPaused``: Rasa keeps storing the customer's messages but predicts
nothing); the console resumes it when the agent hands back.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.messages import say
from xiaoer.core.senders import is_sandbox
from xiaoer.handoff.service import Conversation, reason_for_intent, request_handoff
from xiaoer.nlu.fields import KEYWORD_FIELD

# set only by the REST channel (xiaoer/channels/rest.py), never taken from the client
HANDOFF_LIMITED = "handoff_limited"


def offer_human(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, after_misses: bool = False
) -> list[EventType]:
    """Ask whether the customer wants a human; the answer is handled by rules."""
    say(dispatcher, "offer_human_after_misses" if after_misses else "offer_human")
    log_event("handoff_offered", tracker, reason=reason)
    return [SlotSet("handoff_offered", True), SlotSet("handoff_reason", reason)]


BACKEND_ERROR = "backend_error"  # handoff reason, and an order form's ``flow_blocker``


def backend_failed(
    dispatcher: CollectingDispatcher, tracker: Tracker, what: str = "orders"
) -> list[EventType]:
    """The shop backend failed or timed out: one message naming the busy system (the
    orders', or the products' with ``what="products"``) that offers a human itself. The
    customer was understood; nothing else is said in this turn."""
    say(dispatcher, "backend_error_products" if what == "products" else "backend_error")
    log_event("handoff_offered", tracker, reason=BACKEND_ERROR)
    return [SlotSet("handoff_offered", True), SlotSet("handoff_reason", BACKEND_ERROR)]


def keyword_of(tracker: Tracker) -> str | None:
    """The merchant keyword that forced this message to a human (see xiaoer/nlu/keywords)."""
    value = (tracker.latest_message.get("intent") or {}).get(KEYWORD_FIELD)
    return str(value) if value else None


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


def conversation_of(tracker: Tracker) -> Conversation:
    """The conversation as the handoff service reads it."""
    metadata = tracker.latest_message.get("metadata") or {}
    intents = [
        str(((e.get("parse_data") or {}).get("intent") or {}).get("name") or "")
        for e in tracker.events
        if e.get("event") == "user"
    ]
    messages = [
        (str(e["event"]), str(e.get("text") or ""))
        for e in tracker.events
        if e.get("event") in ("user", "bot")
    ]
    return Conversation(
        sender_id=tracker.sender_id,
        intent=latest_intent(tracker) or "",
        intents=intents,
        slots=tracker.slots,
        messages=messages,
        order_id=mentioned_order(tracker),
        buyer_id=str(metadata.get("buyer_id") or ""),
        channel=tracker.get_latest_input_channel() or "",
        keyword=keyword_of(tracker) or "",
        limited=bool(metadata.get(HANDOFF_LIMITED)),
    )


def start_handoff(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    reason: str,
    details: str,
    what: str | None = None,
) -> list[EventType]:
    """Queue the conversation for an agent and tell the customer what happens next."""
    outcome = request_handoff(conversation_of(tracker), reason, details, what)
    say(dispatcher, outcome.message, tracker=tracker, **outcome.values)
    events: list[EventType] = [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]
    # what the customer was told ends the bot's turn. A paused conversation stops there
    # anyway; one that is not (the test chat, the REST channel's hourly limit, outside
    # working hours) used to go on to a prediction that no rule covers when a merchant's
    # keyword handed over in the middle of a form, and the customer was also told
    # "没看懂" (the core fallback). Every rule and story waits for the customer after it.
    end_turn = ConversationPaused() if outcome.paused else FollowupAction("action_listen")
    request = outcome.request
    if request is None:  # the REST channel's hourly limit, or the test chat: not queued
        kind = "handoff_sandbox" if is_sandbox(tracker.sender_id) else "handoff_limited"
        log_event(kind, tracker, reason=reason)
        return [*events, end_turn]
    events.append(end_turn)
    log_event(
        "handoff_requested",
        tracker,
        reason=reason,
        request=request.id,
        group=request.group_name,
        priority=request.priority,
        paused=outcome.paused,
    )
    return events


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
        reason = reason_for_intent(latest_intent(tracker) or "", "needs_agent")
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
            reason = tracker.get_slot("handoff_reason") or reason_for_intent(
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
