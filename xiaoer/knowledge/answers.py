"""Answering from the knowledge base at run time.

* :func:`answer_for`: the entry that answers a predicted ``faq/kb<id>``, read from the
  store at answer time (an edited answer or a switched-off entry is live at once); among
  entries of the same question for different products, the one of the product in focus.
* :class:`Matcher`: until a retrain has taught the model a new entry, its exact or
  near-exact phrasings are recognised here (rapidfuzz over normalised text), by the NLU
  component :class:`xiaoer.nlu.knowledge.KnowledgeMatcher`.
* :func:`describe`: the entry behind an intent / response key / parse result, for the
  console's test chat ("which entry answered").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process

from xiaoer.knowledge.store import (
    RETRIEVAL_INTENT,
    Entry,
    KnowledgeStore,
    get_knowledge_store,
    match_key,
    parse_key,
)
from xiaoer.text.normalize import normalize_message_text


def answer_for(
    key: str, product: str | None = None, store: KnowledgeStore | None = None
) -> Entry | None:
    """The enabled entry answering ``key`` (``faq/kb12`` or ``kb12``) for ``product``."""
    store = store or get_knowledge_store()
    entry = store.by_key(key)
    if entry is None:
        return None
    siblings = [
        e
        for e in store.all(enabled_only=True)
        if e.question_key == entry.question_key and e.id != entry.id
    ]
    candidates = [entry, *siblings] if entry.enabled else siblings
    if not candidates:
        return None
    if product:
        for e in candidates:
            if e.product == product:
                return e
    for e in candidates:
        if not e.product:
            return e
    return candidates[0] if entry.enabled or not product else None


def response_key(parse_data: dict[str, Any] | None) -> str | None:
    """The ``faq/kb<id>`` a parse result (a tracker's ``latest_message``) selected."""
    if not parse_data:
        return None
    intent = (parse_data.get("intent") or {}).get("name")
    if intent != RETRIEVAL_INTENT:
        return None
    selector = parse_data.get("response_selector") or {}
    chosen = selector.get(RETRIEVAL_INTENT) or selector.get("default") or {}
    key = (chosen.get("response") or {}).get("intent_response_key")
    return str(key) if key else None


def describe(what: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The entry (``Entry.as_dict()``: id, key, question, answer, category, product,
    enabled, edit_url…) behind ``faq/kb12``, ``kb12``, ``utter_faq/kb12`` or a parse
    result; None when it is no knowledge-base answer or the entry is gone."""
    key = response_key(what) if isinstance(what, dict) else what
    if not key or parse_key(key) is None:
        return None
    entry = get_knowledge_store().by_key(key)
    return entry.as_dict() if entry else None


@dataclass(frozen=True)
class Match:
    entry_id: int
    key: str
    score: float
    phrasing: str


class Matcher:
    """Near-exact phrasings of the enabled entries, refreshed from the store every
    ``ttl`` seconds (so a new entry is matched within seconds, a switched-off one no
    longer)."""

    def __init__(
        self,
        store: KnowledgeStore | None = None,
        ttl: float = 3.0,
        threshold: float = 90.0,
        min_fuzzy_length: int = 6,
    ) -> None:
        self._store = store
        self.ttl = ttl
        self.threshold = threshold
        self.min_fuzzy_length = min_fuzzy_length
        self._loaded = -1e9
        self._choices: dict[str, tuple[int, str]] = {}  # match key -> (entry id, phrasing)
        self._index: Any = None  # (vectorizer, matrix, [(entry id, phrasing)]) for nearest()
        self._lock = threading.Lock()

    @property
    def store(self) -> KnowledgeStore:
        if self._store is None:
            self._store = get_knowledge_store()
        return self._store

    def _refresh(self) -> dict[str, tuple[int, str]]:
        now = time.monotonic()
        if now - self._loaded < self.ttl:
            return self._choices
        with self._lock:
            if now - self._loaded >= self.ttl:
                choices: dict[str, tuple[int, str]] = {}
                for entry in self.store.all(enabled_only=True):
                    for text in entry.examples():
                        choices.setdefault(
                            match_key(normalize_message_text(text)), (entry.id or 0, text)
                        )
                choices.pop("", None)
                self._choices = choices
                self._index = None
                self._loaded = now
        return self._choices

    def match(self, text: str) -> Match | None:
        choices = self._refresh()
        if not choices:
            return None
        query = match_key(normalize_message_text(text))
        if not query:
            return None
        exact = choices.get(query)
        if exact is not None:
            return Match(exact[0], f"kb{exact[0]}", 100.0, exact[1])
        if len(query) < self.min_fuzzy_length:
            return None
        found = process.extractOne(
            query, list(choices), scorer=fuzz.ratio, score_cutoff=self.threshold
        )
        if found is None:
            return None
        entry_id, phrasing = choices[found[0]]
        return Match(entry_id, f"kb{entry_id}", float(found[1]), phrasing)

    def nearest(self, text: str) -> Match | None:
        """The entry with the most similar example (cosine of character 1-2-gram TF-IDF
        vectors of the normalised texts; score 0-100), whatever the score.

        Chosen by measurement over the ResponseSelector to pick *which* entry a question
        the classifier recognised as ``faq`` is about: with 3-5 phrasings per entry the
        selector, trained on the entries' keys, picked the right one of 187 entries for 45%
        of unseen paraphrases, this nearest neighbour for 91% (bench/knowledge.py)."""
        choices = self._refresh()
        if not choices:
            return None
        index = self._index
        if index is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            keys = list(choices)
            vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
            index = (vectorizer, vectorizer.fit_transform(keys), [choices[k] for k in keys])
            self._index = index
        vectorizer, matrix, owners = index
        query = match_key(normalize_message_text(text))
        if not query:
            return None
        scores = (vectorizer.transform([query]) @ matrix.T).toarray()[0]
        best = int(scores.argmax())
        entry_id, phrasing = owners[best]
        return Match(entry_id, f"kb{entry_id}", round(float(scores[best]) * 100, 2), phrasing)
