"""Reply variants chosen by their outcomes: a Thompson-sampling bandit per response and
customer segment.

* **Variants.** A chosen response (:data:`RESPONSES`: the greeting, the handoff message,
  the contact offers, the return policy…) has the variations of ``actions/messages.yml``
  (a variation may carry ``segment: new|returning`` and ``daypart: day|night`` to be
  shown only there) plus the variants a merchant adds in the console (table
  ``reply_variants``). A variant's key is a hash of its text, so editing the wording makes
  a new variant with fresh statistics. The merchant can switch a variant off or pin one
  (then it is always shown).
* **Choice** (:func:`choose`): among the active variants for the segment (``new`` /
  ``returning``: a customer the assistant already talked with on an earlier visit) and
  the shop's time of day (``day`` / ``night``, Beijing time, ``learning.day_hours``),
  while any has fewer than :data:`WARMUP` exposures the choice is uniform (a new variant
  gets a fair share at once); then each variant's success rate is drawn from its Beta
  posterior (1 + successes, 1 + failures) and the highest draw wins.
* **Exposure and outcome.** The action adds ``xiaoer_variant`` to the bot message; Rasa
  keeps it in the bot event's metadata, and the learning follower
  (:func:`handle_event`) records the exposure and its outcome over the customer's next
  turns: ``thanked``, ``contact`` (a phone or WeChat id), ``human`` (asked for a human),
  ``continued`` (:data:`TURNS` more messages without any of these), ``left`` (no message
  within ``learning.left_after_minutes``), ``paid`` (an order of the buyer paid after the
  exposure, from the shop backend, checked when an unanswered exposure closes), ``rated``
  (the satisfaction question answered with a score). The buyer behind a conversation is
  the ``buyer_id`` of its messages' metadata on a channel that knows its buyers
  (``security.channels.<name>.buyer_known``: Douyin), as the order lookups trust it. Each response says
  which outcomes count as a success (:class:`ResponseSpec`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Integer, Table, Text, and_, case, func, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.senders import is_sandbox

WARMUP = 20  # exposures every variant gets (uniformly) before Thompson sampling takes over
TURNS = 2  # customer messages after which an exposure without a decisive outcome "continued"
SEGMENTS = ("new", "returning")
DAYPARTS = ("day", "night")
OUTCOMES = ("continued", "thanked", "contact", "rated", "paid", "human", "left")
OUTCOME_LABELS = {
    "continued": "继续对话",
    "rated": "打了分",
    "thanked": "道谢",
    "contact": "留了联系方式",
    "paid": "之后付款",
    "human": "要求人工",
    "left": "离开",
}
RETURNING_AFTER_SECONDS = 6 * 3600  # an earlier visit: seen at least this long ago
METADATA_KEY = "xiaoer_variant"


@dataclass(frozen=True)
class ResponseSpec:
    key: str
    label: str
    success: frozenset[str] = frozenset({"continued", "thanked", "contact", "paid"})


_CONTACT_GOAL = frozenset({"contact", "paid"})
RESPONSES: dict[str, ResponseSpec] = {
    spec.key: spec
    for spec in (
        ResponseSpec("greet_intro", "欢迎语"),
        ResponseSpec("handoff", "转人工提示"),
        ResponseSpec("faq_return_policy", "退换货说明"),
        ResponseSpec("ask_contact_ask_price", "索要联系方式（问价）", _CONTACT_GOAL),
        ResponseSpec("ask_contact_ask_stock", "索要联系方式（问库存）", _CONTACT_GOAL),
        ResponseSpec("ask_contact_ask_size", "索要联系方式（问尺码）", _CONTACT_GOAL),
        ResponseSpec("ask_contact_ask_discount", "索要联系方式（问优惠）", _CONTACT_GOAL),
        ResponseSpec("ask_contact_ask_wholesale", "索要联系方式（批发）", _CONTACT_GOAL),
        # the satisfaction question (actions/satisfaction.py): it works when it is answered
        ResponseSpec("ask_csat_rating", "满意度调查", frozenset({"rated"})),
    )
}

reply_variants = Table(
    "reply_variants",
    metadata,
    Column("response", Text, primary_key=True),
    Column("variant_key", Text, primary_key=True),
    Column("text", Text, nullable=False),
    Column("segment", Text, nullable=False, server_default=""),  # "" = every segment
    Column("daypart", Text, nullable=False, server_default=""),  # "" = day and night
    Column("source", Text, nullable=False, server_default="console"),  # or "catalogue"
    Column("active", Integer, nullable=False, server_default="1"),
    Column("pinned", Integer, nullable=False, server_default="0"),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)

variant_exposures = Table(
    "variant_exposures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exposure_key", Text, nullable=False, unique=True),  # sender + bot event time
    Column("response", Text, nullable=False),
    Column("variant_key", Text, nullable=False),
    Column("segment", Text, nullable=False),
    Column("daypart", Text, nullable=False),
    Column("sender_id", Text, nullable=False, index=True),
    Column("buyer_id", Text, nullable=False, server_default=""),
    Column("shown_at", Float, nullable=False),
    Column("turns", Integer, nullable=False, server_default="0"),
    Column("outcome", Text),  # None while open
    Column("reward", Integer),  # 1 success, 0 failure, None while open
    Column("closed_at", Float),
)

VARIANT_TABLES = (reply_variants, variant_exposures)


def variant_key(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:10]


def daypart(at: Any = None) -> str:
    """``day`` or ``night`` on the shop's clock (``learning.day_hours``, default 8-22)."""
    from xiaoer.core.config import get_settings

    hours = get_settings().section("learning").get("day_hours", [8, 22])
    try:
        start, end = int(hours[0]), int(hours[1])
    except (TypeError, ValueError, IndexError):
        start, end = 8, 22
    hour = (at or now_beijing()).hour
    return "day" if start <= hour < end else "night"


