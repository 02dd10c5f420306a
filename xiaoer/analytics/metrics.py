"""The figures of the dashboard and of ``xiaoer report``, from the analytics store.

One function, :func:`compute`, gives every figure for a date range (Beijing days, both
ends included), optionally one channel, with series per hour, day or week; the console
and the command line show the same dictionary, so they always agree.

Definitions (docs/analytics.md):

* a *conversation* is a Rasa session of one customer with at least one customer message;
* every conversation is exactly one of: *handed over* (the bot queued it for a human),
  *automated* (no human, and the customer's last message was understood), *unresolved*
  (no human, the last message fell back): the three rates add up to 100 %, never more;
* *intents*: what customers asked about (answers to the rating question left out);
* *fallback rate*: customer messages the bot did not understand / customer messages;
* *bot response time*: from a customer message to the bot's first reply to it;
* *agent first response*: from the handoff to the first message an agent wrote (bot
  messages never count); *handling time*: from that first agent message to the hand-back.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, select

from xiaoer.analytics.store import analytics_cases, analytics_conversations, analytics_messages
from xiaoer.core.clock import BEIJING
from xiaoer.core.db import Database
from xiaoer.core.senders import is_sandbox

BUCKETS = ("hour", "day", "week")
LOW_RATING = 2  # ratings at or below ask what went wrong
FALLBACK_EXAMPLES = 50
# answers to the rating question are customer messages, but not what customers asked about
NOT_TOPICS = frozenset({"rate_service"})


def parse_day(value: str) -> date:
    """``YYYY-MM-DD`` (ValueError with a clear message otherwise)."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a date (YYYY-MM-DD): {value!r}") from None


def bounds(day_from: date, day_to: date) -> tuple[float, float]:
    """Epoch seconds of the first Beijing day's start and the last one's end."""
    if day_to < day_from:
        raise ValueError("the end date is before the start date")
    start = datetime.combine(day_from, time(0), BEIJING).timestamp()
    end = datetime.combine(day_to + timedelta(days=1), time(0), BEIJING).timestamp()
    return start, end


def bucket_of(ts: float, bucket: str) -> str:
    moment = datetime.fromtimestamp(ts, BEIJING)
    if bucket == "hour":
        return moment.strftime("%Y-%m-%d %H:00")
    if bucket == "week":
        monday = moment.date() - timedelta(days=moment.weekday())
        return monday.isoformat()
    return moment.date().isoformat()


def bucket_keys(day_from: date, day_to: date, bucket: str) -> list[str]:
    keys: list[str] = []
    start, end = bounds(day_from, day_to)
    step = 3600 if bucket == "hour" else 86400
    ts = start
    while ts < end:
        key = bucket_of(ts, bucket)
        if key not in keys:
            keys.append(key)
        ts += step
    return keys


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (as numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    value = ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
    return round(value, 3)


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def outcome(conv: dict[str, Any]) -> str:
    if conv["handed_over"]:
        return "handoff"
    return "unresolved" if conv["last_fallback"] else "automated"


def conversation_rows(
    db: Database, day_from: date, day_to: date, channel: str | None = None
) -> list[dict[str, Any]]:
    start, end = bounds(day_from, day_to)
    t = analytics_conversations
    query = select(t).where(t.c.started_at >= start, t.c.started_at < end)
    if channel:
        query = query.where(t.c.channel == channel)
    with db.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.order_by(t.c.started_at))]
    return [r for r in rows if not is_sandbox(r["sender_id"])]


def message_rows(
    db: Database, day_from: date, day_to: date, channel: str | None = None
) -> list[dict[str, Any]]:
    start, end = bounds(day_from, day_to)
    t = analytics_messages
    query = select(t).where(t.c.at >= start, t.c.at < end)
    if channel:
        query = query.where(t.c.channel == channel)
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.at))]


def _leads(
    db: Database, start: float, end: float, channel: str | None
) -> tuple[dict[str, int], list[str]]:
    """Leads captured in the range (the time of the message they came from), contacted
    (status beyond new) and won; and the conversations they came from."""
    from xiaoer.leads.store import leads

    m = analytics_messages
    query = (
        select(leads.c.status, leads.c.source_sender_id, m.c.at, m.c.channel, m.c.conversation_id)
        .select_from(
            leads.join(
                m,
                and_(
                    m.c.message_id == leads.c.source_message_id,
                    m.c.sender_id == leads.c.source_sender_id,
                ),
            )
        )
        .where(leads.c.merged_into.is_(None), m.c.at >= start, m.c.at < end)
    )
    counts = {"captured": 0, "contacted": 0, "won": 0}
    conversations: list[str] = []
    with db.connect() as conn:
        for row in conn.execute(query):
            if is_sandbox(row.source_sender_id) or (channel and row.channel != channel):
                continue
            counts["captured"] += 1
            counts["contacted"] += int(row.status in ("contacted", "won", "lost"))
            counts["won"] += int(row.status == "won")
            conversations.append(row.conversation_id)
    return counts, conversations


