"""The inbox of what the assistant did not understand (待学习).

Collected from Rasa's event stream (:func:`handle_event`, run by the learning follower
of :mod:`xiaoer.learning.jobs`), one customer message at a time, for one of four reasons:

* ``fallback``: the NLU said ``nlu_fallback``, or the turn ran ``action_default_fallback``;
* ``low_confidence``: the top intent's confidence is below ``learning.low_confidence``
  (xiaoer.yml / console, default 0.7) although above the fallback threshold;
* ``handoff``: the turn ended in ``action_handoff`` without the customer clearly asking
  for a human (a confident ``request_human`` / ``complain`` teaches nothing);
* ``corrected``: the customer's next message right after the bot's answer says it was
  wrong ("不是", "不对", "答非所问"…): the message before it was misunderstood.

Messages are de-duplicated by their normalised text (one item, a count, every sighting
with its conversation); a replayed event is recognised by its message id and reason.
Button payloads (``/intent``) and the console's test chat (``xiaoer.core.senders``) are
never collected. Grouping by similarity and suggestions are in
:mod:`xiaoer.learning.grouping`; writing accepted examples in :mod:`xiaoer.learning.nludata`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Integer, Table, Text, func, select

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.senders import is_sandbox

log = logging.getLogger(__name__)

REASONS = ("fallback", "low_confidence", "handoff", "corrected")
REASON_LABELS = {
    "fallback": "没听懂",
    "low_confidence": "把握不大",
    "handoff": "转了人工",
    "corrected": "顾客纠正",
}
STATUSES = ("open", "accepted", "out_of_scope", "ignored")
STATUS_LABELS = {
    "open": "待处理",
    "accepted": "已学习",
    "out_of_scope": "超出范围",
    "ignored": "已忽略",
}
DEFAULT_LOW_CONFIDENCE = 0.7
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"
HANDOFF_ACTION = "action_handoff"
# intents whose confident prediction explains a handoff: nothing to learn from it
ASKED_FOR_HUMAN = ("request_human", "complain")
# the customer's "no" right after an answer: the previous message was misunderstood
CORRECTION = re.compile(
    r"^(不是|不对|错了|你理解错|理解错|答非所问|我不是问|我问的不是|不是这个|说的不是|牛头不对马嘴)"
)

inbox_items = Table(
    "inbox_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text_key", Text, nullable=False, unique=True),  # the normalised text
    Column("text", Text, nullable=False),  # as the customer first wrote it
    Column("tokens", Text, nullable=False, server_default=""),  # pkuseg tokens, space-joined
    Column("intent", Text, nullable=False, server_default=""),  # the model's top intent
    Column("confidence", Float, nullable=False, server_default="0"),
    Column("ranking_json", Text, nullable=False, server_default="[]"),  # intent_ranking
    Column("reasons", Text, nullable=False, server_default=""),  # comma-separated
    Column("count", Integer, nullable=False, server_default="1"),
    Column("last_sender", Text, nullable=False, server_default=""),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),
    Column("resolution", Text, nullable=False, server_default=""),  # intent / kb:<id>
    Column("resolved_by", Text, nullable=False, server_default=""),
    Column("resolved_at", Float),
)

inbox_sightings = Table(
    "inbox_sightings",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("reason", Text, primary_key=True),
    Column("item_id", Integer, nullable=False, index=True),
    Column("sender_id", Text, nullable=False),
    Column("seen_at", Float, nullable=False),
)

# per conversation: the customer's latest message and whether the bot answered it
learning_senders = Table(
    "learning_senders",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("last_json", Text, nullable=False),
    Column("answered", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)

LEARNING_INBOX_TABLES = (inbox_items, inbox_sightings, learning_senders)


@dataclass
class InboxItem:
    id: int
    text: str
    tokens: str
    intent: str
    confidence: float
    ranking: list[dict[str, Any]]
    reasons: list[str]
    count: int
    last_sender: str
    first_seen: float
    last_seen: float
    status: str
    resolution: str = ""
    resolved_by: str = ""
    senders: list[str] = field(default_factory=list)

    def suggestions(self, limit: int = 3) -> list[tuple[str, float]]:
        """The most likely intents (the model's ranking, fallback left out)."""
        ranked = [
            (str(r.get("name")), float(r.get("confidence") or 0.0))
            for r in self.ranking
            if r.get("name") and r.get("name") != FALLBACK_INTENT
        ]
        return ranked[:limit]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 3),
            "reasons": self.reasons,
            "count": self.count,
            "sender_id": self.last_sender,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "status": self.status,
            "resolution": self.resolution,
            "suggestions": [
                {"intent": n, "confidence": round(c, 3)} for n, c in self.suggestions()
            ],
        }


