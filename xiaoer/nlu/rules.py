"""Entities first: a deterministic intent rule for messages DIET is unsure about.

An order number or an after-sales case number says what the customer wants even when the
words around it are unusual ("帮我查下订单 6938271045123400002", "6938271045123400002 到哪了",
a bare number): when such a message's intent is ``nlu_fallback``, below ``threshold``, or
a small-talk intent that cannot be meant with a number (greet, out_of_scope...), the
intent becomes

* ``inform_order_id`` when nothing but the order number(s) and filler words (单号, 订单号,
  亲, 的, punctuation...) is left, or
* the intent of a clear verb beside the order number (退款 / 退钱 -> refund, 退货 / 退了 /
  还能退吗 -> return_goods, 换货 -> exchange, 取消 / 撤单 -> cancel_order): "上个月买的还能退吗
  6938271045123400001" is a return, not a status question,
* ``order_status`` for an order number with other words (查 / 看 / 到哪 / 物流...),
* ``refund`` for an after-sales case number (its progress is a refund question).

Body measures (height, weight) with a size word ("165 55kg穿什么码") are a size question,
whatever product or colour the sentence also names.

Confident intents (urge_shipment, cancel_order, change_address...) are never touched,
except a general return-policy question that names an order number with a return verb
(``GENERAL_INTENTS``): that is a return of that order. The
component runs after the FallbackClassifier; the rewritten intent keeps DIET's ranking
below it.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from xiaoer.text.normalize import normalize_message
from xiaoer.text.parsing import bare_size

WEAK_INTENTS = frozenset(
    {"nlu_fallback", "greet", "goodbye", "thank", "out_of_scope", "bot_challenge"}
)
_FILLER = re.compile(
    r"(?:我的|我|的|是|订单号|订单编号|订单|单号|单子|编号|号码|号|亲亲|亲|哈|呀|啊|吧|呢|哦|喔|嗯|"
    r"这个|给你|发你|麻烦|请|[\s\W_])"
)
PRODUCT_INTENTS = frozenset({"ask_stock", "ask_price", "ask_size", "product_info"})
BODY_MEASURES = frozenset({"height_cm", "weight_kg"})
_SIZE_WORDS = re.compile(
    r"码|尺码|尺寸|多大|哪个号|什么号|穿哪|穿什么|合适|合身|size", re.IGNORECASE
)
# A clear verb beside an order number keeps its own intent (first match wins).
_VERBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"退款|退钱|钱.{0,4}退|退.{0,3}钱"), "refund"),
    (
        re.compile(r"退货|退了|退掉|退回|能退|要退|可以退|想退|退吗|退不|给我退|申请退"),
        "return_goods",
    ),
    (re.compile(r"换货|换个|换成|换一|想换|要换"), "exchange"),
    (re.compile(r"取消|撤单|撤销"), "cancel_order"),
)
# A general question about a specific order is a request about that order: "上个月买的
# 还能退吗 6938271045123400001" asks to return it (return_policy -> return_goods).
GENERAL_INTENTS = {"return_policy": "return_goods"}
RULE_CONFIDENCE = 0.9
RULE_KEY = "entity_rule"  # marks an intent set by this rule (clause splitting ignores it)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class EntityIntentRule(GraphComponent):
    """Order / case numbers decide the intent of messages DIET is unsure about."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"threshold": 0.55}

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EntityIntentRule:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            name = intent.get(INTENT_NAME_KEY)
            confidence = intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0
            entities = message.get(ENTITIES) or []
            kinds = {e.get(ENTITY_ATTRIBUTE_TYPE) for e in entities}
            if kinds & BODY_MEASURES and _SIZE_WORDS.search(message.get(TEXT) or ""):
                # "T恤 165 55kg穿什么码": body measures and a size word ask for a size,
                # whatever else the sentence names (a product, a colour)
                if name != "ask_size":
                    self._set_intent(message, "ask_size")
                continue
            if bare_size(message.get(TEXT)) and not any(
                e.get(ENTITY_ATTRIBUTE_TYPE) == "order_id" for e in entities
            ):
                # "那43呢": a size asked about as a follow-up, never an order number
                if name not in PRODUCT_INTENTS:
                    self._set_intent(message, "ask_stock")
                continue
            confident = name not in WEAK_INTENTS and confidence >= self._config["threshold"]
            if confident and name not in GENERAL_INTENTS:
                continue
            new = self.decide(message.get(TEXT) or "", entities)
            if confident and new != GENERAL_INTENTS.get(name or ""):
                continue  # a confident policy question stays one unless it names its order
            if new is not None and new != name:
                self._set_intent(message, new)
        return messages

    @staticmethod
    def decide(text: str, entities: list[dict[str, Any]]) -> str | None:
        kinds = {e.get(ENTITY_ATTRIBUTE_TYPE) for e in entities}
        if "order_id" in kinds:
            rest = list(text)
            for e in entities:
                if e.get(ENTITY_ATTRIBUTE_TYPE) == "order_id":
                    for i in range(e[ENTITY_ATTRIBUTE_START], e[ENTITY_ATTRIBUTE_END]):
                        rest[i] = " "
            words = _FILLER.sub("", normalize_message("".join(rest)).text)
            if not words:
                return "inform_order_id"
            verb = next((intent for pattern, intent in _VERBS if pattern.search(words)), None)
            return verb or "order_status"
        if "case_id" in kinds:
            return "refund"
        return None

    @staticmethod
    def _set_intent(message: Message, name: str) -> None:
        intent = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: RULE_CONFIDENCE, RULE_KEY: True}
        message.set(INTENT, intent, add_to_output=True)
        ranking = [
            r
            for r in message.get(INTENT_RANKING_KEY) or []
            if r.get(INTENT_NAME_KEY) not in (name, "nlu_fallback")
        ]
        message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
