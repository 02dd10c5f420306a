"""Yes/no product questions ("能放洗碗机吗", "会缩水吗") answered from catalogue facts.

Each product may carry ``traits``: {trait: {"answer": "yes"|"no"|"unknown", "note": …}}
(demo shop: xiaoer/shop/demo_data.py). A question is mapped to a trait by keywords; a
trait the catalogue does not state is "unknown": the bot says it is not sure and asks a
colleague instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# trait -> (what the customer reads, keywords of the question)
TRAITS: dict[str, tuple[str, re.Pattern[str]]] = {
    "dishwasher_safe": ("可以用洗碗机", re.compile(r"洗碗机")),
    "microwave_safe": ("可以放微波炉", re.compile(r"微波")),
    "machine_washable": ("可以机洗", re.compile(r"机洗|洗衣机")),
    "shrinks": ("会缩水", re.compile(r"缩水|缩不缩|会缩")),
    "waterproof": ("防水", re.compile(r"防水|防不防水|漏水|渗水|下雨")),
    "pure_cotton": ("是100%纯棉", re.compile(r"纯棉|全棉|100%棉|百分百棉|含棉|涤纶|化纤")),
    "fades": ("会掉色", re.compile(r"掉色|褪色|掉不掉色")),
    "breathable": ("透气", re.compile(r"透气|闷脚|闷不闷")),
}


@dataclass(frozen=True)
class TraitAnswer:
    trait: str
    label: str
    answer: str  # yes | no | unknown
    note: str


def asked_traits(text: str) -> list[str]:
    return [trait for trait, (_, pattern) in TRAITS.items() if pattern.search(text or "")]


def answer_traits(traits: dict[str, Any], text: str) -> list[TraitAnswer]:
    """One answer per trait asked about in ``text`` (empty: not an attribute question)."""
    answers = []
    for trait in asked_traits(text):
        fact = traits.get(trait) or {}
        answer = str(fact.get("answer") or "unknown")
        if answer not in {"yes", "no"}:
            answer = "unknown"
        answers.append(TraitAnswer(trait, TRAITS[trait][0], answer, str(fact.get("note") or "")))
    return answers
