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

A message the classifier gave to an existing intent without much confidence (below
``override_confidence``) is the knowledge base's question when it is at least as close to an
entry's examples as to any training example of that intent (``override_margin`` more;
similarities 0-100, at least ``override_similarity``, and no intent's example more than
``override_any_margin`` closer): the classifier has seen a handful of phrasings per entry
against dozens per intent, and leans to the intents. The other way round, a message the
classifier gave to ``faq`` goes to the next intent of its ranking when it is at least
``faq_back_margin`` closer to that intent's examples than to any entry's; and a message the
classifier did not understand that no entry claims takes the verdict of
:class:`IntentsAlone` (a classifier trained without the knowledge base) when that one is at
least ``alone_confidence`` sure; such a message is not even rescued by an entry when
that classifier is ``rescue_alone_confidence`` sure, or ``alone_confidence`` sure and the
entry's example less than ``rescue_alone_similarity`` similar. The thresholds were
chosen on a development set of blind paraphrases (bench/data/blind-dev/), heldout accuracy
of the existing intents watched (bench/knowledge_nlu.py). The intents'
examples are kept from training (this component is trained for that alone).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.diet_classifier import DIETClassifier
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from xiaoer.core.rasa_api import MODEL_CHECK_FLAG

logger = logging.getLogger(__name__)

MATCH_FIELD = "knowledge_match"
# the intents' classifier trained without the knowledge base's questions (IntentsAlone)
ALONE_FIELD = "intents_alone"
OFF_ENV = "XIAOER_KB_MATCHER_OFF"
EXAMPLES_FILE = "intent_examples.json"
# never taken from the classifier for the knowledge base: fixed turns and entity-led intents
KEPT_INTENTS = frozenset({"affirm", "deny", "inform_order_id", "provide_contact", "greet"})


def _alone_verdict(message: Message) -> tuple[str | None, float]:
    """:class:`IntentsAlone`'s intent for ``message`` and its confidence (None: it has no
    verdict, or it did not understand the message either)."""
    intent = (message.get(ALONE_FIELD) or {}).get("intent") or {}
    name = intent.get("name")
    if not name or name == "nlu_fallback":
        return None, 0.0
    return str(name), float(intent.get("confidence") or 0)