def text_key(text: str) -> str:
    """The de-duplication key: normalised (width, case, Traditional), spaces and trailing
    punctuation removed."""
    from xiaoer.text.normalize import normalize_text

    key = re.sub(r"\s+", "", normalize_text(text))
    return key.rstrip("?？!！。.~～…,，")


_tokenize_fn: Any = None


def tokenize(text: str) -> str:
    """pkuseg tokens of the normalised text, space-joined (the grouping's words)."""
    global _tokenize_fn
    if _tokenize_fn is None:
        from xiaoer.nlu.tokenizer import DEFAULT_TERMS, get_segmenter, read_terms
        from xiaoer.text.normalize import normalize_message_text

        seg = get_segmenter(tuple(read_terms(DEFAULT_TERMS)))

        def _cut(value: str) -> list[str]:
            return [t for t in seg.cut(normalize_message_text(value)) if t.strip()]

        _tokenize_fn = _cut
    return " ".join(_tokenize_fn(text))


def low_confidence_threshold() -> float:
    from xiaoer.core.config import get_settings

    value = get_settings().section("learning").get("low_confidence", DEFAULT_LOW_CONFIDENCE)
    try:
        return float(value)
    except (TypeError, ValueError):
        return DEFAULT_LOW_CONFIDENCE


class InboxStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- collecting ------------------------------------------------------------------
    def collect(
        self,
        *,
        message_id: str,
        sender_id: str,
        text: str,
        reason: str,
        intent: str = "",
        confidence: float = 0.0,
        ranking: list[dict[str, Any]] | None = None,
        at: float | None = None,
        tokens: str | None = None,
    ) -> int | None:
        """Record one sighting; the item's id (None: not collected, e.g. empty text).
        Idempotent for a (message id, reason) seen before."""
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        key = text_key(text)
        if not key or text.startswith("/"):
            return None
        now = at if at is not None else time.time()
        t = inbox_items.c
        # before the transaction: on SQLite begin() holds the write lock, and the first
        # call loads pkuseg (tens of seconds on a busy machine) — every other writer of the
        # project database would wait that long
        if tokens is None:
            tokens = tokenize(text)
        with self.db.begin() as conn:
            seen = conn.execute(
                select(inbox_sightings.c.item_id).where(
                    inbox_sightings.c.message_id == message_id,
                    inbox_sightings.c.reason == reason,
                )
            ).scalar()
            if seen is not None:
                return int(seen)
            row = conn.execute(
                select(t.id, t.reasons).where(t.text_key == key).with_for_update()
            ).first()
            if row is None:
                ranked = [
                    {"name": r.get("name"), "confidence": float(r.get("confidence") or 0)}
                    for r in (ranking or [])[:10]
                ]
                item_id = int(
                    conn.execute(
                        inbox_items.insert().values(
                            text_key=key,
                            text=text.strip()[:500],
                            tokens=tokens,
                            intent=intent,
                            confidence=float(confidence),
                            ranking_json=json.dumps(ranked, ensure_ascii=False),
                            reasons=reason,
                            count=1,
                            last_sender=sender_id,
                            first_seen=now,
                            last_seen=now,
                            status="open",
                        )
                    ).inserted_primary_key[0]
                )
            else:
                item_id = int(row[0])
                reasons = [r for r in str(row[1]).split(",") if r]
                same_message = conn.execute(
                    select(func.count())
                    .select_from(inbox_sightings)
                    .where(inbox_sightings.c.message_id == message_id)
                ).scalar()
                values: dict[str, Any] = {"last_seen": now, "last_sender": sender_id}
                if reason not in reasons:
                    values["reasons"] = ",".join([*reasons, reason])
                if not same_message:
                    values["count"] = t.count + 1
                conn.execute(inbox_items.update().where(t.id == item_id).values(**values))
            conn.execute(
                inbox_sightings.insert().values(
                    message_id=message_id,
                    reason=reason,
                    item_id=item_id,
                    sender_id=sender_id,
                    seen_at=now,
                )
            )
        return item_id

    # --- reading ---------------------------------------------------------------------
    def _item(self, row: Any) -> InboxItem:
        return InboxItem(
            id=int(row.id),
            text=row.text,
            tokens=row.tokens,
            intent=row.intent,
            confidence=float(row.confidence),
            ranking=json.loads(row.ranking_json or "[]"),
            reasons=[r for r in row.reasons.split(",") if r],
            count=int(row.count),
            last_sender=row.last_sender,
            first_seen=float(row.first_seen),
            last_seen=float(row.last_seen),
            status=row.status,
            resolution=row.resolution,
            resolved_by=row.resolved_by,
        )

    def items(self, status: str | None = "open", limit: int = 500) -> list[InboxItem]:
        """Items, most frequent first (then the latest)."""
        t = inbox_items.c
        query = select(inbox_items).order_by(t.count.desc(), t.last_seen.desc()).limit(limit)
        if status:
            query = query.where(t.status == status)
        with self.db.connect() as conn:
            return [self._item(r) for r in conn.execute(query).all()]

    def get(self, item_id: int) -> InboxItem | None:
        with self.db.connect() as conn:
            row = conn.execute(select(inbox_items).where(inbox_items.c.id == item_id)).first()
            if row is None:
                return None
            item = self._item(row)
            item.senders = [
                str(s)
                for s in conn.execute(
                    select(inbox_sightings.c.sender_id)
                    .where(inbox_sightings.c.item_id == item_id)
                    .group_by(inbox_sightings.c.sender_id)
                    .order_by(func.max(inbox_sightings.c.seen_at).desc())
                ).scalars()
            ]
        return item

    def counts(self) -> dict[str, int]:
        t = inbox_items.c
        with self.db.connect() as conn:
            rows = conn.execute(select(t.status, func.count()).group_by(t.status)).all()
        return {str(s): int(n) for s, n in rows}

    # --- resolving -------------------------------------------------------------------
    def resolve(self, item_ids: list[int], status: str, resolution: str, by: str) -> int:
        """Mark open items accepted / out of scope / ignored; how many changed."""
        if status not in STATUSES or status == "open":
            raise ValueError(f"unknown status {status!r}")
        t = inbox_items.c
        with self.db.begin() as conn:
            result = conn.execute(
                inbox_items.update()
                .where(t.id.in_(item_ids), t.status == "open")
                .values(
                    status=status, resolution=resolution, resolved_by=by, resolved_at=time.time()
                )
            )
        return int(result.rowcount or 0)

    def reopen(self, item_ids: list[int]) -> None:
        """Back to open (an accept whose write or validation failed)."""
        t = inbox_items.c
        with self.db.begin() as conn:
            conn.execute(
                inbox_items.update()
                .where(t.id.in_(item_ids))
                .values(status="open", resolution="", resolved_by="", resolved_at=None)
            )

    # --- per-conversation state of the collector -------------------------------------
    def sender_state(self, sender_id: str) -> tuple[dict[str, Any] | None, bool]:
        with self.db.connect() as conn:
            row = conn.execute(
                select(learning_senders.c.last_json, learning_senders.c.answered).where(
                    learning_senders.c.sender_id == sender_id
                )
            ).first()
        if row is None:
            return None, False
        return json.loads(row[0]), bool(row[1])

    def set_sender_state(self, sender_id: str, last: dict[str, Any] | None, answered: bool) -> None:
        with self.db.begin() as conn:
            self.db.upsert(
                conn,
                learning_senders,
                {
                    "sender_id": sender_id,
                    "last_json": json.dumps(last or {}, ensure_ascii=False),
                    "answered": int(answered),
                    "updated_at": time.time(),
                },
                key=["sender_id"],
                update=["last_json", "answered", "updated_at"],
            )


