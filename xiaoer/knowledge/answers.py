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
    longer).

    ``intent_examples`` (intent -> training examples, kept by the trained NLU component)
    lets :meth:`compared` say how close a message is to an existing intent's own
    examples, in the same vector space as the entries'."""

    # which entry a message is about: the best example's similarity, plus these shares of
    # the similarity to the entry's answer and to all its phrasings together (measured on
    # blind paraphrases: bench/knowledge_nlu.py)
    ANSWER_WEIGHT = 0.3
    ENTRY_WEIGHT = 0.5
    # ... and this share of the ResponseSelector's confidence in the entry, when given
    # (chosen on the development paraphrases, bench/data/blind-dev/)
    SELECTOR_WEIGHT = 0.5

    def __init__(
        self,
        store: KnowledgeStore | None = None,
        ttl: float = 3.0,
        threshold: float = 90.0,
        min_fuzzy_length: int = 6,
        intent_examples: dict[str, list[str]] | None = None,
    ) -> None:
        self._store = store
        self.ttl = ttl
        self.threshold = threshold
        self.min_fuzzy_length = min_fuzzy_length
        self.intent_examples = {
            intent: [k for k in (match_key(normalize_message_text(t)) for t in texts) if k]
            for intent, texts in (intent_examples or {}).items()
        }
        self._loaded = -1e9
        self._choices: dict[str, tuple[int, str]] = {}  # match key -> (entry id, phrasing)
        self._entries: dict[int, tuple[str, str]] = {}  # entry id -> (answer, all phrasings)
        self._index: _Index | None = None
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
                entries: dict[int, tuple[str, str]] = {}
                for entry in self.store.all(enabled_only=True):
                    keys = []
                    for text in entry.examples():
                        key = match_key(normalize_message_text(text))
                        choices.setdefault(key, (entry.id or 0, text))
                        keys.append(key)
                    entries[entry.id or 0] = (
                        match_key(normalize_message_text(entry.answer or "")),
                        " ".join(k for k in keys if k),
                    )
                choices.pop("", None)
                if choices != self._choices or entries != self._entries:
                    self._index = None
                self._choices, self._entries = choices, entries
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

    def _built(self) -> _Index | None:
        choices = self._refresh()
        if not choices:
            return None
        index = self._index
        if index is None:
            with self._lock:
                index = self._index = _Index.build(choices, self._entries, self.intent_examples)
        return index

    def nearest(self, text: str, selector: dict[str, float] | None = None) -> Match | None:
        """The entry a message is most likely about, whatever the score.

        Cosine similarities of character 1-2-gram TF-IDF vectors of the normalised texts:
        the entry whose example, answer and phrasings together are closest wins; the score
        (0-100) is the similarity of the closest example of any entry (how much the
        message resembles the knowledge base at all).

        Chosen by measurement over the ResponseSelector to pick *which* entry a question
        the classifier recognised as ``faq`` is about: with 3-5 phrasings per entry the
        selector picked the right one for 63% of blind paraphrases, the closest example
        for 94%, with the answer and the phrasings together 95.5% (bench/knowledge_nlu.py).
        ``selector`` (entry key ``kb12`` -> the ResponseSelector's confidence) adds that
        evidence too, weighted by :attr:`SELECTOR_WEIGHT`: the two are wrong on different
        messages (development paraphrases 63.9% -> 65.8%, mean over three trainings)."""
        index = self._built()
        query = match_key(normalize_message_text(text))
        if index is None or not query:
            return None
        return index.nearest(index.vectorizer.transform([query]), selector)

    def compared(
        self, text: str, intent: str | None = None, selector: dict[str, float] | None = None
    ) -> Comparison | None:
        """How ``text`` compares with the knowledge base and the intents' training examples,
        all in one space (0-100): the nearest entry, the similarity to ``intent``'s closest
        example and to the closest example of any intent. None without entries."""
        index = self._built()
        query = match_key(normalize_message_text(text))
        if index is None or not query:
            return None
        vector = index.vectorizer.transform([query])
        return Comparison(
            index.nearest(vector, selector),
            index.intent_similarity(vector, intent) if intent else 0.0,
            index.closest_intent_similarity(vector),
        )


@dataclass(frozen=True)
class Comparison:
    entry: Match  # the nearest entry (its score: the closest example of any entry)
    intent: float  # the closest training example of the intent asked about
    any_intent: float  # the closest training example of any intent


@dataclass
class _Index:
    vectorizer: Any
    examples: Any  # matrix: one row per example
    owners: list[tuple[int, str]]  # (entry id, phrasing) per example row
    entry_ids: list[int]
    answers: Any  # matrix: one row per entry
    phrasings: Any  # matrix: one row per entry
    intents: dict[str, Any]  # intent -> matrix of its examples
    all_intents: Any  # the same rows stacked: every intent's examples (None without any)

    @classmethod
    def build(
        cls,
        choices: dict[str, tuple[int, str]],
        entries: dict[int, tuple[str, str]],
        intent_examples: dict[str, list[str]],
    ) -> _Index:
        from sklearn.feature_extraction.text import TfidfVectorizer

        keys = list(choices)
        ids = list(entries)
        answers = [entries[i][0] or " " for i in ids]
        phrasings = [entries[i][1] or " " for i in ids]
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
        vectorizer.fit(keys + answers + phrasings)
        from scipy.sparse import vstack

        intents = {i: vectorizer.transform(t) for i, t in intent_examples.items() if t}
        return cls(
            vectorizer,
            vectorizer.transform(keys),
            [choices[k] for k in keys],
            ids,
            vectorizer.transform(answers),
            vectorizer.transform(phrasings),
            intents,
            vstack(list(intents.values())).tocsr() if intents else None,
        )

    def nearest(self, vector: Any, selector: dict[str, float] | None = None) -> Match:
        scores = (vector @ self.examples.T).toarray()[0]
        best_example: dict[int, tuple[float, str]] = {}
        for (entry_id, phrasing), score in zip(self.owners, scores, strict=True):
            if score > best_example.get(entry_id, (-1.0, ""))[0]:
                best_example[entry_id] = (float(score), phrasing)
        answers = (vector @ self.answers.T).toarray()[0]
        together = (vector @ self.phrasings.T).toarray()[0]
        selector = selector or {}
        combined = {
            entry_id: best_example.get(entry_id, (0.0, ""))[0]
            + Matcher.ANSWER_WEIGHT * float(answer)
            + Matcher.ENTRY_WEIGHT * float(all_of_them)
            + Matcher.SELECTOR_WEIGHT * selector.get(f"kb{entry_id}", 0.0)
            for entry_id, answer, all_of_them in zip(self.entry_ids, answers, together, strict=True)
        }
        entry_id = max(combined, key=lambda i: (combined[i], -i))
        score = max(s for s, _ in best_example.values()) if best_example else 0.0
        phrasing = best_example.get(entry_id, (0.0, ""))[1]
        return Match(entry_id, f"kb{entry_id}", round(score * 100, 2), phrasing)

    def closest_intent_similarity(self, vector: Any) -> float:
        if self.all_intents is None:
            return 0.0
        return round(float((vector @ self.all_intents.T).max()) * 100, 2)

    def intent_similarity(self, vector: Any, intent: str) -> float:
        matrix = self.intents.get(intent)
        if matrix is None:
            return 0.0
        scores = (vector @ matrix.T).toarray()[0]
        return round(float(scores.max()) * 100, 2) if len(scores) else 0.0
