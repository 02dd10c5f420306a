"""Live-room (直播间) link numbers: "3号链接", "三号链接", "链接2", "1号有货吗".

A small deterministic extractor, separate from the catalogue extractor: it adds a
``link_no`` entity (value: the number as digits). The merchant maps link numbers to
products in xiaoer.yml (``live_room.links``); actions/live_room.py reads the mapping.

A bare "N号" is a link only when N is small and a question about the item follows
("1号有货吗", "4号多少钱"): "42号" is a shoe size, "3号能到吗" a date.
"""

from __future__ import annotations

import re
from typing import Any

import cn2an
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
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

_NUM = r"(?:\d{1,3}|[０-９]{1,3}|[零一二两三四五六七八九十百]{1,4})"
# "3号链接", "3号宝贝", "链接3", "3号" + a question about the item
_LINK = re.compile(
    rf"(?P<a>{_NUM})\s*号\s*(?:链接|宝贝|商品|产品)"
    rf"|链接\s*(?P<b>{_NUM})(?!\s*[0-9])"
    rf"|(?<![0-9月])(?P<c>{_NUM})\s*号(?=\s*(?:有|还|多少|什么|啥|是|价|怎么|[a-zA-Z]))"
)
MAX_BARE_LINK = 30


def _number(text: str) -> int | None:
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789")).replace("两", "二")
    if text.isdigit():
        return int(text)
    try:
        value = cn2an.cn2an(text, "smart")
    except (ValueError, KeyError):
        return None
    return int(value) if float(value).is_integer() else None


def find_link_numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, link number as digits) for every link number in the message."""
    found = []
    for m in _LINK.finditer(text):
        group = next(g for g in ("a", "b", "c") if m.group(g))
        number = _number(m.group(group))
        if number is None or number <= 0:
            continue
        if group == "c" and number > MAX_BARE_LINK:
            continue
        found.append((m.start(), m.end(), str(number)))
    return found


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class LinkNumberExtractor(GraphComponent, EntityExtractorMixin):
    """Adds ``link_no`` entities (live-room link numbers)."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinkNumberExtractor:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = [
                {
                    ENTITY_ATTRIBUTE_TYPE: "link_no",
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    ENTITY_ATTRIBUTE_VALUE: value,
                    "confidence_entity": 1.0,
                }
                for start, end, value in find_link_numbers(text)
            ]
            if found:
                found = self.add_extractor_name(found)
                message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
        return messages
