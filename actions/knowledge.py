"""The knowledge base's answers (``action_kb_answer``, after intent ``faq``).

The model (ResponseSelector) or the run-time matcher chose an entry ``faq/kb<id>``; the
answer text, image and buttons are read from the knowledge base now, so an edited answer
is live at once. An entry switched off (or deleted) since the model was trained is
answered as a message the bot did not understand.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.product_focus import product_in_focus
from xiaoer.knowledge.answers import answer_for, response_key


class ActionKnowledgeAnswer(Action):
    def name(self) -> str:
        return "action_kb_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        key = response_key(tracker.latest_message)
        entry = answer_for(key, product_in_focus(tracker)) if key else None
        if entry is None:
            return [FollowupAction("action_default_fallback")]
        message: dict[str, Any] = {"text": entry.answer}
        if entry.image_url:
            message["image"] = entry.image_url
        if entry.buttons:
            message["buttons"] = [b.as_dict() for b in entry.buttons]
        dispatcher.utter_message(**message)
        return []
