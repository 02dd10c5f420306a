"""The merchant's keyword rules (关键词回复): say the reply of the rule that matched.

The rules component (xiaoer/nlu/keywords.py) matched the message before the model and set
``keyword_reply`` with the rule's id (``keyword_rule`` in the intent); the rule is read
live from the rules store, so an edited reply is said at once.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import log_event, shop_facts
from actions.messages import say
from xiaoer.keywords.store import get_keyword_store
from xiaoer.nlu.fields import RULE_FIELD
from xiaoer.text.placeholders import fill


class ActionKeywordReply(Action):
    def name(self) -> str:
        return "action_keyword_reply"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        rule_id = str((tracker.latest_message.get("intent") or {}).get(RULE_FIELD) or "")
        rule = get_keyword_store().get(int(rule_id)) if rule_id.isdigit() else None
        if rule is None or rule.action != "reply":
            # typed text classified as the marker, or a rule deleted meanwhile
            say(dispatcher, "please_rephrase")
            return []
        dispatcher.utter_message(
            text=fill(rule.reply_text, shop_facts()) or None,
            image=rule.image_url or None,
            buttons=[dict(b) for b in rule.buttons],
            keyword_rule=rule.id,
        )
        log_event("keyword_reply", tracker, rule=rule.id)
        return []
