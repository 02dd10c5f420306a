"""Which phrasings of the knowledge base would collide with what the model already learns.

A phrasing (or standard question) collides when, normalised (:func:`match_key`), it equals
an example of an existing intent in ``data/nlu/`` or a phrasing of another entry: the model
could not learn both, and the merchant is shown the colliding examples instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from xiaoer.core.labels import INTENTS
from xiaoer.knowledge.store import Entry, match_key

_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def strip_annotations(example: str) -> str:
    """``[跑鞋]{"entity": ...}发了没`` -> ``跑鞋发了没``."""
    return _ANNOTATION.sub(r"\1", example)


def nlu_dir() -> Path:
    from xiaoer.core.config import PROJECT_ROOT

    return PROJECT_ROOT / "data" / "nlu"


@lru_cache(maxsize=4)
def _intent_examples(directory: str, stamp: float) -> dict[str, tuple[str, str]]:
    """match key -> (intent, example) of every example under ``directory``."""
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(Path(directory).rglob("*.yml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in raw.get("nlu") or []:
            if not isinstance(item, dict) or "intent" not in item:
                continue
            for line in str(item.get("examples") or "").splitlines():
                line = line.strip()
                if not line.startswith("- "):
                    continue
                example = strip_annotations(line[2:].strip())
                key = match_key(example)
                if key:
                    out.setdefault(key, (str(item["intent"]), example))
    return out


def intent_examples(directory: Path | None = None) -> dict[str, tuple[str, str]]:
    """The examples of the project's intents, by match key (cached until a file changes)."""
    directory = directory or nlu_dir()
    stamp = max((p.stat().st_mtime for p in directory.rglob("*.yml")), default=0.0)
    return _intent_examples(str(directory), stamp)


@dataclass(frozen=True)
class Collision:
    phrasing: str  # the entry's text that collides
    with_intent: str = ""  # an existing intent...
    with_entry: str = ""  # ...or another entry's standard question
    example: str = ""  # the colliding example, as written there
    flow: str = ""  # the model gives the phrasing to this flow (its Chinese name)
    confidence: float = 0.0

    def message(self) -> str:
        if self.flow:
            return f"「{self.phrasing}」已有流程会回答：{self.flow}"
        if self.with_intent:
            label = INTENTS.get(self.with_intent, self.with_intent)  # the merchant's words
            return f"「{self.phrasing}」与已有意图「{label}」的例句「{self.example}」冲突"
        return f"「{self.phrasing}」与知识库条目「{self.with_entry}」的问法「{self.example}」冲突"

    def as_dict(self) -> dict[str, str]:
        return {
            "phrasing": self.phrasing,
            "intent": self.with_intent,
            "entry": self.with_entry,
            "example": self.example,
            "flow": self.flow,
            "message": self.message(),
        }


class CollisionIndex:
    """The intents' examples and the entries' phrasings, to check new entries against.

    Entries are identified by their standard question and product (``ident``): an entry
    never collides with itself, and an import replaces an entry's phrasings with the
    file's before checking the next row (:meth:`replace`)."""

    def __init__(self, intents: dict[str, tuple[str, str]]) -> None:
        self.intents = intents
        self.phrasings: dict[
            str, tuple[tuple[str, str], str, str]
        ] = {}  # key -> ident, question, text

    @staticmethod
    def ident(entry: Entry) -> tuple[str, str]:
        return (entry.question_key, entry.product)

    @classmethod
    def build(
        cls, entries: Iterable[Entry], skip_id: int | None = None, nlu: Path | None = None
    ) -> CollisionIndex:
        index = cls(intent_examples(nlu))
        for entry in entries:
            if skip_id is not None and entry.id == skip_id:
                continue
            index.add(entry)
        return index

    def add(self, entry: Entry) -> None:
        ident = self.ident(entry)
        for text in entry.examples():
            self.phrasings.setdefault(match_key(text), (ident, entry.question, text))

    def replace(self, entry: Entry) -> None:
        ident = self.ident(entry)
        self.phrasings = {k: v for k, v in self.phrasings.items() if v[0] != ident}
        self.add(entry)

    def collisions(self, entry: Entry) -> list[Collision]:
        ident = self.ident(entry)
        found: list[Collision] = []
        for text in entry.examples():
            key = match_key(text)
            if key in self.intents:
                intent, example = self.intents[key]
                found.append(Collision(text, with_intent=intent, example=example))
                continue
            other = self.phrasings.get(key)
            if other is not None and other[0] != ident:
                # the same question for another product is no collision: the product decides
                if other[0][0] == ident[0]:
                    continue
                found.append(Collision(text, with_entry=other[1], example=other[2]))
        return found
