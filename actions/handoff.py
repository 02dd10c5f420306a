"""Offering and performing the handoff to a human agent."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent, log_event
from actions.messages import say
from xiaoer.handoff.store import get_handoff_store

INTENT_REASONS = {"complain": "complaint", "request_human": "requested"}


def offer_human(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, after_misses: bool = False
) -> list[EventType]:
    """Ask whether the customer wants a human; the answer is handled by rules."""
    say(dispatcher, "offer_human_after_misses" if after_misses else "offer_human")
    log_event("handoff_offered", tracker, reason=reason)
    return [SlotSet("handoff_offered", True), SlotSet("handoff_reason", reason)]


class ActionOfferHuman(Action):
    def name(self) -> str:
        return "action_offer_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reason = INTENT_REASONS.get(latest_intent(tracker) or "", "needs_agent")
        return offer_human(dispatcher, tracker, reason)


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reason = tracker.get_slot("handoff_reason") or INTENT_REASONS.get(
            latest_intent(tracker) or "", "requested"
        )
        request = get_handoff_store().request(
            tracker.sender_id, reason, details=(tracker.latest_message.get("text") or "")[:500]
        )
        on_duty = backend().policies().agents_on_duty()
        say(dispatcher, "handoff" if on_duty else "handoff_off_hours")
        log_event("handoff_requested", tracker, reason=reason, request=request.id)
        return [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]


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
    request = get_handoff_store().request(tracker.sender_id, reason, details=details[:1000])
    say(dispatcher, "handed_over", what=what)
    log_event("handoff_requested", tracker, reason=reason, request=request.id)
    return [SlotSet("handoff_offered", False), SlotSet("handoff_reason", None)]