def _selector_confidences(message: Message) -> dict[str, float]:
    """The ResponseSelector's confidence per entry (``kb12`` -> 0.8) for ``message``."""
    from xiaoer.knowledge.store import RETRIEVAL_INTENT

    chosen = (message.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    out: dict[str, float] = {}
    for r in chosen.get("ranking") or []:
        key = str(r.get("intent_response_key") or "").partition("/")[2]
        if key:
            out[key] = float(r.get("confidence") or 0)
    return out


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class IntentsAlone(DIETClassifier):
    """DIET trained on the existing intents alone, without the knowledge base's questions.

    The retrieval intent ``faq`` gathers every entry's phrasings, many topics in one label,
    and a classifier trained with it is less sure of some existing intents' messages than
    one trained without (tests/nlu/heldout.yml: about two points fall back to "not
    understood"). This second classifier leaves the message's intent as it is and records
    its own verdict in ``intents_alone``; :class:`KnowledgeMatcher` takes it when the first
    one did not understand a message that is no entry's. Trained only when the knowledge
    base has entries (without them it would learn the same as the first)."""

    def train(self, training_data: TrainingData) -> Resource:
        from xiaoer.knowledge.store import RETRIEVAL_INTENT

        examples = training_data.training_examples
        if not any(m.get(INTENT) == RETRIEVAL_INTENT and m.get(TEXT) for m in examples):
            return self._resource  # no entry: nothing to learn apart
        alone = TrainingData(
            [m for m in examples if m.get(INTENT) != RETRIEVAL_INTENT],
            entity_synonyms=training_data.entity_synonyms,
            regex_features=training_data.regex_features,
            lookup_tables=training_data.lookup_tables,
        )
        return super().train(alone)

    def process(self, messages: list[Message]) -> list[Message]:
        if self.model is None:
            return messages
        for message in messages:
            intent, ranking = message.get(INTENT), message.get(INTENT_RANKING_KEY)
            super().process([message])
            alone = {
                "intent": message.get(INTENT),
                "ranking": (message.get(INTENT_RANKING_KEY) or [])[:5],
            }
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
            message.set(ALONE_FIELD, alone)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class KnowledgeMatcher(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "threshold": 90.0,
            "min_fuzzy_length": 6,
            "refresh_seconds": 3.0,
            # which entry a message classified as faq is about: the most similar example's
            # entry when at least this similar (0-100), else the ResponseSelector's choice
            "select_threshold": 20.0,
            # a message the classifier did not understand (nlu_fallback) that is at least
            # this similar to an entry's example is that entry's question
            "rescue_threshold": 25.0,
            # an existing intent below this confidence is the knowledge base's question when
            # the message is this much closer (and at least this close) to an entry's
            # examples than to the intent's own (0-100; bench/knowledge_nlu.py)
            "override_confidence": 0.98,
            "override_margin": 0.0,
            "override_similarity": 30.0,
            # ... unless some intent's example is more than this much closer than the entry's
            "override_any_margin": 15.0,
            # a message the classifier gave to faq belongs to the next intent of its ranking
            # when it is at least this much closer to that intent's examples than to any
            # entry's (0-100; bench/knowledge_nlu.py, mean over three seeds)
            "faq_back_margin": 20.0,
            # a message the classifier did not understand and no entry's is the intent of
            # the classifier trained without the knowledge base (IntentsAlone) when that one
            # is at least this sure of it
            "alone_confidence": 0.7,
            # ... and such a message is not rescued by an entry at all when that classifier is
            # at least this sure of its intent ("早安 亲", "好啊好啊": short, and some entry's
            # example resembles them), or at least alone_confidence sure and the entry's
            # example less than this similar ("价位大概在哪个区间" is not "怎么给商品写评价")
            "rescue_alone_confidence": 0.95,
            "rescue_alone_similarity": 35.0,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
        intent_examples: dict[str, list[str]] | None = None,
    ) -> None:
        from xiaoer.knowledge.answers import Matcher

        config = {**self.get_default_config(), **config}
        self._model_storage, self._resource = model_storage, resource
        self.select_threshold = float(config["select_threshold"])
        self.rescue_threshold = float(config["rescue_threshold"])
        self.override_confidence = float(config["override_confidence"])
        self.override_margin = float(config["override_margin"])
        self.override_similarity = float(config["override_similarity"])
        self.override_any_margin = float(config["override_any_margin"])
        self.faq_back_margin = float(config["faq_back_margin"])
        self.alone_confidence = float(config["alone_confidence"])
        self.rescue_alone_confidence = float(config["rescue_alone_confidence"])
        self.rescue_alone_similarity = float(config["rescue_alone_similarity"])
        self.matcher = Matcher(
            ttl=float(config["refresh_seconds"]),
            threshold=float(config["threshold"]),
            min_fuzzy_length=int(config["min_fuzzy_length"]),
            intent_examples=intent_examples,
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> KnowledgeMatcher:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> KnowledgeMatcher:
        try:
            with model_storage.read_from(resource) as directory:
                examples = json.loads((Path(directory) / EXAMPLES_FILE).read_text("utf-8"))
        except (ValueError, FileNotFoundError):
            examples = None  # a model trained before the intents' examples were kept
        return cls(config, model_storage, resource, examples)

    def train(self, training_data: TrainingData) -> Resource:
        from xiaoer.knowledge.store import RETRIEVAL_INTENT

        examples: dict[str, list[str]] = {}
        for message in training_data.intent_examples:
            intent = message.get(INTENT)
            if intent and intent != RETRIEVAL_INTENT and message.get(TEXT):
                examples.setdefault(str(intent), []).append(str(message.get(TEXT)))
        if self._model_storage is not None and self._resource is not None:
            with self._model_storage.write_to(self._resource) as directory:
                (Path(directory) / EXAMPLES_FILE).write_text(
                    json.dumps(examples, ensure_ascii=False), encoding="utf-8"
                )
        return self._resource

    def _override(self, message: Message, text: str, intent: str | None) -> Any:
        """The entry an existing intent's message is really about, or None."""
        if not intent or intent in KEPT_INTENTS or not self.matcher.intent_examples:
            return None
        if float((message.get(INTENT) or {}).get("confidence") or 0) >= self.override_confidence:
            return None
        if any(e.get("entity") in ("order_id", "case_id") for e in message.get(ENTITIES) or []):
            return None
        compared = self.matcher.compared(text, intent, _selector_confidences(message))
        if compared is None or compared.entry.score < self.override_similarity:
            return None
        if compared.entry.score - compared.intent < self.override_margin:
            return None
        if compared.any_intent - compared.entry.score > self.override_any_margin:
            return None
        return compared.entry

    def _faq_entry(self, message: Message, text: str) -> Any:
        """The entry a message the classifier gave to faq is about (the nearest, at least
        ``select_threshold`` similar), or None.

        None too when the message is much closer to the training examples of the next
        intent of the ranking than to any entry's: then it is given back to that intent
        (the retrieval intent's examples are many topics in one label, and the classifier
        takes an existing intent's message for it now and then)."""
        from xiaoer.knowledge.store import RETRIEVAL_INTENT

        ranking = [
            r
            for r in message.get(INTENT_RANKING_KEY) or []
            if r.get("name") not in (RETRIEVAL_INTENT, "nlu_fallback")
        ]
        following = ranking[0] if ranking and self.matcher.intent_examples else None
        compared = self.matcher.compared(
            text, str(following["name"]) if following else None, _selector_confidences(message)
        )
        if compared is None:
            return None
        if following is not None and compared.intent - compared.entry.score >= self.faq_back_margin:
            intent = {
                "name": following["name"],
                "confidence": float(following.get("confidence") or 0),
                "knowledge_base_declined": round(compared.entry.score, 2),
            }
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking[1:]], add_to_output=True)
            return None
        return compared.entry if compared.entry.score >= self.select_threshold else None

    def _rescue(self, message: Message, text: str) -> Any:
        """The entry of a message the classifier did not understand: the nearest, when it
        is at least ``rescue_threshold`` similar and the classifier trained without the
        knowledge base (:class:`IntentsAlone`) does not know the message better."""
        name, confidence = _alone_verdict(message)
        if name and confidence >= self.rescue_alone_confidence:
            return None  # sure of an intent: no entry is compared at all
        found = self.matcher.nearest(text, _selector_confidences(message))
        if found is None or found.score < self.rescue_threshold:
            return None
        if name and confidence >= self.alone_confidence:
            return found if found.score >= self.rescue_alone_similarity else None
        return found

    def _understood_alone(self, message: Message) -> None:
        """The intent of the classifier trained without the knowledge base, for a message
        the one trained with it did not understand and no entry claims."""
        name, confidence = _alone_verdict(message)
        if not name or confidence < self.alone_confidence:
            return
        alone = message.get(ALONE_FIELD) or {}
        verdict = {"name": name, "confidence": confidence, "classifier": "intents_alone"}
        message.set(INTENT, verdict, add_to_output=True)
        message.set(
            INTENT_RANKING_KEY, [verdict, *alone.get("ranking", [])[1:]], add_to_output=True
        )

    def process(self, messages: list[Message]) -> list[Message]:
        from xiaoer.knowledge.store import RETRIEVAL_INTENT

        if os.environ.get(OFF_ENV) == "1":  # checking what the model itself learnt
            return messages
        for message in messages:
            metadata = message.get("metadata")
            if isinstance(metadata, dict) and metadata.get(MODEL_CHECK_FLAG):
                continue  # a new model's probe: what the model itself learnt
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get("name")
            try:
                found = self.matcher.match(text)
                how = "exact"
                if found is None and intent == RETRIEVAL_INTENT:
                    found, how = self._faq_entry(message, text), "similar"
                elif found is None and intent == "nlu_fallback":
                    found, how = self._rescue(message, text), "similar"
                elif found is None:
                    found = self._override(message, text, intent)
                    how = "closer"
            except Exception:  # noqa: BLE001 - the knowledge base must not stop the NLU
                logger.exception("knowledge base matcher unavailable")
                return messages
            if found is None:
                if intent == "nlu_fallback":
                    self._understood_alone(message)
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
