"""The knowledge base as Rasa training data, generated at training time (never in data/).

Each enabled entry is a retrieval intent ``faq/kb<id>`` whose examples are its standard
question and phrasings (entries of the same question for different products share the
intent of the first one: the answer action picks the product's entry). The generated
folder holds:

* ``domain/``: the project's domain.yml and ``knowledge.yml`` (intent ``faq``, action
  ``action_kb_answer``), so ``rasa train --domain`` merges them;
* ``data/knowledge_nlu.yml``: the examples; ``data/knowledge_rules.yml``: the rule
  "intent faq -> action_kb_answer" (the answer is read from the store at answer time).

The ``faq`` intent and its rule are generated even with no entry, so that a model trained
before the first import already answers what the run-time matcher recognises.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from xiaoer.knowledge.store import RETRIEVAL_INTENT, Entry

ANSWER_ACTION = "action_kb_answer"


@dataclass(frozen=True)
class TrainingInputs:
    domain: Path  # a folder: the project's domain and the knowledge base's
    data: list[Path]  # the project's data/ and the generated data
    entries: int  # retrieval intents generated


KNOWLEDGE_NLU_FILE = "knowledge_nlu.yml"  # the entries' phrasings


def _example(text: str) -> str:
    # no Rasa entity annotations inside a merchant's text, one line each
    return " ".join(text.replace("[", "【").replace("]", "】").split())


def intents_of(entries: Iterable[Entry]) -> dict[str, list[str]]:
    """retrieval intent (``faq/kb<id>``) -> examples, for the enabled entries."""
    groups: dict[str, str] = {}  # question key -> intent
    out: dict[str, list[str]] = {}
    for entry in sorted((e for e in entries if e.enabled), key=lambda e: e.id or 0):
        intent = groups.setdefault(entry.question_key, entry.intent)
        examples = out.setdefault(intent, [])
        for text in entry.examples():
            line = _example(text)
            if line and line not in examples:
                examples.append(line)
    return out


def write_inputs(out: Path, entries: Iterable[Entry], root: Path) -> TrainingInputs:
    """Write the generated training files under ``out`` (replacing earlier ones)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "domain").mkdir(parents=True)
    (out / "data").mkdir()
    shutil.copyfile(root / "domain.yml", out / "domain" / "domain.yml")
    header = "# generated from the knowledge base at training time: do not edit\n"
    # declared as Rasa declares a retrieval intent with entries (the intent's flag, the
    # retrieval action utter_faq), so the dialogue policies see the same domain with or
    # without entries: a knowledge-base change retrains the NLU only (Rasa's cache)
    domain = {
        "version": "3.1",
        "intents": [{RETRIEVAL_INTENT: {"is_retrieval_intent": True}}],
        "actions": [ANSWER_ACTION, f"utter_{RETRIEVAL_INTENT}"],
    }
    (out / "domain" / "knowledge.yml").write_text(
        header + yaml.safe_dump(domain, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    intents = intents_of(entries)
    nlu = {
        "version": "3.1",
        "nlu": [
            {"intent": name, "examples": "".join(f"- {e}\n" for e in examples)}
            for name, examples in intents.items()
        ],
    }
    (out / "data" / KNOWLEDGE_NLU_FILE).write_text(
        header + yaml.safe_dump(nlu, allow_unicode=True, sort_keys=False, width=1000),
        encoding="utf-8",
    )
    rules = {
        "version": "3.1",
        "rules": [
            {
                "rule": "knowledge base answers",
                "steps": [{"intent": RETRIEVAL_INTENT}, {"action": ANSWER_ACTION}],
            }
        ],
    }
    (out / "data" / "knowledge_rules.yml").write_text(
        header + yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return TrainingInputs(out / "domain", [root / "data", out / "data"], len(intents))
