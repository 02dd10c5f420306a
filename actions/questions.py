"""The forms' questions (``action_ask_<slot>``), made from tables.

Each order flow lists its questions as ``{action name: question}``; a question is the
key of a message of messages.yml (a fixed question) or an async function
``(dispatcher, tracker) -> events`` (a question that depends on the conversation: the
order's values, the customer's own orders as buttons...). ``ask_actions`` makes one
rasa-sdk ``Action`` class per entry, which the action server registers like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.messages import say

Asker = Callable[[CollectingDispatcher, Tracker], Awaitable[list[EventType]]]
Question = str | Asker


def _split_part(event_or_message: dict[str, Any]) -> int:
    """Which request of a split customer message this is (1: the first, or not split)."""
    split = (event_or_message.get("metadata") or {}).get("split") or {}
    return int(split.get("part") or 1)


def asked_in_this_message(tracker: Tracker) -> bool:
    """Whether the form's pending question was asked in the reply to this very customer
    message: one the assistant split into requests (xiaoer/nlu/multi.py), an earlier of
    which started the form ("T恤缩水了 要求退货": the after-sales form asks for the order
    number, then the return policy is answered). The customer has not seen the question
    yet: it is not asked a second time in the same reply, and a later request that fills
    no slot is no miss."""
    requested = tracker.get_slot("requested_slot")
    if not requested or _split_part(tracker.latest_message) <= 1:
        return False
    users = 0
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            users += 1
            if users > 1 and _split_part(event) <= 1:
                return False  # the message's first request: asked before this message
        elif (
            users >= 1
            and kind == "slot"
            and event.get("name") == "requested_slot"
            and event.get("value") == requested
        ):
            return True
    return False


def refused_this_turn(tracker: Tracker, slot: str) -> bool:
    """Whether the validation of the customer's latest message refused an answer for
    ``slot`` (a failure counted since that message)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == f"{slot}_failures":
            return float(event.get("value") or 0) > 0
    return False


def ask_action(module: str, action_name: str, question: Question) -> type[Action]:
    """An ``Action`` class named like ``action_name`` (``ActionAskNewName``) that asks
    ``question``."""

    def name(self: Action) -> str:
        return action_name

    async def run(
        self: Action, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if asked_in_this_message(tracker):
            return []  # the reply to this very message already holds the question
        if isinstance(question, str):
            say(dispatcher, question)
            return []
        return await question(dispatcher, tracker)

    class_name = "".join(part.capitalize() for part in action_name.split("_"))
    attributes: dict[str, Any] = {
        "name": name,
        "run": run,
        "__module__": module,
        "__qualname__": class_name,
        "__doc__": f"Asks for the slot of ``{action_name}``.",
    }
    return type(class_name, (Action,), attributes)


def ask_actions(module: str, questions: Mapping[str, Question]) -> dict[str, type[Action]]:
    """One action class per ``{action name: question}`` of ``module`` (keep the result:
    the action server finds the classes among ``Action``'s live subclasses)."""
    return {name: ask_action(module, name, q) for name, q in questions.items()}
