"""The import's model check: questions the assistant already answers from shop data.

The textual check (:mod:`xiaoer.knowledge.collisions`) only sees a phrasing equal to an
existing example. A knowledge-base entry about invoices, address changes or delivery
worded differently still teaches the model to take such messages away from the flow that
answers them from the shop's data (the issue: answers that depend on shop data stay linked
to it). So, when a model is available, every text of an imported entry (question and
phrasings) is classified by the current model; an entry with a text classified with
confidence as one of the shop's business intents — the standard question, or at least half
of its texts — is refused as a collision ("已有流程会回答：问发票"), with the texts concerned.

The model is the running assistant's (``POST /model/parse`` on the Rasa server with the API
token, :func:`running_classifier`); without a server answering, the import runs the
textual check only and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

# a text classified as one of these with at least this confidence is the flow's question
# (``knowledge.flow_confidence`` of xiaoer.yml overrides it)
CONFIDENCE = 0.9
# the business intents (flows answering from the shop's data or taking an action); shown
# to the merchant by their Chinese labels (xiaoer/core/labels.py). Chit-chat, out_of_scope
# and the knowledge base itself are not here
BUSINESS_INTENTS = frozenset({
    "order_status", "shipping_time", "urge_shipment", "change_address", "cancel_order",
    "inform_order_id", "return_goods", "refund", "exchange", "return_policy",
    "quality_issue", "ask_price", "ask_discount", "ask_size", "ask_stock", "product_info",
    "ask_shipping", "ask_invoice", "provide_contact", "ask_wholesale", "ask_service_hours",
    "how_to_buy", "ask_comment_one", "ask_lucky_bag", "ask_live_link", "request_human",
    "complain",
})  # fmt: skip

Verdict = tuple[str, float]  # intent, confidence
Classify = Callable[[list[str]], dict[str, Verdict]]


@dataclass(frozen=True)
class FlowHit:
    text: str
    intent: str
    confidence: float

    @property
    def label(self) -> str:
        from xiaoer.core.labels import INTENTS

        return INTENTS.get(self.intent, self.intent)


def flow_hits(
    texts: Iterable[str], verdicts: dict[str, Verdict], confidence: float = CONFIDENCE
) -> list[FlowHit]:
    """The texts the model gives with at least ``confidence`` to a business intent (a flow
    answering from the shop's data or taking an action). Product questions included, with
    or without a product: letting the catalogue's questions into the knowledge base cost
    the existing intents 2.4 heldout points for 21 more entries (bench/knowledge_nlu.py)."""
    hits = []
    for text in texts:
        intent, score = verdicts.get(text, ("", 0.0))
        if intent in BUSINESS_INTENTS and score >= confidence:
            hits.append(FlowHit(text, intent, score))
    return hits


def confidence() -> float:
    from xiaoer.core.config import get_settings

    value = get_settings().section("knowledge").get("flow_confidence")
    return float(value) if value is not None else CONFIDENCE


def flow_collision(
    question: str,
    texts: list[str],
    verdicts: dict[str, Verdict],
    threshold: float | None = None,
) -> list[FlowHit]:
    """The hits that make the entry a flow's question: its standard question is one, or at
    least half of its texts are (one phrasing of five is the classifier's noise)."""
    hits = flow_hits(texts, verdicts, confidence() if threshold is None else threshold)
    if any(h.text == question for h in hits) or (texts and 2 * len(hits) >= len(texts)):
        return hits
    return []


def refusal(hits: list[FlowHit]) -> str:
    """What the merchant reads when an entry is refused as a flow's question."""
    flows = "、".join(dict.fromkeys(h.label for h in hits))
    return (
        f"已有流程会回答：{flows}（"
        + "、".join(f"「{h.text}」" for h in hits)
        + "），这类问题按店铺数据回答，请不要写进知识库"
    )


def new_texts(question: str, texts: list[str], before: list[str] | None) -> list[str]:
    """The texts of an entry not already in its saved version (those were checked then)."""
    from xiaoer.knowledge.store import match_key

    if before is None:
        return texts
    known = {match_key(x) for x in before}
    return [t for t in texts if match_key(t) not in known]


def check_entry(
    question: str,
    texts: list[str],
    before: list[str] | None,
    classify: Classify | None,
) -> list[FlowHit]:
    """The model check of one entry (its texts; ``before``: the saved version's texts)."""
    fresh = new_texts(question, texts, before)
    if classify is None or not fresh:
        return []
    return flow_collision(question, fresh, classify(fresh))


class ServerClassifier:
    """Classify texts with the model of a running Rasa server (a few requests at a time)."""

    def __init__(self, url: str, token: str, parallel: int = 4, timeout: float = 30) -> None:
        self.url, self.token = url.rstrip("/"), token
        self.parallel, self.timeout = parallel, timeout

    def available(self) -> bool:
        try:
            r = requests.get(f"{self.url}/status", params={"token": self.token}, timeout=5)
        except requests.RequestException:
            return False
        return r.status_code == 200

    def _one(self, text: str) -> Verdict:
        r = requests.post(f"{self.url}/model/parse", params={"token": self.token},
                         json={"text": text}, timeout=self.timeout)  # fmt: skip
        r.raise_for_status()
        intent = r.json().get("intent") or {}
        return str(intent.get("name") or ""), float(intent.get("confidence") or 0.0)

    def __call__(self, texts: list[str]) -> dict[str, Verdict]:
        unique = list(dict.fromkeys(t for t in texts if t))
        with ThreadPoolExecutor(self.parallel) as pool:
            return dict(zip(unique, pool.map(self._one, unique), strict=True))


def running_classifier() -> ServerClassifier | None:
    """The running assistant's model, or None when no Rasa server answers."""
    from xiaoer.core.rasa_api import rasa_url
    from xiaoer.core.security import api_token

    try:
        classifier = ServerClassifier(rasa_url(), api_token())
    except Exception:  # noqa: BLE001 - no token or no configured server: no model check
        log.info("no running assistant configured: import without the model check")
        return None
    return classifier if classifier.available() else None