@dataclass
class Variant:
    response: str
    key: str
    text: str
    segment: str = ""
    daypart: str = ""
    source: str = "catalogue"
    active: bool = True
    pinned: bool = False
    buttons: list[dict[str, str]] = field(default_factory=list)

    def fits(self, segment: str, part: str) -> bool:
        return self.segment in ("", segment) and self.daypart in ("", part)


@dataclass
class ArmStats:
    exposures: int = 0  # every exposure, closed or not
    successes: int = 0
    failures: int = 0

    @property
    def closed(self) -> int:
        return self.successes + self.failures

    @property
    def rate(self) -> float:
        return self.successes / self.closed if self.closed else 0.0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval of the success rate (95 %)."""
        n = self.closed
        if not n:
            return 0.0, 1.0
        p = self.rate
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


def thompson_choice(
    candidates: list[str],
    stats: dict[str, ArmStats],
    rng: random.Random,
    *,
    warmup: int = WARMUP,
    pinned: str | None = None,
) -> str:
    """The bandit's choice among ``candidates`` (variant keys)."""
    if not candidates:
        raise ValueError("no variant to choose from")
    if pinned in candidates:
        return str(pinned)
    if any(stats.get(c, ArmStats()).exposures < warmup for c in candidates):
        return rng.choice(candidates)  # warm-up: a fair share for every variant
    best, best_draw = candidates[0], -1.0
    for c in candidates:
        s = stats.get(c, ArmStats())
        draw = rng.betavariate(1 + s.successes, 1 + s.failures)
        if draw > best_draw:
            best, best_draw = c, draw
    return best


class VariantStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- variants ------------------------------------------------------------------
    def variants(self, response: str, catalogue: Iterable[dict[str, Any]] = ()) -> list[Variant]:
        """Every variant of ``response``: the catalogue's (in its order) then the console's."""
        with self.db.connect() as conn:
            rows = {
                r.variant_key: r
                for r in conn.execute(
                    select(reply_variants)
                    .where(reply_variants.c.response == response)
                    .order_by(reply_variants.c.created_at)
                ).all()
            }
        out: list[Variant] = []
        seen: set[str] = set()
        for v in catalogue:
            text = str(v.get("text") or "")
            key = variant_key(text)
            if not text or key in seen:
                continue
            seen.add(key)
            row = rows.get(key)
            out.append(
                Variant(
                    response, key, text,
                    segment=str(v.get("segment") or ""), daypart=str(v.get("daypart") or ""),
                    source="catalogue",
                    active=bool(row.active) if row is not None else True,
                    pinned=bool(row.pinned) if row is not None else False,
                    buttons=[dict(b) for b in v.get("buttons") or []],
                )
            )  # fmt: skip
        for key, row in rows.items():
            if key in seen or row.source != "console":
                continue
            out.append(
                Variant(response, key, row.text, row.segment, row.daypart, "console",
                        bool(row.active), bool(row.pinned))
            )  # fmt: skip
        return out

    def add(self, response: str, text: str, segment: str = "", part: str = "", by: str = "") -> str:
        text = text.strip()
        if not text:
            raise ValueError("回复内容不能为空")
        if len(text) > 500:
            raise ValueError("回复内容不能超过500字")
        if segment not in ("", *SEGMENTS) or part not in ("", *DAYPARTS):
            raise ValueError("未知的顾客类型或时段")
        key = variant_key(text)
        stmt = (
            self.db.insert(reply_variants)
            .values(
                response=response, variant_key=key, text=text, segment=segment, daypart=part,
                source="console", created_by=by, created_at=time.time(),
            )
            .on_conflict_do_nothing()
        )  # fmt: skip
        with self.db.begin() as conn:
            if not conn.execute(stmt).rowcount:
                raise ValueError("已有相同内容的回复")
        return key

    def _ensure_row(self, conn: Any, response: str, key: str, text: str = "") -> None:
        stmt = (
            self.db.insert(reply_variants)
            .values(response=response, variant_key=key, text=text, source="catalogue",
                    created_at=time.time())
            .on_conflict_do_nothing()
        )  # fmt: skip
        conn.execute(stmt)

    def set_active(self, response: str, key: str, active: bool, text: str = "") -> None:
        t = reply_variants.c
        with self.db.begin() as conn:
            self._ensure_row(conn, response, key, text)
            values: dict[str, Any] = {"active": int(active)}
            if not active:
                values["pinned"] = 0
            conn.execute(
                reply_variants.update()
                .where(t.response == response, t.variant_key == key)
                .values(**values)
            )

    def pin(self, response: str, key: str | None, text: str = "") -> None:
        """Pin ``key`` (always shown), or unpin every variant of ``response`` (None)."""
        t = reply_variants.c
        with self.db.begin() as conn:
            conn.execute(reply_variants.update().where(t.response == response).values(pinned=0))
            if key:
                self._ensure_row(conn, response, key, text)
                conn.execute(
                    reply_variants.update()
                    .where(t.response == response, t.variant_key == key)
                    .values(pinned=1, active=1)
                )

    # --- statistics ----------------------------------------------------------------
    def stats(self, response: str, segment: str | None = None) -> dict[str, ArmStats]:
        e = variant_exposures.c
        query = (
            select(
                e.variant_key,
                func.count(),
                func.sum(case((e.reward == 1, 1), else_=0)),
                func.sum(case((e.reward == 0, 1), else_=0)),
            )
            .where(e.response == response)
            .group_by(e.variant_key)
        )
        if segment:
            query = query.where(e.segment == segment)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return {str(k): ArmStats(int(n), int(s or 0), int(f or 0)) for k, n, s, f in rows}

    def outcome_counts(
        self, response: str, segment: str | None = None
    ) -> dict[str, dict[str, int]]:
        e = variant_exposures.c
        query = (
            select(e.variant_key, e.outcome, func.count())
            .where(e.response == response, e.outcome.is_not(None))
            .group_by(e.variant_key, e.outcome)
        )
        if segment:
            query = query.where(e.segment == segment)
        out: dict[str, dict[str, int]] = {}
        with self.db.connect() as conn:
            for key, outcome, n in conn.execute(query).all():
                out.setdefault(str(key), {})[str(outcome)] = int(n)
        return out

    def is_returning(self, sender_id: str, now: float | None = None) -> bool:
        e = variant_exposures.c
        cutoff = (now or time.time()) - RETURNING_AFTER_SECONDS
        with self.db.connect() as conn:
            found = conn.execute(
                select(e.id).where(e.sender_id == sender_id, e.shown_at < cutoff).limit(1)
            ).first()
        return found is not None

    # --- exposures and outcomes ----------------------------------------------------
    def record_exposure(
        self, *, key: str, response: str, variant: str, segment: str, part: str,
        sender_id: str, shown_at: float, buyer_id: str = "",
    ) -> bool:  # fmt: skip
        return self.db.insert_ignore(
            variant_exposures,
            exposure_key=key, response=response, variant_key=variant, segment=segment,
            daypart=part, sender_id=sender_id, buyer_id=buyer_id, shown_at=shown_at,
        )  # fmt: skip

    def open_exposures(self, sender_id: str) -> list[Any]:
        e = variant_exposures.c
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    select(variant_exposures).where(e.sender_id == sender_id, e.outcome.is_(None))
                ).all()
            )

    def close(self, exposure_id: int, outcome: str, at: float | None = None) -> bool:
        """Close an open exposure with ``outcome`` (a closed one is left as it is)."""
        e = variant_exposures.c
        with self.db.begin() as conn:
            row = conn.execute(select(e.response).where(e.id == exposure_id)).first()
            if row is None:
                return False
            spec = RESPONSES.get(row[0], ResponseSpec(row[0], row[0]))
            result = conn.execute(
                variant_exposures.update()
                .where(e.id == exposure_id, e.outcome.is_(None))
                .values(
                    outcome=outcome,
                    reward=int(outcome in spec.success),
                    closed_at=at or time.time(),
                )
            )
        return bool(result.rowcount)

    def count_turn(self, exposure_id: int) -> int:
        e = variant_exposures.c
        with self.db.begin() as conn:
            conn.execute(
                variant_exposures.update()
                .where(e.id == exposure_id, e.outcome.is_(None))
                .values(turns=e.turns + 1)
            )
            return int(conn.execute(select(e.turns).where(e.id == exposure_id)).scalar() or 0)

    def set_buyer(self, sender_id: str, buyer_id: str) -> int:
        """The buyer of a conversation's open exposures that have none yet."""
        e = variant_exposures.c
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    variant_exposures.update()
                    .where(e.sender_id == sender_id, e.outcome.is_(None), e.buyer_id == "")
                    .values(buyer_id=buyer_id)
                ).rowcount
            )

    def stale(self, before: float, limit: int = 500) -> list[Any]:
        e = variant_exposures.c
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    select(variant_exposures)
                    .where(and_(e.outcome.is_(None), e.shown_at < before))
                    .limit(limit)
                ).all()
            )