def _cases(
    db: Database, start: float, end: float, channel: str | None, convs: dict[str, Any]
) -> list[dict[str, Any]]:
    t = analytics_cases
    with db.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(select(t).where(t.c.at >= start, t.c.at < end).order_by(t.c.at))
        ]
    return [r for r in rows if not channel or r["conversation_id"] in convs]


def _agent_names(db: Database) -> dict[int, str]:
    from xiaoer.agents.store import agents

    with db.connect() as conn:
        return {
            int(r.id): str(r.display_name or r.username)
            for r in conn.execute(select(agents.c.id, agents.c.username, agents.c.display_name))
        }


def _outbox(db: Database) -> dict[str, int]:
    """Replies not delivered yet (now, whatever the range): the Douyin outbox and the
    proactive notifications waiting; ``failed``: Douyin sends that failed at least once."""
    from xiaoer.douyin.store import douyin_outbox
    from xiaoer.notifications.outbox import notifications

    with db.connect() as conn:
        pending = conn.execute(select(douyin_outbox.c.attempts)).all()
        notes = conn.execute(
            select(notifications.c.id).where(notifications.c.sent_at.is_(None))
        ).all()
    return {
        "backlog": len(pending) + len(notes),
        "douyin_pending": len(pending),
        "notifications_pending": len(notes),
        "failed": sum(1 for (attempts,) in pending if attempts),
    }


def product_names() -> dict[str, str]:
    """Names of the demo shop's products (other backends: the ids are shown)."""
    from xiaoer.shop.demo_data import PRODUCTS

    return {str(p.get("product_id") or p.get("id")): str(p.get("name")) for p in PRODUCTS}


