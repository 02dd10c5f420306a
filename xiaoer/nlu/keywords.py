"""NLU component: the merchant's keyword rules (关键词回复), applied before the model's answer.

It runs last in the pipeline. A message that triggers one of the keyword rules in force
(xiaoer/keywords: keywords or a pattern, priority, channel, time window, negation and
exclusion words) gets, whatever the classifier said, with full confidence:

* a reply rule: intent ``keyword_reply``; the rule ``keyword_reply -> action_keyword_reply``
  says the rule's reply;
* a handoff rule: ``complain`` (reason complaint: urgent, complaints group; the matched
  keyword in ``handoff_keyword``, as the old handoff keywords did) or ``request_human``.

The rule's id is in the intent's ``keyword_rule`` (kept in the tracker's parse data, shown
by the console's test chat). The model's own complaint / human intents are dropped when the
message only mentions them negated ("我不是要投诉", "不用转人工") or, for a complaint, only in
the other sense a handoff rule's exclusion words name ("拍照曝光"): the next intent of the
ranking takes over (``negated`` names the word).

Why here and not in the channels: every channel (REST, Douyin, the console's test chat)
gets the same rules, the conversation stays Rasa's (the reply is a bot event of the
tracker, handoffs go through the usual rules and forms' unhappy paths), and the rules are
read at run time (a cache of 2 s), so an edit applies within seconds without retraining.
The channel a rule is limited to is read from the message metadata's ``channel`` (set by
xiaoer.nlu.multi.handle_message, which every chat channel calls).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

from xiaoer.nlu.fields import (  # noqa: E402
    KEYWORD_FIELD,
    KEYWORD_INTENT,
    NEGATED_FIELD,
    REPLY_INTENT,
    RULE_FIELD,
)

HANDOFF_INTENTS = {"complaint": "complain", "request": "request_human"}
NEGATABLE = ("complain", "request_human")
# below this, the intent after a negated complaint is no answer: the fallback asks again
MIN_CONFIDENCE = 0.3
FALLBACK = "nlu_fallback"


def channel_of(message: Message) -> str | None:
    metadata = message.get("metadata") or {}
    value = metadata.get("channel") if isinstance(metadata, dict) else None
    return str(value) if value else None


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class HandoffKeywordClassifier(GraphComponent):
    """The keyword rules (the name is the first release's: models trained with it load)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"intent": KEYWORD_INTENT}

    def __init__(self, config: dict[str, Any]) -> None:
        self.intent = str(config.get("intent") or KEYWORD_INTENT)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> HandoffKeywordClassifier:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        try:
            from xiaoer.keywords.matching import excluded_sense, match, negated_intent
            from xiaoer.keywords.store import get_keyword_store

            rules = get_keyword_store().enabled()
        except Exception:  # noqa: BLE001 - a broken rules store must not stop the NLU
            logger.exception("keyword rules unavailable")
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            if text.startswith("/"):
                continue  # a button payload, not words
            found = match(text, channel_of(message), rules=rules)
            if found is not None:
                self._force(message, found)
                continue
            intent = message.get(INTENT) or {}
            name = str(intent.get("name") or "")
            word = negated_intent(name, text) or excluded_sense(name, text, rules)
            if word:
                self._demote(message, word)
        return messages

    def _force(self, message: Message, found: Any) -> None:
        rule = found.rule
        forced: dict[str, Any] = {"confidence": 1.0, RULE_FIELD: rule.id}
        if rule.action == "reply":
            forced["name"] = REPLY_INTENT
        else:
            forced["name"] = HANDOFF_INTENTS.get(rule.handoff_reason, self.intent)
            if forced["name"] == self.intent:
                forced[KEYWORD_FIELD] = found.keyword
        ranking = [
            r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != forced["name"]
        ]
        message.set(INTENT, forced, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [forced, *ranking], add_to_output=True)

    def _demote(self, message: Message, word: str) -> None:
        ranking = message.get(INTENT_RANKING_KEY) or []
        rest = [r for r in ranking if r.get("name") not in (*NEGATABLE, FALLBACK)]
        best = rest[0] if rest else None
        if best is not None and float(best.get("confidence") or 0) >= MIN_CONFIDENCE:
            chosen = {"name": best["name"], "confidence": float(best["confidence"])}
        else:
            chosen = {"name": FALLBACK, "confidence": 1.0}
        chosen[NEGATED_FIELD] = word
        message.set(INTENT, chosen, add_to_output=True)
        message.set(
            INTENT_RANKING_KEY,
            [chosen, *[r for r in ranking if r.get("name") != chosen["name"]]],
            add_to_output=True,
        )
