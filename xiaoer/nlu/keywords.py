"""NLU component: the merchant's handoff keywords (12315, 投诉, 律师...) force a human.

It runs last in the pipeline. A message that contains one of the keywords in force
(``keywords`` of the handoff settings: xiaoer.yml, overridden in the agent console) is
classified as ``complain`` with full confidence, whatever the classifier said, and the
intent carries ``handoff_keyword``; the handoff rules then hand the conversation to the
complaints group at once, with priority. The keywords are read at run time (a cache of a
few seconds), so a new keyword needs no retraining.
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

from xiaoer.nlu.fields import KEYWORD_FIELD, KEYWORD_INTENT  # noqa: E402


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class HandoffKeywordClassifier(GraphComponent):
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
            from xiaoer.core.settings import handoff_settings

            settings = handoff_settings()
        except Exception:  # noqa: BLE001 - a broken settings store must not stop the NLU
            logger.exception("handoff keywords unavailable")
            return messages
        for message in messages:
            keyword = settings.matching_keyword(message.get(TEXT) or "")
            if not keyword:
                continue
            forced = {"name": self.intent, "confidence": 1.0, KEYWORD_FIELD: keyword}
            ranking = [
                r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != self.intent
            ]
            message.set(INTENT, forced, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [forced, *ranking], add_to_output=True)
        return messages
