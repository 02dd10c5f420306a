"""Customer satisfaction (CSAT): asked once per conversation when it ends, skippable.

When a conversation ends (goodbye; thanks after a solved flow — see :func:`solved_a_flow`:
a business question the bot answered or a form that ran to its end in this session, never
small talk alone; an agent handing it back,
which the console triggers as ``EXTERNAL_ask_csat``) ``action_csat_ask`` asks once for a
1-5 rating with buttons (numbered options on Douyin). A rating (intent ``rate_service``,
entity ``csat_rating``) starts ``csat_form``; a low rating (1-2) also asks what went
wrong (``csat_comment``, skippable). The slots land in Rasa's event stream, from which
the analytics store takes them (xiaoer/analytics). Anything else the customer writes
instead of a rating is simply answered: the question is never repeated.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.messages import say

LOW_RATING = 2
SKIPPED = "skipped"
SKIP_WORDS = ("跳过", "不用", "不评", "算了", "没有", "无", "skip")
CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
# what the customer says that is not a question to solve (a thank-you after these alone is
# small talk, not the end of a solved question)
NOT_A_QUESTION = frozenset(
    {
        "greet",
        "goodbye",
        "thank",
        "affirm",
        "deny",
        "bot_challenge",
        "out_of_scope",
        "nlu_fallback",
        "request_human",
        "complain",
        "rate_service",
        "EXTERNAL_douyin_greet",
        "EXTERNAL_ask_csat",
    }
)
# actions that do not answer anything on their own
NOT_SOLVING = frozenset(
    {
        "action_listen",
        "action_session_start",
        "action_restart",
        "action_greet",
        "action_douyin_greet",
        "action_default_fallback",
        "action_two_stage_fallback",
        "action_default_ask_affirmation",
        "action_deactivate_loop",
        "action_offer_human",
        "action_handoff",
        "action_decline_human",
        "action_csat_ask",
        "action_csat_thanks",
        "action_unlikely_intent",
        "action_extract_slots",
        "utter_greet",
        "utter_thank",
        "utter_goodbye",
        "utter_default",
    }
)
CSAT_FORM = "csat_form"
AGENT_CLOSED = "EXTERNAL_ask_csat"


def _answers(name: str) -> bool:
    """An action that answers the customer (not a question of a form, not plumbing)."""
    return bool(
        name
        and name not in NOT_SOLVING
        and not name.startswith(("utter_ask_", "action_ask_", "validate_"))
        and not name.endswith("_form")
    )


def solved_a_flow(tracker: Tracker) -> bool:
    """Whether this session solved something: the bot answered a business question (an
    answering action after a customer intent that is not small talk), or a form (order
    lookup, after-sales, …) ran to its end — not one the customer cancelled."""
    events = list(tracker.events)
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("event") == "session_started":
            events = events[i + 1 :]
            break
    intent = ""
    last_action = ""
    active = ""
    for event in events:
        kind = event.get("event")
        if kind == "user":
            intent = str(((event.get("parse_data") or {}).get("intent") or {}).get("name") or "")
        elif kind == "action":
            last_action = str(event.get("name") or "")
            if intent and intent not in NOT_A_QUESTION and _answers(last_action):
                return True
        elif kind == "active_loop":
            name = event.get("name")
            if name:
                active = str(name)
            else:
                # ended by the form itself (all slots filled), not action_deactivate_loop
                if active and active != CSAT_FORM and last_action == active:
                    return True
                active = ""
    return False


def rating_of(value: Any) -> int | str | None:
    """1-5 from a button payload, a digit, 五星, …; "skipped"; None when it is neither."""
    text = str(value or "").strip().lower()
    if not text:
        return None
    if text in ("skip", SKIPPED) or any(w in text for w in SKIP_WORDS):
        return SKIPPED
    for char in text:
        if char.isdigit():
            number = int(char)
            return number if 1 <= number <= 5 else None
        if char in CHINESE_DIGITS:
            return CHINESE_DIGITS[char]
    return None


class ActionCsatAsk(Action):
    def name(self) -> str:
        return "action_csat_ask"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("csat_asked"):
            return []  # once per conversation
        intent = latest_intent(tracker)
        if intent == "thank" and not solved_a_flow(tracker):
            return []  # a thank-you for small talk is not the end of a solved question
        say(dispatcher, "ask_csat_rating", tracker)  # variants chosen by their answers
        log_event("csat_asked", tracker, trigger=intent or "")
        return [SlotSet("csat_asked", True)]


class ActionAskCsatComment(Action):
    """The form's question after a low rating: what went wrong."""

    def name(self) -> str:
        return "action_ask_csat_comment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        say(dispatcher, "ask_csat_comment")
        return []


class ValidateCsatForm(FormValidationAction):
    def name(self) -> str:
        return "validate_csat_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        rating = rating_of(tracker.get_slot("csat_rating"))
        if isinstance(rating, int) and rating <= LOW_RATING:
            return ["csat_rating", "csat_comment"]
        return ["csat_rating"]

    def validate_csat_rating(
        self,
        value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        rating = rating_of(value)
        if rating is None:
            say(dispatcher, "csat_not_a_rating")
            return {"csat_rating": SKIPPED}  # asked once: never asked again
        return {"csat_rating": str(rating)}

    def validate_csat_comment(
        self,
        value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if not text or latest_intent(tracker) == "deny" or rating_of(text) == SKIPPED:
            return {"csat_comment": "-"}
        return {"csat_comment": text[:500]}


class ActionCsatThanks(Action):
    def name(self) -> str:
        return "action_csat_thanks"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        rating = rating_of(tracker.get_slot("csat_rating"))
        if not isinstance(rating, int):
            say(dispatcher, "csat_skipped")
        elif rating <= LOW_RATING:
            say(dispatcher, "csat_thanks_low")
        else:
            say(dispatcher, "csat_thanks")
        log_event("csat_rated", tracker, rating=str(rating))
        return []
