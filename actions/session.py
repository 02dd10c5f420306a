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
from xiaoer.handoff.service import held_by_agent

FACT_SLOTS = ("shop_name", "bot_name", "service_hours")


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        facts = shop_facts()
        events: list[EventType] = [SessionStarted()]
        events += [SlotSet(slot, facts[slot]) for slot in FACT_SLOTS]
        events.append(ActionExecuted("action_listen"))
        if held_by_agent(tracker.sender_id):  # a new session must not un-pause the bot
            events.append(ConversationPaused())
        return events
