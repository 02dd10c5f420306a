"""A scripted event log for the analytics tests: five conversations as Rasa's SQL event
broker writes them (table ``events``: id, sender_id, data), plus the lead that lead capture
made from one of them. The figures they must give are computed by hand in the tests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from xiaoer.core.clock import BEIJING

DAY = "2026-11-02"
NEXT_DAY = "2026-11-03"


def ts(day: str, hhmmss: str) -> float:
    whole, _, fraction = hhmmss.partition(".")
    moment = datetime.fromisoformat(f"{day}T{whole}").replace(tzinfo=BEIJING)
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def user(at: float, text: str, intent: str, channel: str = "rest", **extra: Any) -> dict:
    entities = extra.pop("entities", [])
    return {
        "event": "user",
        "timestamp": at,
        "text": text,
        "input_channel": channel,
        "message_id": extra.pop("message_id", f"m{at}"),
        "parse_data": {
            "intent": {"name": intent, "confidence": 0.9},
            "entities": entities,
            "text": text,
        },
        "metadata": {},
    }


def bot(at: float, text: str, **metadata: Any) -> dict:
    return {"event": "bot", "timestamp": at, "text": text, "data": {}, "metadata": metadata}


def action(at: float, name: str) -> dict:
    return {"event": "action", "timestamp": at, "name": name}


def slot(at: float, name: str, value: Any) -> dict:
    return {"event": "slot", "timestamp": at, "name": name, "value": value}


def simple(at: float, kind: str, **more: Any) -> dict:
    return {"event": kind, "timestamp": at, **more}


def script() -> list[tuple[str, dict]]:
    """(sender id, event) in the order Rasa wrote them."""
    a, b, c = "rest:alice", "rest:bob", "douyin:carol"
    t = lambda hms: ts(DAY, hms)  # noqa: E731
    events: list[tuple[str, dict]] = []
    # A: greeting, a product question, goodbye, rated 5 -> automated
    events += [
        (a, action(t("10:00:00"), "action_session_start")),
        (a, simple(t("10:00:00"), "session_started")),
        (a, user(t("10:00:00"), "亲在吗", "greet")),
        (a, action(t("10:00:01"), "action_greet")),
        (a, bot(t("10:00:01"), "亲，您好呀～")),
        (
            a,
            user(
                t("10:00:10"),
                "纯棉短袖T恤多少钱",
                "ask_price",
                entities=[{"entity": "product", "value": "P1001"}],
            ),
        ),
        (a, action(t("10:00:10.5"), "action_product_question")),
        (a, bot(t("10:00:10.5"), "纯棉短袖T恤现在 ¥89.00")),
        (a, user(t("10:01:00"), "好的拜拜", "goodbye")),
        (a, action(t("10:01:00.3"), "utter_goodbye")),
        (a, bot(t("10:01:00.3"), "再见亲～")),
        (a, action(t("10:01:00.4"), "action_csat_ask")),
        (a, bot(t("10:01:00.4"), "给这次服务打个分吧")),
        (a, slot(t("10:01:00.4"), "csat_asked", True)),
        (a, user(t("10:01:20"), "5", "rate_service")),
        (a, slot(t("10:01:20"), "csat_rating", "5")),
        (a, action(t("10:01:20.1"), "csat_form")),
        (a, simple(t("10:01:20.1"), "active_loop", name="csat_form")),
        (a, slot(t("10:01:20.1"), "csat_rating", "5")),
        (a, simple(t("10:01:20.1"), "active_loop", name=None)),
        (a, action(t("10:01:20.1"), "action_csat_thanks")),
        (a, bot(t("10:01:20.1"), "谢谢您的评价")),
    ]
    # B: a fallback, then a human; the agent replies after 2 minutes and hands back
    # after 8 more; rated 2 with a comment -> handed over (reason requested)
    events += [
        (b, simple(t("11:00:00"), "session_started")),
        (b, user(t("11:00:00"), "asdfgh", "nlu_fallback")),
        (b, action(t("11:00:00.2"), "action_default_fallback")),
        (b, bot(t("11:00:00.2"), "抱歉没看懂")),
        (b, user(t("11:00:30"), "转人工", "request_human")),
        (b, action(t("11:00:30.4"), "action_handoff")),
        (b, bot(t("11:00:30.4"), "正在为您转接人工客服")),
        (b, simple(t("11:00:30.4"), "pause")),
        # the queue's re-announcement is a bot message: never an agent's first response
        (b, bot(t("11:01:30"), "抱歉让您久等了，您的问题还在排队", handoff_id=7)),
        (b, bot(t("11:02:30"), "您好，我是客服小美", agent_id=1, agent_name="小美", handoff_id=7)),
        (b, user(t("11:03:00"), "我的快递到哪了", "order_status")),
        (b, bot(t("11:04:00"), "已经在派送了", agent_id=1, agent_name="小美", handoff_id=7)),
        (b, simple(t("11:10:30"), "resume")),
        (b, bot(t("11:10:30"), "人工客服已处理完毕", handoff_id=7, handed_back=True)),
        (b, user(t("11:10:30.1"), "/EXTERNAL_ask_csat", "EXTERNAL_ask_csat")),
        (b, action(t("11:10:30.1"), "action_csat_ask")),
        (b, bot(t("11:10:30.1"), "给这次服务打个分吧")),
        (b, slot(t("11:10:30.1"), "csat_asked", True)),
        (b, user(t("11:11:00"), "2", "rate_service")),
        (b, slot(t("11:11:00.1"), "csat_rating", "2")),
        (b, action(t("11:11:00.1"), "csat_form")),
        (b, simple(t("11:11:00.1"), "active_loop", name="csat_form")),
        (b, bot(t("11:11:00.1"), "能说说哪里做得不好吗")),
        (b, user(t("11:11:30"), "等太久了", "complain")),
        (b, slot(t("11:11:30.1"), "csat_comment", "等太久了")),
        (b, simple(t("11:11:30.1"), "active_loop", name=None)),
        (b, action(t("11:11:30.1"), "action_csat_thanks")),
        (b, bot(t("11:11:30.1"), "谢谢您的反馈")),
    ]
    # C (Douyin): leaves a phone number (a lead), then a message the bot cannot read
    events += [
        (c, simple(t("11:59:00"), "session_started")),
        (c, user(t("11:59:00"), "/EXTERNAL_douyin_greet", "EXTERNAL_douyin_greet", "douyin")),
        (c, action(t("11:59:00.1"), "action_douyin_greet")),
        (c, bot(t("11:59:00.1"), "欢迎光临小店～")),
        (
            c,
            user(
                t("12:00:00"),
                "我手机13812345678",
                "provide_contact",
                channel="douyin",
                message_id="msg-carol-1",
            ),
        ),
        (c, bot(t("12:00:00.6"), "联系方式已记下")),
        (c, user(t("12:00:40"), "xyz???", "nlu_fallback", channel="douyin")),
        (c, action(t("12:00:40.2"), "action_default_fallback")),
        (c, bot(t("12:00:40.2"), "抱歉没看懂")),
    ]
    # the console's test chat: never counted
    events += [
        ("test-chat:admin-1", user(t("13:00:00"), "你好", "greet")),
        ("test-chat:admin-1", bot(t("13:00:01"), "亲，您好呀～")),
    ]
    # D: Alice comes back the next day (returning customer)
    events += [
        (a, simple(ts(NEXT_DAY, "09:00:00"), "session_started")),
        (a, user(ts(NEXT_DAY, "09:00:00"), "还有货吗", "ask_stock")),
        (a, bot(ts(NEXT_DAY, "09:00:00.5"), "有货的")),
        # the return form's last steps: a case is opened (its reason from the form) ...
        (a, slot(ts(NEXT_DAY, "09:02:00"), "as_type", "return_refund")),
        (a, slot(ts(NEXT_DAY, "09:02:00"), "as_reason", "不想要了")),
        (a, action(ts(NEXT_DAY, "09:02:10"), "action_submit_after_sales")),
        (a, bot(ts(NEXT_DAY, "09:02:10"), "已为您提交退货申请，售后单号 AS20261103001")),
        (a, slot(ts(NEXT_DAY, "09:02:10"), "as_reason", None)),
        # ... and an existing case is only reported: not opened again
        (a, action(ts(NEXT_DAY, "09:03:00"), "action_submit_after_sales")),
        (a, bot(ts(NEXT_DAY, "09:03:00"), "您的售后单 AS20261101 退款处理中")),
    ]
    for sender, event in events:
        event["sender_id"] = sender
    return events


def write_events(path: Path, events: list[tuple[str, dict]]) -> None:
    """Append the events to a broker file as Rasa's SQL event broker does."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " sender_id VARCHAR(255), data TEXT)"
            )
        )
        for sender, event in events:
            conn.execute(
                sa.text("INSERT INTO events (sender_id, data) VALUES (:s, :d)"),
                {"s": sender, "d": json.dumps(event, ensure_ascii=False)},
            )
    engine.dispose()


def add_lead(db: Any) -> None:
    """The lead lead capture made from Carol's message (status: contacted)."""
    from xiaoer.leads.store import leads

    with db.begin() as conn:
        conn.execute(
            leads.insert().values(
                name="",
                status="contacted",
                source_sender_id="douyin:carol",
                source_channel="douyin",
                source_message_id="msg-carol-1",
                source_message="我手机138****5678",
                created_at="2026-11-02T12:00:00+08:00",
                updated_at="2026-11-02T12:00:00+08:00",
                last_activity_at="2026-11-02T12:00:00+08:00",
            )
        )


def add_agent(db: Any) -> None:
    from xiaoer.agents.store import agents

    with db.begin() as conn:
        conn.execute(
            agents.insert().values(
                id=1,
                username="xiaomei",
                display_name="小美",
                password_hash="x",
                created_at="2026-11-01T00:00:00+08:00",
            )
        )
