"""The analytics store: facts about conversations, kept up to date from Rasa's event stream.

Rasa's SQL event broker writes every tracker event to its ``events`` table; the worker's
job ``analytics.follow`` (:mod:`xiaoer.analytics.jobs`) reads the rows after its own
cursor (``event_cursor`` row :data:`CURSOR`) and hands them, in batches, to
:meth:`AnalyticsStore.apply`. A batch and the cursor move in ONE transaction of the
project database, so a crash never counts an event twice nor loses one; nothing ever
re-reads a whole tracker. ``xiaoer analytics rebuild`` empties these tables, resets the
cursor and replays the event log.

Tables (all in the project database, beside handoffs, agents, leads):

* ``analytics_conversations``: one row per conversation (a Rasa session of one sender that
  has a customer message or a proactive greeting): channel, start, counts of customer /
  bot / agent messages, fallbacks, first intent, whether and why it was handed to a human
  (the handoff reason as the bot decided it), the agent, their first reply, the hand-back,
  the greeting, the satisfaction rating and comment;
* ``analytics_messages``: one row per customer message (the broker's row id is the key):
  time, channel, intent and confidence, product asked about, the text, whether the bot
  fell back, the bot's response time;
* ``analytics_cases``: the after-sales cases the assistant opened (case id as the shop
  numbers it, conversation, type and reason as the customer gave them in the form);
* ``analytics_senders``: per sender the first time seen (new vs returning customers) and
  the small state of its open conversation (JSON).

Times are the events' own timestamps (epoch seconds): the assistant's clock, which the
demo traffic moves (``XIAOER_DEMO_CLOCK``, :mod:`xiaoer.core.clock`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, Table, Text, delete, select
from sqlalchemy.engine import Connection

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.senders import is_sandbox

CURSOR = "analytics"  # this consumer's row in event_cursor (lead capture keeps its own)

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"
HANDOFF_ACTION = "action_handoff"
GREET_ACTION = "action_douyin_greet"
AFTER_SALES_ACTION = "action_submit_after_sales"
CSAT_FORM = "csat_form"
CASE_RE = re.compile(r"AS\d{6,}")
# actions that are plumbing, not a "flow" the customer went through
PLUMBING = frozenset(
    {
        "action_listen",
        "action_session_start",
        "action_unlikely_intent",
        "action_extract_slots",
        "action_default_fallback",
        "action_csat_ask",
        "action_csat_thanks",
        "action_ask_csat_comment",
        "validate_csat_form",
        CSAT_FORM,
    }
)

analytics_conversations = Table(
    "analytics_conversations",
    metadata,
    Column("id", Text, primary_key=True),  # "<sender>@<start in ms>"
    Column("sender_id", Text, nullable=False),
    Column("channel", Text, nullable=False, server_default=""),
    Column("started_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("returning_customer", Integer, nullable=False, server_default="0"),
    Column("customer_messages", Integer, nullable=False, server_default="0"),
    Column("bot_messages", Integer, nullable=False, server_default="0"),
    Column("agent_messages", Integer, nullable=False, server_default="0"),
    Column("fallbacks", Integer, nullable=False, server_default="0"),
    Column("last_fallback", Integer, nullable=False, server_default="0"),
    Column("first_intent", Text, nullable=False, server_default=""),
    Column("flow", Text, nullable=False, server_default=""),
    Column("handed_over", Integer, nullable=False, server_default="0"),
    Column("handoff_at", Float),
    Column("handoff_reason", Text, nullable=False, server_default=""),
    Column("handoff_id", Integer),
    Column("agent_id", Integer),
    Column("agent_first_reply_at", Float),
    Column("agent_closed_at", Float),
    Column("greeted", Integer, nullable=False, server_default="0"),
    Column("greeting_replied", Integer, nullable=False, server_default="0"),
    Column("csat_asked", Integer, nullable=False, server_default="0"),
    Column("csat_rating", Integer),
    Column("csat_comment", Text, nullable=False, server_default=""),
    Column("csat_at", Float),
    Column("csat_flow", Text, nullable=False, server_default=""),
    Index("analytics_conversations_start", "started_at"),
    Index("analytics_conversations_sender", "sender_id", "started_at"),
)
analytics_messages = Table(
    "analytics_messages",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=False),  # broker row id
    Column("conversation_id", Text, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("at", Float, nullable=False),
    Column("channel", Text, nullable=False, server_default=""),
    Column("intent", Text, nullable=False, server_default=""),
    Column("confidence", Float),
    Column("product", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),
    Column("fallback", Integer, nullable=False, server_default="0"),
    Column("to_agent", Integer, nullable=False, server_default="0"),
    Column("bot_response_seconds", Float),
    Index("analytics_messages_at", "at"),
    Index("analytics_messages_conversation", "conversation_id"),
    Index("analytics_messages_message_id", "message_id"),
)
analytics_cases = Table(
    "analytics_cases",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("conversation_id", Text, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("case_type", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
)
analytics_senders = Table(
    "analytics_senders",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("first_seen", Float),  # None: only platform events so far
    Column("state_json", Text, nullable=False, server_default="{}"),
)
TABLES = (analytics_messages, analytics_cases, analytics_conversations, analytics_senders)
CONVERSATION_COLUMNS = [c.name for c in analytics_conversations.columns]


@dataclass
class _Sender:
    """One sender while a batch is applied: its first sighting and open conversation."""

    sender_id: str
    first_seen: float | None = None
    state: dict[str, Any] = field(default_factory=dict)
    conversation: dict[str, Any] | None = None  # the open conversation's row
    touched: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows to write
    dirty: bool = False


def _new_conversation(sender: _Sender, at: float, channel: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in CONVERSATION_COLUMNS}
    row.update(
        id=f"{sender.sender_id}@{int(round(at * 1000))}",
        sender_id=sender.sender_id,
        channel=channel,
        started_at=at,
        last_at=at,
        returning_customer=int(sender.first_seen is not None and sender.first_seen < at),
        customer_messages=0,
        bot_messages=0,
        agent_messages=0,
        fallbacks=0,
        last_fallback=0,
        first_intent="",
        flow="",
        handed_over=0,
        handoff_reason="",
        greeted=0,
        greeting_replied=0,
        csat_asked=0,
        csat_comment="",
        csat_flow="",
    )
    return row


def _channel_of(sender_id: str, event: dict[str, Any]) -> str:
    channel = str(event.get("input_channel") or "")
    if channel:
        return channel
    return sender_id.split(":", 1)[0] if ":" in sender_id else ""


def _product_of(event: dict[str, Any]) -> str:
    parse = event.get("parse_data") or {}
    for entity in parse.get("entities") or event.get("entities") or []:
        if entity.get("entity") == "product" and entity.get("value"):
            return str(entity["value"])
    return ""


def _handoff_reason(state: dict[str, Any]) -> str:
    from xiaoer.handoff.service import reason_for_intent

    if state.get("keyword"):
        return "keyword"
    return str(
        state.get("handoff_reason") or reason_for_intent(state.get("intent") or "", "requested")
    )


class AnalyticsStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- writing -----------------------------------------------------------------------
    def apply(
        self, rows: Iterable[tuple[int, str, dict[str, Any]]], conn: Connection | None = None
    ) -> int:
        """Apply broker rows ``(row id, sender id, event)`` in id order; returns how many
        were applied. With ``conn`` the work joins the caller's transaction (the
        follower moves its cursor in the same one)."""
        if conn is None:
            with self.db.begin() as own:
                return self.apply(rows, own)
        batch = [
            (row_id, str(event.get("sender_id") or sender_id or ""), event)
            for row_id, sender_id, event in rows
        ]
        batch = [b for b in batch if b[1] and not is_sandbox(b[1])]
        senders = self._load_all(conn, {sender_id for _, sender_id, _ in batch})
        messages: dict[int, dict[str, Any]] = {}
        cases: list[dict[str, Any]] = []
        for row_id, sender_id, event in batch:
            self._event(conn, senders[sender_id], row_id, event, messages, cases)
        done = len(batch)
        self._flush(conn, senders, messages, cases)
        return done

    def _load_all(self, conn: Connection, ids: set[str]) -> dict[str, _Sender]:
        """The senders of a batch with their open conversations: two queries per 500."""
        senders = {i: _Sender(i) for i in ids}
        wanted = sorted(ids)
        open_ids: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            for row in conn.execute(
                select(analytics_senders).where(analytics_senders.c.sender_id.in_(part))
            ):
                sender = senders[row.sender_id]
                sender.first_seen = row.first_seen
                sender.state = json.loads(row.state_json or "{}")
                if sender.state.get("conversation"):
                    open_ids[str(sender.state["conversation"])] = row.sender_id
        keys = sorted(open_ids)
        for i in range(0, len(keys), 500):
            t = analytics_conversations
            for found in conn.execute(select(t).where(t.c.id.in_(keys[i : i + 500]))):
                sender = senders[open_ids[found.id]]
                sender.conversation = dict(found._mapping)
                sender.touched[found.id] = sender.conversation
        return senders

    @staticmethod
    def _message(
        conn: Connection, messages: dict[int, dict[str, Any]], event_id: int
    ) -> dict[str, Any] | None:
        if event_id in messages:
            return messages[event_id]
        row = conn.execute(
            select(analytics_messages).where(analytics_messages.c.event_id == event_id)
        ).first()
        if row is None:
            return None
        messages[event_id] = {**row._mapping, "_stored": True}
        return messages[event_id]

    def _start(self, sender: _Sender, at: float, channel: str) -> dict[str, Any]:
        conv = _new_conversation(sender, at, channel)
        sender.conversation = conv
        sender.touched[conv["id"]] = conv
        for key in [
            k for k in sender.state if k not in ("handoff_reason", "paused", "last_action")
        ]:
            del sender.state[key]  # in place: the caller holds this dict
        sender.state["conversation"] = conv["id"]
        if sender.first_seen is None:
            sender.first_seen = at
        return conv

    def _event(
        self,
        conn: Connection,
        sender: _Sender,
        row_id: int,
        event: dict[str, Any],
        messages: dict[int, dict[str, Any]],
        cases: list[dict[str, Any]],
    ) -> None:
        kind = event.get("event")
        at = float(event.get("timestamp") or 0)
        state = sender.state
        conv = sender.conversation
        sender.dirty = True
        if kind == "session_started":
            sender.conversation = None
            state.pop("conversation", None)
            state.pop("pending", None)
            state.pop("agent_handoff", None)
            return
        if conv is not None:
            conv["last_at"] = max(float(conv["last_at"]), at)
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = str((parse.get("intent") or {}).get("name") or "")
            if intent.startswith("EXTERNAL_"):
                state["external"] = intent
                state["external_channel"] = _channel_of(sender.sender_id, event)
                return  # a trigger of the platform or the console, not the customer
            if conv is None:
                conv = self._start(sender, at, _channel_of(sender.sender_id, event))
            if not conv["channel"]:
                conv["channel"] = _channel_of(sender.sender_id, event)
            keyword = (parse.get("intent") or {}).get("handoff_keyword")
            state["intent"] = intent
            state["keyword"] = bool(keyword)
            conv["customer_messages"] += 1
            if not conv["first_intent"] and intent:
                conv["first_intent"] = intent
            if conv["greeted"]:
                conv["greeting_replied"] = 1
            conf = (parse.get("intent") or {}).get("confidence")
            messages[row_id] = {
                "event_id": row_id,
                "conversation_id": conv["id"],
                "sender_id": sender.sender_id,
                "message_id": str(event.get("message_id") or ""),
                "at": at,
                "channel": conv["channel"],
                "intent": intent,
                "confidence": float(conf) if conf is not None else None,
                "product": _product_of(event),
                "text": str(event.get("text") or "")[:2000],
                "fallback": int(intent == FALLBACK_INTENT),
                "to_agent": int(bool(state.get("paused"))),
                "bot_response_seconds": None,
            }
            if intent == FALLBACK_INTENT:
                conv["fallbacks"] += 1
            conv["last_fallback"] = int(intent == FALLBACK_INTENT)
            state["pending"] = None if state.get("paused") else row_id
            state["last_message"] = row_id
            return
        if kind == "bot":
            meta = event.get("metadata") or {}
            if meta.get("agent_id"):
                if conv is None:
                    return
                conv["agent_messages"] += 1
                if meta.get("handoff_id"):
                    conv["handoff_id"] = int(meta["handoff_id"])
                if conv["agent_first_reply_at"] is None:
                    conv["agent_first_reply_at"] = at
                    conv["agent_id"] = int(meta["agent_id"])
                return
            if conv is None:
                if state.get("last_action") != GREET_ACTION:
                    return  # e.g. a notification to a buyer who has not written
                channel = str(state.get("external_channel") or "")
                conv = self._start(sender, at, channel or _channel_of(sender.sender_id, event))
            if state.get("last_action") == GREET_ACTION and conv["customer_messages"] == 0:
                conv["greeted"] = 1
            conv["bot_messages"] += 1
            pending = state.get("pending")
            if pending is not None:
                message = self._message(conn, messages, int(pending))
                if message is not None and message.get("bot_response_seconds") is None:
                    message["bot_response_seconds"] = max(0.0, at - float(message["at"]))
                    message["_dirty"] = True
                state["pending"] = None
            # a case the submit action opened (its form collected a reason); an existing
            # case it only reports has none
            if state.get("last_action") == AFTER_SALES_ACTION and state.get("as_reason"):
                for case_id in CASE_RE.findall(str(event.get("text") or "")):
                    cases.append(
                        {
                            "case_id": case_id,
                            "conversation_id": conv["id"],
                            "sender_id": sender.sender_id,
                            "at": at,
                            "case_type": str(state.get("as_type") or ""),
                            "reason": str(state.get("as_reason") or ""),
                        }
                    )
            return
        if kind == "action":
            name = str(event.get("name") or "")
            state["last_action"] = name
            if conv is None:
                return
            if name == FALLBACK_ACTION:
                last = state.get("last_message")
                message = self._message(conn, messages, int(last)) if last else None
                if message is not None and not message.get("fallback"):
                    message["fallback"] = 1
                    message["_dirty"] = True
                    conv["fallbacks"] += 1
                conv["last_fallback"] = 1
            elif name == HANDOFF_ACTION and not conv["handed_over"]:
                conv["handed_over"] = 1
                conv["handoff_at"] = at
                conv["handoff_reason"] = _handoff_reason(state)
                conv["flow"] = name
            elif name not in PLUMBING and not name.startswith(("utter_", "validate_")):
                conv["flow"] = name
            return
        if kind == "active_loop":
            loop = event.get("name")
            if loop and loop != CSAT_FORM and conv is not None:
                conv["flow"] = str(loop)
            return
        if kind == "slot":
            slot_name, value = event.get("name"), event.get("value")
            if slot_name in ("handoff_reason", "as_type", "as_reason"):
                state[str(slot_name)] = value
            elif (
                conv is not None and slot_name == "csat_asked" and value and not conv["csat_asked"]
            ):
                conv["csat_asked"] = 1  # the rating question was asked (actions/satisfaction.py)
                conv["csat_flow"] = conv["flow"]
            elif conv is not None and slot_name == "csat_rating" and value not in (None, ""):
                try:
                    rating = int(float(str(value)))
                except (TypeError, ValueError):
                    return
                if 1 <= rating <= 5:
                    conv["csat_rating"] = rating
                    conv["csat_at"] = at
                    if not conv["csat_asked"]:
                        conv["csat_asked"] = 1
                        conv["csat_flow"] = conv["flow"]
            elif conv is not None and slot_name == "csat_comment" and value:
                conv["csat_comment"] = str(value)[:1000]
            return
        if kind == "pause":
            state["paused"] = True
            state["pending"] = None
            return
        if kind == "resume":
            state["paused"] = False
            if conv is not None and conv["handed_over"] and conv["agent_closed_at"] is None:
                conv["agent_closed_at"] = at
            return

    def _flush(
        self,
        conn: Connection,
        senders: dict[str, _Sender],
        messages: dict[int, dict[str, Any]],
        cases: list[dict[str, Any]],
    ) -> None:
        # whole batches (a delete and an executemany insert per table, in the caller's
        # transaction): per-row upserts cost a statement compilation each
        convs = {c["id"]: c for x in senders.values() if x.dirty for c in x.touched.values()}
        rows = [
            {
                "sender_id": x.sender_id,
                "first_seen": x.first_seen,
                "state_json": json.dumps(x.state, ensure_ascii=False),
            }
            for x in senders.values()
            if x.dirty
        ]
        for table, key, values in (
            (analytics_conversations, "id", list(convs.values())),
            (analytics_senders, "sender_id", rows),
        ):
            keys = [v[key] for v in values]
            for i in range(0, len(keys), 500):
                conn.execute(delete(table).where(table.c[key].in_(keys[i : i + 500])))
            if values:
                conn.execute(table.insert(), values)
        new = [
            {k: v for k, v in m.items() if not k.startswith("_")}
            for m in messages.values()
            if not m.get("_stored")
        ]
        if new:
            conn.execute(analytics_messages.insert(), new)
        for m in messages.values():
            if m.get("_stored") and m.get("_dirty"):
                conn.execute(
                    analytics_messages.update()
                    .where(analytics_messages.c.event_id == m["event_id"])
                    .values(fallback=m["fallback"], bot_response_seconds=m["bot_response_seconds"])
                )
        if cases:
            unique = {c["case_id"]: c for c in cases}
            conn.execute(delete(analytics_cases).where(analytics_cases.c.case_id.in_(list(unique))))
            conn.execute(analytics_cases.insert(), list(unique.values()))

    def clear(self, conn: Connection) -> None:
        """Empty every analytics table (a rebuild)."""
        for table in TABLES:
            conn.execute(delete(table))


def get_analytics_store() -> AnalyticsStore:
    return AnalyticsStore()
