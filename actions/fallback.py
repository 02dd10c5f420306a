"""Low-confidence fallback: ask to rephrase, offer a human after the second miss in a row."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import offer_human
from actions.leads import contacts_in, thank_contact
from actions.messages import say

MISSES_BEFORE_HUMAN = 2


def consecutive_misses(tracker: Tracker) -> int:
    """How many of the latest user messages in a row were not understood."""
    misses = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        misses += 1
    return misses


class ActionDefaultFallback(Action):
    def name(self) -> str:
        return "action_default_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if contacts_in(tracker.latest_message):
            return thank_contact(dispatcher, tracker)  # a contact is always understood
        if consecutive_misses(tracker) >= MISSES_BEFORE_HUMAN:
            return offer_human(dispatcher, tracker, "repeated_failure", after_misses=True)
        say(dispatcher, "please_rephrase")
        return []
