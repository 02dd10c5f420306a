"""Low-confidence fallback: a follow-up on the order or product in focus is answered
(actions/followup.py); otherwise ask to rephrase, and offer a human after the second miss
in a row. At most one "didn't understand" per customer message."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.followup import FOCUS_SLOTS, answer_follow_up
from actions.handoff import offer_human
from actions.leads import thank_contact
from actions.messages import say
from xiaoer.leads.asking import contacts_in

MISSES_BEFORE_HUMAN = 2


def fallbacks_this_turn(tracker: Tracker) -> int:
    """How many times the fallback already ran since the latest user message."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            break
        if event.get("event") == "action" and event.get("name") == "action_default_fallback":
            count += 1
    return count


def consecutive_misses(tracker: Tracker) -> int:
    """How many of the latest user messages in a row were not understood (a low-confidence
    message answered as a follow-up, which sets a focus slot, was understood)."""
    misses = 0
    answered = False  # whether the turn after the user message (seen first) set a focus
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "slot" and event.get("name") in FOCUS_SLOTS:
            answered = True
        if kind != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback" or answered:
            break
        misses += 1
    return misses


class ActionDefaultFallback(Action):
    def name(self) -> str:
        return "action_default_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # At most one "didn't understand" per customer message, and the turn ends here:
        # without the listen, the policies could predict the fallback again and again
        # until Rasa's circuit breaker (the storm of issue 12).
        end_turn: list[EventType] = [FollowupAction("action_listen")]
        if fallbacks_this_turn(tracker):
            return end_turn
        if contacts_in(tracker.latest_message):
            return thank_contact(dispatcher, tracker) + end_turn  # a contact is understood
        follow_up = await answer_follow_up(dispatcher, tracker, domain)
        if follow_up is not None:
            return follow_up + end_turn
        if consecutive_misses(tracker) >= MISSES_BEFORE_HUMAN:
            return (
                offer_human(dispatcher, tracker, "repeated_failure", after_misses=True) + end_turn
            )
        say(dispatcher, "please_rephrase")
        return end_turn
