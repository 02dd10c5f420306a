"""Lead categories and scores: the merchant-editable rules of ``xiaoer.yml`` ``leads``.

Category (one per lead) from the signals of all its conversations, by priority
(default: wholesale > complaint > after_sales > purchase):

* an intent listed under ``categories.intents.<category>`` gives that signal;
* a message containing one of ``categories.wholesale_keywords`` (批发, 合作, 代理...)
  gives the ``wholesale`` signal whatever its intent;
* a lead with no signal is ``purchase`` (the customer left a contact).

Score (hot / warm / cold):
``points = (sum of the weights of the DISTINCT signals and intents seen
           + contact bonus + lead-card bonus
           + min(messages * per_message, max_engagement)) * recency factor``
where the recency factor comes from the hours since the last customer message.
``points >= hot_at`` is hot, ``>= warm_at`` warm, else cold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xiaoer.core.config import get_settings

CATEGORIES = ("purchase", "wholesale", "after_sales", "complaint")
CATEGORY_LABELS = {
    "purchase": "购买意向",
    "wholesale": "批发/合作",
    "after_sales": "售后",
    "complaint": "投诉",
}
SCORES = ("hot", "warm", "cold")
SCORE_LABELS = {"hot": "热", "warm": "温", "cold": "冷"}
STATUSES = ("new", "contacted", "won", "lost")
STATUS_LABELS = {"new": "新线索", "contacted": "已联系", "won": "已成交", "lost": "已流失"}

DEFAULT_INTENTS: dict[str, list[str]] = {
    "purchase": [
        "ask_price", "ask_discount", "ask_size", "ask_stock", "product_info",
        "ask_shipping", "shipping_time", "ask_invoice",
    ],
    "after_sales": [
        "return_goods", "refund", "exchange", "quality_issue", "return_policy",
        "order_status", "urge_shipment", "change_address", "cancel_order",
    ],
    "complaint": ["complain"],
}  # fmt: skip
DEFAULT_WHOLESALE_KEYWORDS = [
    "批发", "批量", "大量", "团购", "合作", "代理", "加盟", "经销", "分销", "渠道",
    "贴牌", "代工", "定制", "采购", "拿货", "进货", "一手货源",
]  # fmt: skip
DEFAULT_PRIORITY = ["wholesale", "complaint", "after_sales", "purchase"]
DEFAULT_WEIGHTS = {
    "purchase": 2.0,
    "wholesale": 6.0,
    "after_sales": 1.0,
    "complaint": 0.0,
    "contact": 3.0,
    "lead_card": 3.0,
}
DEFAULT_RECENCY = [
    {"within_hours": 24, "factor": 1.0},
    {"within_hours": 72, "factor": 0.7},
    {"within_hours": 24 * 7, "factor": 0.5},
]


@dataclass(frozen=True)
class LeadRules:
    intents: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_INTENTS))
    wholesale_keywords: list[str] = field(default_factory=lambda: list(DEFAULT_WHOLESALE_KEYWORDS))
    priority: list[str] = field(default_factory=lambda: list(DEFAULT_PRIORITY))
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    per_message: float = 0.5
    max_engagement: float = 3.0
    recency: list[dict[str, float]] = field(default_factory=lambda: list(DEFAULT_RECENCY))
    older_factor: float = 0.3
    hot_at: float = 8.0
    warm_at: float = 4.0

    @classmethod
    def from_settings(cls, section: dict[str, Any] | None = None) -> LeadRules:
        section = get_settings().section("leads") if section is None else section
        cats = section.get("categories") or {}
        scoring = section.get("scoring") or {}
        base = cls()
        return cls(
            intents={**base.intents, **(cats.get("intents") or {})},
            wholesale_keywords=list(cats.get("wholesale_keywords") or base.wholesale_keywords),
            priority=list(cats.get("priority") or base.priority),
            weights={**base.weights, **{k: float(v) for k, v in (scoring.get("weights") or {}).items()}},
            per_message=float(scoring.get("per_message", base.per_message)),
            max_engagement=float(scoring.get("max_engagement", base.max_engagement)),
            recency=list(scoring.get("recency") or base.recency),
            older_factor=float(scoring.get("older_factor", base.older_factor)),
            hot_at=float(scoring.get("hot_at", base.hot_at)),
            warm_at=float(scoring.get("warm_at", base.warm_at)),
        )  # fmt: skip

    # --- signals of one message -----------------------------------------------------
    def signals(self, intent: str | None, text: str | None) -> list[str]:
        found = [cat for cat, names in self.intents.items() if intent and intent in names]
        if text and any(k in text for k in self.wholesale_keywords):
            found.append("wholesale")
        return [s for s in CATEGORIES if s in found]

    # --- a lead ---------------------------------------------------------------------
    def category(self, signals: Iterable[str]) -> str:
        present = set(signals)
        for cat in self.priority:
            if cat in present:
                return cat
        return "purchase"

    def points(
        self,
        *,
        intents: Iterable[str],
        signals: Iterable[str],
        messages: int,
        has_contact: bool,
        has_lead_card: bool,
        last_activity: datetime,
        now: datetime,
    ) -> float:
        by_intent = {cat: self.weights.get(cat, 0.0) for cat in CATEGORIES}
        total = 0.0
        for intent in set(intents):
            for cat, names in self.intents.items():
                if intent in names and cat != "wholesale":  # wholesale counts once, below
                    total += by_intent.get(cat, 0.0)
        if "wholesale" in set(signals):
            total += self.weights.get("wholesale", 0.0)
        if has_contact:
            total += self.weights.get("contact", 0.0)
        if has_lead_card:
            total += self.weights.get("lead_card", 0.0)
        total += min(messages * self.per_message, self.max_engagement)
        return round(total * self.recency_factor(last_activity, now), 2)

    def recency_factor(self, last_activity: datetime, now: datetime) -> float:
        hours = max(0.0, (now - last_activity).total_seconds() / 3600)
        for step in sorted(self.recency, key=lambda s: float(s["within_hours"])):
            if hours <= float(step["within_hours"]):
                return float(step["factor"])
        return self.older_factor

    def score(self, points: float) -> str:
        if points >= self.hot_at:
            return "hot"
        if points >= self.warm_at:
            return "warm"
        return "cold"