def compute(
    db: Database,
    day_from: date,
    day_to: date,
    *,
    channel: str | None = None,
    bucket: str = "day",
) -> dict[str, Any]:
    """Every figure of the range (see the module's docstring for the definitions)."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    start, end = bounds(day_from, day_to)
    all_convs = conversation_rows(db, day_from, day_to, channel)
    convs = [c for c in all_convs if c["customer_messages"] > 0]
    by_id = {c["id"]: c for c in convs}
    msgs = [
        m for m in message_rows(db, day_from, day_to, channel) if not is_sandbox(m["sender_id"])
    ]
    keys = bucket_keys(day_from, day_to, bucket)

    outcomes = Counter(outcome(c) for c in convs)
    n = len(convs)
    reasons = Counter(c["handoff_reason"] or "requested" for c in convs if c["handed_over"])
    intents = Counter(m["intent"] for m in msgs if m["intent"] and m["intent"] not in NOT_TOPICS)
    products = Counter(m["product"] for m in msgs if m["product"])
    fallback_msgs = [m for m in msgs if m["fallback"]]
    names = _agent_names(db)

    first_resp = [
        c["agent_first_reply_at"] - c["handoff_at"]
        for c in convs
        if c["handed_over"] and c["agent_first_reply_at"] is not None and c["handoff_at"]
    ]
    handling = [
        c["agent_closed_at"] - c["agent_first_reply_at"]
        for c in convs
        if c["agent_first_reply_at"] is not None and c["agent_closed_at"] is not None
    ]
    bot_resp = [m["bot_response_seconds"] for m in msgs if m["bot_response_seconds"] is not None]

    series: dict[str, dict[str, int]] = {
        k: {
            "conversations": 0,
            "customer_messages": 0,
            "handoffs": 0,
            "automated": 0,
            "unresolved": 0,
            "fallbacks": 0,
            "new_customers": 0,
            "returning_customers": 0,
        }
        for k in keys
    }
    for c in convs:
        s = series.setdefault(bucket_of(c["started_at"], bucket), dict.fromkeys(series[keys[0]], 0))
        s["conversations"] += 1
        s[{"handoff": "handoffs"}.get(outcome(c), outcome(c))] += 1
        s["returning_customers" if c["returning_customer"] else "new_customers"] += 1
    intent_trend: dict[str, Counter[str]] = defaultdict(Counter)
    for m in msgs:
        key = bucket_of(m["at"], bucket)
        s = series.setdefault(key, dict.fromkeys(series[keys[0]], 0))
        s["customer_messages"] += 1
        s["fallbacks"] += int(bool(m["fallback"]))
        if m["intent"] and m["intent"] not in NOT_TOPICS:
            intent_trend[key][m["intent"]] += 1

    # customers: distinct senders, new when their first conversation is in the range
    customers: dict[str, bool] = {}
    for c in convs:
        customers[c["sender_id"]] = (
            customers.get(c["sender_id"], False) or not c["returning_customer"]
        )
    new_customers = sum(1 for is_new in customers.values() if is_new)

    greeted = [c for c in all_convs if c["greeted"]]
    leads, _lead_convs = _leads(db, start, end, channel)
    cases = _cases(db, start, end, channel, by_id)

    # satisfaction
    asked = [c for c in convs if c["csat_asked"]]
    rated = [c for c in convs if c["csat_rating"] is not None]

    def csat_by(key: Any) -> list[dict[str, Any]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for c in rated:
            groups[str(key(c))].append(int(c["csat_rating"]))
        return [
            {"name": name, "responses": len(v), "average": round(sum(v) / len(v), 2)}
            for name, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ]

    per_agent: dict[int, dict[str, Any]] = {}
    for c in convs:
        if c["agent_id"] is None:
            continue
        a = per_agent.setdefault(
            int(c["agent_id"]),
            {"agent_id": int(c["agent_id"]), "conversations": 0, "_first": [], "_handle": []},
        )
        a["conversations"] += 1
        if c["handoff_at"] and c["agent_first_reply_at"] is not None:
            a["_first"].append(c["agent_first_reply_at"] - c["handoff_at"])
        if c["agent_closed_at"] is not None and c["agent_first_reply_at"] is not None:
            a["_handle"].append(c["agent_closed_at"] - c["agent_first_reply_at"])
    agents_table = []
    for a in sorted(per_agent.values(), key=lambda a: -a["conversations"]):
        ratings = [int(c["csat_rating"]) for c in rated if c["agent_id"] == a["agent_id"]]
        agents_table.append(
            {
                "agent_id": a["agent_id"],
                "name": names.get(a["agent_id"], f"#{a['agent_id']}"),
                "conversations": a["conversations"],
                "first_response_p50": percentile(a["_first"], 0.5),
                "first_response_p90": percentile(a["_first"], 0.9),
                "handling_p50": percentile(a["_handle"], 0.5),
                "csat_average": round(sum(ratings) / len(ratings), 2) if ratings else None,
            }
        )
    channels = Counter(c["channel"] or "?" for c in convs)
    pnames = product_names() if products else {}

    return {
        "from": day_from.isoformat(),
        "to": day_to.isoformat(),
        "channel": channel or "",
        "bucket": bucket,
        "conversations": n,
        "customer_messages": len(msgs),
        "customers": len(customers),
        "new_customers": new_customers,
        "returning_customers": len(customers) - new_customers,
        "handoffs": outcomes["handoff"],
        "automated": outcomes["automated"],
        "unresolved": outcomes["unresolved"],
        "automation_rate": rate(outcomes["automated"], n),
        "handoff_rate": rate(outcomes["handoff"], n),
        "unresolved_rate": rate(outcomes["unresolved"], n),
        "handoff_reasons": dict(reasons.most_common()),
        "fallbacks": len(fallback_msgs),
        "fallback_rate": rate(len(fallback_msgs), len(msgs)),
        "fallback_messages": [
            {
                "at": datetime.fromtimestamp(m["at"], BEIJING).isoformat(timespec="seconds"),
                "text": m["text"],
                "conversation_id": m["conversation_id"],
                "sender_id": m["sender_id"],
            }
            for m in fallback_msgs[-FALLBACK_EXAMPLES:][::-1]
        ],
        "intents": dict(intents.most_common()),
        "intent_trend": {k: dict(intent_trend.get(k, {})) for k in keys},
        "top_products": [
            {"product": p, "name": pnames.get(p, p), "count": k}
            for p, k in products.most_common(10)
        ],
        "bot_response_seconds": {
            "p50": percentile(bot_resp, 0.5),
            "p90": percentile(bot_resp, 0.9),
            "count": len(bot_resp),
        },
        "agent_first_response_seconds": {
            "p50": percentile(first_resp, 0.5),
            "p90": percentile(first_resp, 0.9),
            "count": len(first_resp),
        },
        "agent_handling_seconds": {
            "p50": percentile(handling, 0.5),
            "p90": percentile(handling, 0.9),
            "count": len(handling),
        },
        "agents": agents_table,
        "leads": leads,
        "greetings": {
            "greeted": len(greeted),
            "replied": sum(1 for c in greeted if c["greeting_replied"]),
            "reply_rate": rate(sum(1 for c in greeted if c["greeting_replied"]), len(greeted)),
        },
        "after_sales": {
            "cases": len(cases),
            "by_reason": dict(Counter(c["reason"] or "未填写" for c in cases).most_common()),
            "by_type": dict(Counter(c["case_type"] or "?" for c in cases).most_common()),
        },
        "outbox": _outbox(db),
        "csat": {
            "asked": len(asked),
            "responses": len(rated),
            "response_rate": rate(len(rated), len(asked)),
            "average": round(sum(int(c["csat_rating"]) for c in rated) / len(rated), 2)
            if rated
            else None,
            "distribution": {
                str(k): sum(1 for c in rated if c["csat_rating"] == k) for k in range(1, 6)
            },
            "by_intent": csat_by(lambda c: c["first_intent"] or "?"),
            "by_flow": csat_by(lambda c: c["csat_flow"] or c["flow"] or "?"),
            "by_agent": csat_by(
                lambda c: names.get(int(c["agent_id"]), f"#{c['agent_id']}")
                if c["agent_id"] is not None
                else "机器人"
            ),
            "comments": [
                {
                    "at": datetime.fromtimestamp(c["csat_at"], BEIJING).isoformat(
                        timespec="seconds"
                    ),
                    "rating": c["csat_rating"],
                    "comment": c["csat_comment"],
                    "conversation_id": c["id"],
                    "sender_id": c["sender_id"],
                }
                for c in sorted(rated, key=lambda c: -float(c["csat_at"] or 0))
                if c["csat_comment"]
            ],
        },
        "channels": dict(channels.most_common()),
        "series": {k: series[k] for k in sorted(series)},
    }


# --- drill-down -------------------------------------------------------------------------
def drill(
    db: Database,
    day_from: date,
    day_to: date,
    what: str,
    *,
    channel: str | None = None,
) -> list[dict[str, Any]]:
    """The conversations behind a number: ``what`` is ``all``, ``handoff``, ``automated``,
    ``unresolved``, ``fallback``, ``new``, ``returning``, ``csat``, ``lead``, ``greeted``,
    ``case``, or ``intent:<name>``, ``reason:<reason>``, ``product:<id>``,
    ``rating:<1-5>``, ``agent:<id>``, ``channel:<name>``, ``bucket:<hour, day or week>``."""
    start, end = bounds(day_from, day_to)
    all_convs = conversation_rows(db, day_from, day_to, channel)
    convs = [c for c in all_convs if c["customer_messages"] > 0]
    kind, _, arg = what.partition(":")
    if kind in ("intent", "product", "fallback"):
        msgs = message_rows(db, day_from, day_to, channel)
        field = {"intent": "intent", "product": "product", "fallback": "fallback"}[kind]
        wanted = {
            m["conversation_id"]
            for m in msgs
            if (m[field] == 1 if kind == "fallback" else m[field] == arg)
        }
        chosen = [c for c in convs if c["id"] in wanted]
    elif kind in ("handoff", "automated", "unresolved"):
        chosen = [c for c in convs if outcome(c) == kind]
    elif kind == "new":
        chosen = [c for c in convs if not c["returning_customer"]]
    elif kind == "returning":
        chosen = [c for c in convs if c["returning_customer"]]
    elif kind == "csat":
        chosen = [c for c in convs if c["csat_rating"] is not None]
    elif kind == "rating":
        chosen = [c for c in convs if str(c["csat_rating"]) == arg]
    elif kind == "reason":
        chosen = [
            c for c in convs if c["handed_over"] and (c["handoff_reason"] or "requested") == arg
        ]
    elif kind == "agent":
        chosen = [c for c in convs if str(c["agent_id"]) == arg]
    elif kind == "greeted":
        chosen = [c for c in all_convs if c["greeted"]]
    elif kind == "lead":
        _counts, ids = _leads(db, start, end, channel)
        chosen = [c for c in convs if c["id"] in set(ids)]
    elif kind == "case":
        case_ids = {r["conversation_id"] for r in _cases(db, start, end, channel, {})}
        chosen = [c for c in convs if c["id"] in case_ids]
    elif kind == "bucket":
        chosen = [c for c in convs if arg in {bucket_of(c["started_at"], b) for b in BUCKETS}]
    elif kind == "channel":
        chosen = [c for c in convs if (c["channel"] or "?") == arg]
    elif kind == "all":
        chosen = convs
    else:
        raise ValueError(f"unknown drill-down: {what!r}")
    return [
        {
            "id": c["id"],
            "sender_id": c["sender_id"],
            "channel": c["channel"],
            "started_at": datetime.fromtimestamp(c["started_at"], BEIJING).isoformat(
                timespec="seconds"
            ),
            "customer_messages": c["customer_messages"],
            "first_intent": c["first_intent"],
            "outcome": outcome(c),
            "handoff_reason": c["handoff_reason"],
            "csat_rating": c["csat_rating"],
        }
        for c in chosen
    ]


def conversation_messages(db: Database, conversation_id: str) -> list[dict[str, Any]]:
    """The customer messages of one analytics conversation (the drill-down's last step)."""
    t = analytics_messages
    with db.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(t).where(t.c.conversation_id == conversation_id).order_by(t.c.at)
            )
        ]