def get_variant_store() -> VariantStore:
    return VariantStore()


# --- choosing (the action server) ---------------------------------------------------------
_rng = random.Random()


def choose(
    response: str,
    catalogue: list[dict[str, Any]],
    sender_id: str,
    *,
    store: VariantStore | None = None,
    rng: random.Random | None = None,
) -> tuple[Variant, dict[str, str]] | None:
    """The variant to show and the tag for the bot message's metadata; None when the
    response is not a chosen one (or for the console's test chat)."""
    if response not in RESPONSES or not catalogue or is_sandbox(sender_id):
        return None
    store = store or get_variant_store()
    segment = "returning" if store.is_returning(sender_id) else "new"
    part = daypart()
    variants = [v for v in store.variants(response, catalogue) if v.active]
    fitting = [v for v in variants if v.fits(segment, part)] or variants
    if not fitting:
        return None
    pinned = next((v.key for v in fitting if v.pinned), None)
    stats = store.stats(response, segment)
    key = thompson_choice([v.key for v in fitting], stats, rng or _rng, pinned=pinned)
    chosen = next(v for v in fitting if v.key == key)
    tag = {"response": response, "variant": key, "segment": segment, "daypart": part}
    return chosen, tag


# --- outcomes (the learning follower) -----------------------------------------------------
_THANKS_INTENTS = ("thank",)
_HUMAN_INTENTS = ("request_human",)
_RATING_INTENT = "rate_service"
BUYERS_REMEMBERED = 10_000  # conversations whose buyer the follower keeps in memory


def classify(event: dict[str, Any]) -> str | None:
    """A customer message's decisive outcome, if any."""
    parse = event.get("parse_data") or {}
    intent = str((parse.get("intent") or {}).get("name") or "")
    text = str(event.get("text") or "")
    entities = parse.get("entities") or []
    if any(e.get("entity") in ("phone", "wechat") for e in entities):
        return "contact"
    if not text.startswith("/"):
        from xiaoer.text.contacts import find_contacts

        if find_contacts(text):
            return "contact"
    if intent in _HUMAN_INTENTS or text == "/request_human":
        return "human"
    if intent in _THANKS_INTENTS:
        return "thanked"
    if intent == _RATING_INTENT or text.startswith(f"/{_RATING_INTENT}"):
        rating = next((e.get("value") for e in entities if e.get("entity") == "csat_rating"), "")
        if str(rating) != "skip" and '"skip"' not in text:  # skipping is no answer
            return "rated"
    return None


def trusted_buyer(event: dict[str, Any]) -> str:
    """The buyer id a customer message carries, from a channel that knows its buyers
    (``buyer_known``, e.g. Douyin, whose channel sets it); "" elsewhere (a REST client
    could claim any buyer)."""
    buyer = (event.get("metadata") or {}).get("buyer_id")
    if not buyer:
        return ""
    from xiaoer.shop.access import security_settings

    channel = event.get("input_channel")
    return str(buyer) if security_settings().channel(channel).buyer_known else ""


