"""Proactive greetings on Douyin: a new follower, a customer who opens the chat.

The Douyin channel triggers ``EXTERNAL_douyin_greet`` (entity ``douyin_event``) with the
buyer's open id in the metadata; this action picks the script for the customer's
segment (new follower / new customer / returning customer, from the shop backend) and
the time of day, from the merchant's settings (xiaoer.yml, ``douyin.greeting``).
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, log_event, metadata_buyer_id, shop_facts
from actions.messages import say
from xiaoer.core.clock import now_beijing
from xiaoer.douyin.greetings import (
    EVENT_ENTER,
    greeting_settings,
    render_greeting,
    segment_for,
)
from xiaoer.shop.backend import BackendError


def _event(tracker: Tracker) -> str | None:
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "douyin_event":
            return str(entity.get("value"))
    return None


class ActionDouyinGreet(Action):
    def name(self) -> str:
        return "action_douyin_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        metadata = tracker.latest_message.get("metadata") or {}
        event = _event(tracker)
        if not metadata.get("is_external") or event is None:
            # typed text classified as the trigger: a plain greeting is the safe answer
            say(dispatcher, "greet_intro")
            return []
        buyer = metadata_buyer_id(tracker)  # only the Douyin channel triggers this
        returning = False
        if buyer:
            try:
                found = await backend().get_buyer(buyer)
            except BackendError:
                found = None
            returning = bool(found and found.returning)
        settings = greeting_settings()
        segment = segment_for(event or EVENT_ENTER, returning)
        period = settings.period(now_beijing())
        facts = shop_facts()
        text = render_greeting(
            settings,
            segment,
            period,
            {
                "nickname": str(metadata.get("nickname") or ""),
                "shop_name": facts.get("shop_name", ""),
                "bot_name": facts.get("bot_name", ""),
                "service_hours": facts.get("service_hours", ""),
                "coupon": facts.get("coupon_everyone", ""),
                "returning_code": facts.get("returning_code", ""),
            },
        )
        dispatcher.utter_message(text=text)
        log_event("douyin_greet", tracker, segment=segment, period=period, trigger=event)
        return []


# --- dialogue (issue 12): repeated greetings ------------------------------------------
class ActionGreet(Action):
    """The introduction once per session; a repeated "在吗" gets a brief acknowledgement."""

    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if introduced(tracker):
            say(dispatcher, "still_here")
        else:
            say(dispatcher, "greet_intro", tracker=tracker)
        return []


def introduced(tracker: Tracker) -> bool:
    """Whether the bot already greeted in this session (before the latest message)."""
    events = list(tracker.events)
    for event in reversed(events[:-1] if events and events[-1].get("event") == "user" else events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "action" and event.get("name") in (
            "action_greet",
            "action_douyin_greet",
        ):
            return True
    return False
