"""Contact capture as a Rasa graph component: ``phone`` and ``wechat`` entities.

Runs on every message whatever its intent. Values are normalised by
``xiaoer.text.contacts.find_contacts`` (phone: 11 ASCII digits; wechat: the id as written, or
the 11 digits when the WeChat is the phone number); offsets point into the original
message. An entity already present with the same type and span (from DIET or another
extractor) is not added twice.

One intent correction: a message with a phone or WeChat and no order id cannot be
``inform_order_id`` (order ids have 16-19 digits; DIET's character features cannot count
digits, and a bare "13912345678" looks like an order number to it): such a message is
``provide_contact`` (config ``fix_order_id_intent``, on by default).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from xiaoer.text.contacts import find_contacts

CONTACT_ENTITIES = ("phone", "wechat")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ContactExtractor(GraphComponent, EntityExtractorMixin):
    """Deterministic extractor for mainland mobile numbers and WeChat ids."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"entities": list(CONTACT_ENTITIES), "fix_order_id_intent": True}

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ContactExtractor:
        return cls(config)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ContactExtractor:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            existing = message.get(ENTITIES, [])
            present = {
                (
                    e.get(ENTITY_ATTRIBUTE_TYPE),
                    e.get(ENTITY_ATTRIBUTE_START),
                    e.get(ENTITY_ATTRIBUTE_END),
                )
                for e in existing
            }
            found = [
                e
                for e in self.extract(text)
                if (e[ENTITY_ATTRIBUTE_TYPE], e[ENTITY_ATTRIBUTE_START], e[ENTITY_ATTRIBUTE_END])
                not in present
            ]
            entities = existing + self.add_extractor_name(found)
            message.set(ENTITIES, entities, add_to_output=True)
            if self._config["fix_order_id_intent"]:
                self._fix_intent(message, entities)
        return messages

    @staticmethod
    def _fix_intent(message: Message, entities: list[dict[str, Any]]) -> None:
        intent = message.get(INTENT) or {}
        if intent.get(INTENT_NAME_KEY) != "inform_order_id":
            return
        kinds = {e.get(ENTITY_ATTRIBUTE_TYPE) for e in entities}
        if "order_id" in kinds or not kinds & set(CONTACT_ENTITIES):
            return
        fixed = {**intent, INTENT_NAME_KEY: "provide_contact"}
        message.set(INTENT, fixed, add_to_output=True)
        ranking = message.get(INTENT_RANKING_KEY)
        if ranking:
            replaced = ("provide_contact", "inform_order_id")
            rest = [r for r in ranking if r.get(INTENT_NAME_KEY) not in replaced]
            message.set(INTENT_RANKING_KEY, [fixed, *rest], add_to_output=True)

    def extract(self, text: str) -> list[dict[str, Any]]:
        wanted = set(self._config["entities"])
        return [
            {
                ENTITY_ATTRIBUTE_TYPE: contact.kind,
                ENTITY_ATTRIBUTE_START: contact.start,
                ENTITY_ATTRIBUTE_END: contact.end,
                ENTITY_ATTRIBUTE_VALUE: contact.value,
                "confidence_entity": 1.0,
            }
            for contact in find_contacts(text)
            if contact.kind in wanted
        ]
