"""NLU component: the knowledge base's exact and near-exact phrasings, before a retrain.

A retrain teaches the model a new entry (retrieval intent ``faq/kb<id>``, the
ResponseSelector); until it is done, this component recognises the entry's question and
phrasings as written (normalised text, rapidfuzz ratio >= ``threshold``; exact only for
short texts) and makes the message ``faq`` with that entry selected, as the
ResponseSelector would. For a message the classifier took for ``faq`` (or did not
understand), it also picks the entry whose example is most similar
(:meth:`xiaoer.knowledge.answers.Matcher.nearest`), which generalises to unseen phrasings
far better than the ResponseSelector trained on a few phrasings per entry. The entries are read at run time from the project database (a
cache of a few seconds). It runs after the classifiers and the entity rule and before the
handoff keywords, which still win. A phrasing is never an existing intent's example (the
import refuses collisions), so a match overrides the classifier.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

MATCH_FIELD = "knowledge_match"
OFF_ENV = "XIAOER_KB_MATCHER_OFF"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class KnowledgeMatcher(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "threshold": 90.0,
            "min_fuzzy_length": 6,
            "refresh_seconds": 3.0,
            # which entry a message classified as faq is about: the most similar example's
            # entry when at least this similar (0-100), else the ResponseSelector's choice
            "select_threshold": 30.0,
            # a message the classifier did not understand (nlu_fallback) that is at least
            # this similar to an entry's example is that entry's question
            "rescue_threshold": 30.0,
        }

    def __init__(self, config: dict[str, Any]) -> None:
        from xiaoer.knowledge.answers import Matcher

        self.select_threshold = float(config.get("select_threshold", 30.0))
        self.rescue_threshold = float(config.get("rescue_threshold", 30.0))
        self.matcher = Matcher(
            ttl=float(config.get("refresh_seconds", 3.0)),
            threshold=float(config.get("threshold", 90.0)),
            min_fuzzy_length=int(config.get("min_fuzzy_length", 6)),
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> KnowledgeMatcher:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        from xiaoer.knowledge.store import RETRIEVAL_INTENT

        if os.environ.get(OFF_ENV) == "1":  # checking what the model itself learnt
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get("name")
            try:
                found = self.matcher.match(text)
                how = "exact"
                if found is None and intent in (RETRIEVAL_INTENT, "nlu_fallback"):
                    found = self.matcher.nearest(text)
                    how = "similar"
                    needed = (
                        self.select_threshold
                        if intent == RETRIEVAL_INTENT
                        else self.rescue_threshold
                    )
                    if found is not None and found.score < needed:
                        found = None
            except Exception:  # noqa: BLE001 - the knowledge base must not stop the NLU
                logger.exception("knowledge base matcher unavailable")
                return messages
            if found is None:
                continue
            key = f"{RETRIEVAL_INTENT}/{found.key}"
            confidence = round(found.score / 100, 4)
            if how == "similar" and intent == RETRIEVAL_INTENT:  # the classifier's confidence
                confidence = float((message.get(INTENT) or {}).get("confidence") or confidence)
            forced = {
                "name": RETRIEVAL_INTENT,
                "confidence": confidence,
                MATCH_FIELD: found.key,
                "knowledge_match_kind": how,
            }
            ranking = [
                r
                for r in (message.get(INTENT_RANKING_KEY) or [])
                if r.get("name") != RETRIEVAL_INTENT
            ]
            selector = dict(message.get("response_selector") or {})
            selector[RETRIEVAL_INTENT] = {
                "response": {
                    "responses": [],
                    "confidence": confidence,
                    "intent_response_key": key,
                    "utter_action": f"utter_{key}",
                },
                "ranking": [{"confidence": confidence, "intent_response_key": key}],
            }
            message.set(INTENT, forced, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [forced, *ranking], add_to_output=True)
            message.set("response_selector", selector, add_to_output=True)
        return messages
