"""Entity extraction for shop messages: order ids, products, colours and sizes.

* ``order_id``: 16-19 digits, spaces or dashes allowed inside, or the same in Chinese
  numerals (六九三八...); every one in the message, in order; value: digits only.
* ``case_id``: an after-sales case number ("AS20261101"); value: upper case, no spaces.
* ``product`` / ``color`` / ``size``: longest match against the catalogue lookup tables
  of the training data (``data/nlu/catalogue.yml``, generated from the shop backend by
  ``xiaoer gen-catalogue``) plus their synonyms; the value is the catalogue value
  (product id ``P1001``, ``黑色``, ``XL``).

Matching runs on the NLU's normalised text (full-width, Traditional, case, Cantonese,
homophone typos: ``xiaoer.text.normalize.normalize_message``), offsets point into the original
message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
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
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from xiaoer.text.normalize import NormalizedText, add_lexicon_terms, normalize, normalize_message
from xiaoer.text.parsing import find_body_measures, find_case_ids, find_order_ids

CATALOGUE_ENTITIES = ("product", "color", "size")
PATTERNS_FILE = "catalogue_terms.json"

_ASCII_ALNUM = re.compile(r"[0-9a-z]")
_SIZE_NUMBER = re.compile(r"(?<![0-9.])(\d{2,3})\s*(?:码|号)")
_SHORT_COLOR_FOLLOWERS = set("的款色")


def build_terms(training_data: TrainingData) -> dict[str, dict[str, str]]:
    """{entity: {normalised surface form: catalogue value}} from lookups and synonyms."""
    synonyms = {normalize(k).text: v for k, v in training_data.entity_synonyms.items()}
    terms: dict[str, dict[str, str]] = {e: {} for e in CATALOGUE_ENTITIES}
    for table in training_data.lookup_tables:
        entity = table.get("name")
        elements = table.get("elements")
        if entity not in terms or not isinstance(elements, list):
            continue
        for element in elements:
            surface = normalize(str(element)).text.strip()
            if surface:
                terms[entity][surface] = synonyms.get(surface, str(element))
    return terms


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class ShopEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Deterministic extractor for order ids and catalogue entities."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"entities": ["order_id", "case_id", *CATALOGUE_ENTITIES, "height_cm", "weight_kg"]}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        terms: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.terms = terms or {e: {} for e in CATALOGUE_ENTITIES}
        # product names (3+ characters) are read through homophone typos ("马克被")
        add_lexicon_terms(t for t in self.terms.get("product", {}) if len(t) >= 3)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ShopEntityExtractor:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ShopEntityExtractor:
        try:
            with model_storage.read_from(resource) as directory:
                terms = json.loads((Path(directory) / PATTERNS_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            terms = None
        return cls(config, model_storage, resource, terms)

    def train(self, training_data: TrainingData) -> Resource:
        self.terms = build_terms(training_data)
        add_lexicon_terms(t for t in self.terms.get("product", {}) if len(t) >= 3)
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / PATTERNS_FILE).write_text(
                json.dumps(self.terms, ensure_ascii=False, indent=1), encoding="utf-8"
            )
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            found = self.add_extractor_name(self.extract(text)) if text else []
            message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
        return messages

    # --- extraction ---------------------------------------------------------------
    def extract(self, text: str) -> list[dict[str, Any]]:
        norm = normalize_message(text)
        wanted = set(self._config["entities"])
        entities: list[dict[str, Any]] = []
        taken: list[tuple[int, int]] = []

        def add(entity: str, start: int, end: int, value: str) -> None:
            if entity not in wanted or any(s < end and start < e for s, e in taken):
                return
            taken.append((start, end))
            o_start, o_end = norm.span(start, end)
            entities.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: entity,
                    ENTITY_ATTRIBUTE_START: o_start,
                    ENTITY_ATTRIBUTE_END: o_end,
                    ENTITY_ATTRIBUTE_VALUE: value,
                    "confidence_entity": 1.0,
                }
            )

        for start, end, digits in find_order_ids(norm.text):
            add("order_id", start, end, digits)
        for start, end, case_id in find_case_ids(norm.text):
            add("case_id", start, end, case_id)
        for entity, (amount, start, end) in find_body_measures(norm.text).items():
            add(entity, start, end, f"{amount:g}")
        for m in _SIZE_NUMBER.finditer(norm.text):
            if m.group(1) in self.terms.get("size", {}):
                add("size", m.start(), m.end(), self.terms["size"][m.group(1)])
        for start, end, entity, value in self._catalogue_matches(norm):
            add(entity, start, end, value)
        return sorted(entities, key=lambda e: e[ENTITY_ATTRIBUTE_START])

    def _catalogue_matches(self, norm: NormalizedText) -> list[tuple[int, int, str, str]]:
        text = norm.text
        candidates: list[tuple[int, int, str, str]] = []
        for entity, surfaces in self.terms.items():
            for surface, value in surfaces.items():
                if entity == "size" and surface.isdigit():
                    continue  # bare numbers are heights, prices...: only "42码" counts
                for m in re.finditer(re.escape(surface), text):
                    if not self._acceptable(text, m.start(), m.end(), entity):
                        continue
                    candidates.append((m.start(), m.end(), entity, value))
        # longest match first, then leftmost
        candidates.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
        chosen: list[tuple[int, int, str, str]] = []
        for c in candidates:
            if all(c[1] <= s or c[0] >= e for s, e, _, _ in chosen):
                chosen.append(c)
        return chosen

    @staticmethod
    def _acceptable(text: str, start: int, end: int, entity: str) -> bool:
        surface = text[start:end]
        if _ASCII_ALNUM.match(surface[0]) and start > 0 and _ASCII_ALNUM.match(text[start - 1]):
            return False  # "m" in "cm", "xl" in "xxl"
        if _ASCII_ALNUM.match(surface[-1]) and end < len(text) and _ASCII_ALNUM.match(text[end]):
            return False
        if entity == "color" and len(surface) == 1:
            # "黑" alone is a colour only in "黑的", "黑款", "黑XL"...; not in "黑心"
            nxt = text[end] if end < len(text) else ""
            return nxt in _SHORT_COLOR_FOLLOWERS or bool(nxt and _ASCII_ALNUM.match(nxt))
        return True