class OutcomeTracker:
    """The learning follower's handler for reply variants."""

    def __init__(self, store: VariantStore | None = None) -> None:
        self.store = store or get_variant_store()
        # sender -> buyer, from the customer's latest message (the exposure's bot message
        # follows it); open exposures get it too when a later message names the buyer
        self.buyers: dict[str, str] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        sender = str(event.get("sender_id") or "")
        kind = event.get("event")
        if not sender or is_sandbox(sender):
            return
        if kind == "bot":
            tag = (event.get("metadata") or {}).get(METADATA_KEY)
            if not isinstance(tag, dict) or tag.get("response") not in RESPONSES:
                return
            at = float(event.get("timestamp") or time.time())
            self.store.record_exposure(
                key=f"{sender}:{at:.6f}:{tag.get('response')}",
                response=str(tag["response"]),
                variant=str(tag.get("variant") or ""),
                segment=str(tag.get("segment") or "new"),
                part=str(tag.get("daypart") or "day"),
                sender_id=sender,
                shown_at=at,
                buyer_id=self.buyers.get(sender, ""),
            )
            return
        if kind != "user":
            return
        buyer = trusted_buyer(event)
        if buyer:
            if self.buyers.get(sender) != buyer:
                self.store.set_buyer(sender, buyer)
            self.buyers.pop(sender, None)
            self.buyers[sender] = buyer
            while len(self.buyers) > BUYERS_REMEMBERED:
                self.buyers.pop(next(iter(self.buyers)))
        at = float(event.get("timestamp") or time.time())
        outcome = classify(event)
        for row in self.store.open_exposures(sender):
            if row.shown_at >= at:
                continue  # shown after this message (a replay out of order)
            if outcome:
                self.store.close(row.id, outcome, at)
            elif self.store.count_turn(row.id) >= TURNS:
                self.store.close(row.id, "continued", at)


PaidCheck = Callable[[str, float], bool]


def close_stale(
    *, store: VariantStore | None = None, now: float | None = None,
    left_after: float | None = None, paid: PaidCheck | None = None,
) -> int:  # fmt: skip
    """Close exposures the customer never answered: ``paid`` when their buyer paid an
    order after it, else ``left``. How many were closed."""
    store = store or get_variant_store()
    if left_after is None:
        from xiaoer.core.config import get_settings

        minutes = get_settings().section("learning").get("left_after_minutes", 30)
        left_after = float(minutes) * 60
    now = now or time.time()
    closed = 0
    for row in store.stale(now - left_after):
        outcome = "left"
        if paid is not None and row.buyer_id and paid(row.buyer_id, row.shown_at):
            outcome = "paid"
        closed += int(store.close(row.id, outcome, now))
    return closed


def backend_paid_check(buyer_id: str, since: float) -> bool:
    """Whether the shop backend shows an order of ``buyer_id`` paid after ``since``."""
    import asyncio

    from xiaoer.shop.factory import get_backend

    try:
        orders = asyncio.run(get_backend().orders_by_buyer(buyer_id, limit=10))
    except Exception:  # noqa: BLE001 - a backend down must not stop the outcomes
        return False
    for order in orders:
        paid_at = getattr(order, "paid_at", None)
        if paid_at is not None and paid_at.timestamp() >= since:
            return True
    return False


def report(
    response: str, catalogue: list[dict[str, Any]], store: VariantStore | None = None
) -> dict[str, Any]:
    """The console's figures: per segment and variant, exposures, outcome counts, the
    success rate and its 95 % interval."""
    store = store or get_variant_store()
    variants = store.variants(response, catalogue)
    segments = {}
    for segment in SEGMENTS:
        stats = store.stats(response, segment)
        outcomes = store.outcome_counts(response, segment)
        rows = []
        for v in variants:
            s = stats.get(v.key, ArmStats())
            low, high = s.interval()
            rows.append(
                {
                    "key": v.key, "text": v.text, "source": v.source, "active": v.active,
                    "pinned": v.pinned, "segment": v.segment, "daypart": v.daypart,
                    "exposures": s.exposures, "closed": s.closed, "successes": s.successes,
                    "rate": round(s.rate, 3), "low": round(low, 3), "high": round(high, 3),
                    "outcomes": outcomes.get(v.key, {}),
                }
            )  # fmt: skip
        segments[segment] = rows
    spec = RESPONSES.get(response)
    return {
        "response": response,
        "label": spec.label if spec else response,
        "success": sorted(spec.success) if spec else [],
        "segments": segments,
    }


def tag_json(tag: dict[str, str]) -> str:
    return json.dumps(tag, ensure_ascii=False, sort_keys=True)


def message_catalogue(root: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """The variations of actions/messages.yml (read as a file: the console and the worker
    never import ``actions``)."""
    import yaml

    from xiaoer.core.config import get_settings

    path = (root or Path(get_settings().root)) / "actions" / "messages.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): list(v or []) for k, v in (raw.get("messages") or {}).items()}
