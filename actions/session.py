"""Session start: fills the shop's facts (name, bot name, hours) used by responses."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ConversationPaused,
    EventType,
    SessionStarted,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import shop_facts
from xiaoer.core.profile import bot_profile
from xiaoer.handoff.service import held_by_agent
from xiaoer.text.placeholders import fill

FACT_SLOTS = ("shop_name", "bot_name", "service_hours")


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        facts = shop_facts()
        profile = bot_profile()
        events: list[EventType] = [SessionStarted()]
        events += [SlotSet(slot, facts[slot]) for slot in FACT_SLOTS]
        sign_off = fill(profile.sign_off, facts) if profile.sign_off else None
        events += [SlotSet("sign_off", sign_off), SlotSet("has_sign_off", bool(sign_off))]
        if profile.welcome and first_contact(tracker):
            dispatcher.utter_message(text=fill(profile.welcome, facts), profile="welcome")
        events.append(ActionExecuted("action_listen"))
        if held_by_agent(tracker.sender_id):  # a new session must not un-pause the bot
            events.append(ConversationPaused())
        return events


def first_contact(tracker: Tracker) -> bool:
    """Whether the customer's first message opens this conversation (no earlier message,
    and not a Douyin greeting, which is the welcome of its own)."""
    started = tracker.get_slot("session_started_metadata") or {}
    if isinstance(started, dict) and started.get("douyin_event"):
        return False
    return not any(event.get("event") == "user" for event in tracker.events)