def get_inbox_store() -> InboxStore:
    return InboxStore()


# --- the event handler -------------------------------------------------------------------
def _summary(event: dict[str, Any]) -> dict[str, Any]:
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    return {
        "message_id": str(event.get("message_id") or ""),
        "text": str(event.get("text") or ""),
        "intent": str(intent.get("name") or ""),
        "confidence": float(intent.get("confidence") or 0.0),
        "ranking": [
            {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
            for r in (parse.get("intent_ranking") or [])[:10]
        ],
        "at": float(event.get("timestamp") or time.time()),
    }


class InboxCollector:
    """Turns the event stream into inbox sightings (see the module's docstring)."""

    def __init__(self, store: InboxStore | None = None, low_confidence: float | None = None):
        self.store = store or get_inbox_store()
        self.low_confidence = low_confidence

    def threshold(self) -> float:
        return (
            self.low_confidence if self.low_confidence is not None else low_confidence_threshold()
        )

    def _collect(self, sender: str, message: dict[str, Any], reason: str) -> None:
        if not message.get("message_id") or not message.get("text"):
            return
        self.store.collect(
            message_id=message["message_id"],
            sender_id=sender,
            text=message["text"],
            reason=reason,
            intent=message.get("intent", ""),
            confidence=float(message.get("confidence") or 0.0),
            ranking=message.get("ranking") or [],
            at=message.get("at"),
        )

    def __call__(self, event: dict[str, Any]) -> None:
        sender = str(event.get("sender_id") or "")
        kind = event.get("event")
        if not sender or is_sandbox(sender) or kind not in ("user", "bot", "action"):
            return
        if kind == "user":
            text = str(event.get("text") or "")
            if text.startswith("/"):  # a button's payload: nothing to learn from
                self.store.set_sender_state(sender, None, False)
                return
            message = _summary(event)
            last, answered = self.store.sender_state(sender)
            if last and answered and CORRECTION.match(text_key(text)):
                self._collect(sender, last, "corrected")
            if message["intent"] == FALLBACK_INTENT:
                self._collect(sender, message, "fallback")
            elif message["intent"] and message["confidence"] < self.threshold():
                self._collect(sender, message, "low_confidence")
            self.store.set_sender_state(sender, message, False)
            return
        last, answered = self.store.sender_state(sender)
        if not last:
            return
        if kind == "bot":
            if not answered:
                self.store.set_sender_state(sender, last, True)
            return
        name = event.get("name")
        if name == FALLBACK_ACTION and last.get("intent") != FALLBACK_INTENT:
            self._collect(sender, last, "fallback")
        elif name == HANDOFF_ACTION:
            clear = (
                last.get("intent") in ASKED_FOR_HUMAN
                and float(last.get("confidence") or 0) >= self.threshold()
            )
            if not clear:
                self._collect(sender, last, "handoff")


_collector: InboxCollector | None = None


def handle_event(event: dict[str, Any]) -> None:
    """The event follower's handler (idempotent for a replayed row)."""
    global _collector
    if _collector is None:
        _collector = InboxCollector()
    _collector(event)
