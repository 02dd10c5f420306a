"""The small stores of the project database, on SQLite and PostgreSQL (``project_db``):
typed buttons, the REST inbox, urges, order checks, console sessions. (The notification
outbox: test_doudian_push.py; the event cursor: test_leads_events.py.)"""

from __future__ import annotations

import time

import pytest

from xiaoer.console.web import SessionStore
from xiaoer.conversations.buttons import ButtonMemory, get_button_memory
from xiaoer.conversations.inbox import RestInbox, get_rest_inbox
from xiaoer.core.db import Database
from xiaoer.shop.access import OrderCheckStore, get_order_check_store
from xiaoer.shop.urges import UrgeStore, get_urge_store

pytestmark = pytest.mark.usefixtures("project_db")

CANCEL = {"title": "确认取消", "payload": "/affirm"}
KEEP = {"title": "不取消了", "payload": "/deny"}


def test_typed_button_titles_mean_the_latest_buttons(project_db: Database) -> None:
    memory = ButtonMemory(project_db)
    memory.remember("s1", [{"text": "要取消订单吗？", "buttons": [CANCEL, KEEP]}])
    assert memory.resolve("s1", "确认取消！") == "/affirm"
    assert memory.resolve("s1", "ＢＵ不取消了") == "ＢＵ不取消了"  # not a title
    assert memory.resolve("s2", "确认取消") == "确认取消"  # another conversation
    memory.remember("s1", [{"text": "好的", "buttons": [KEEP]}])  # a newer offer replaces it
    assert memory.resolve("s1", "确认取消") == "确认取消"
    assert get_button_memory().resolve("s1", "不取消了") == "/deny"  # the same database
    memory.remember("s1", [{"text": "已为您保留订单"}])  # no buttons: forgotten
    assert memory.resolve("s1", "不取消了") == "不取消了"


def test_rest_inbox_and_its_token(project_db: Database) -> None:
    inbox = RestInbox(project_db)
    first = inbox.add("buyer-1", {"text": "客服小美为您服务"})
    inbox.add("buyer-2", {"text": "别人的消息"})
    second = inbox.add("buyer-1", {"text": "已为您催促发货", "buttons": []})
    assert [m["text"] for m in inbox.since("buyer-1")] == ["客服小美为您服务", "已为您催促发货"]
    assert [m["id"] for m in inbox.since("buyer-1", after=first)] == [second]
    assert get_rest_inbox().count() == 3
    token = inbox.issue_token("buyer-1")
    assert token and inbox.issue_token("buyer-1") is None  # handed out once
    assert inbox.token_valid("buyer-1", token)
    assert not inbox.token_valid("buyer-2", token)
    assert not inbox.token_valid("buyer-1", token + "x")
    assert not inbox.token_valid("buyer-1", None)


def test_urges_count_per_customer_and_day(project_db: Database) -> None:
    urges = UrgeStore(project_db)
    assert urges.record("conv-1", "O1", 26.04, buyer_id="B1") == 1
    assert urges.record("conv-2", "O1", 27.0, buyer_id="B1") == 2  # the same buyer
    assert urges.record("conv-3", "O1", 27.0, buyer_id="B2") == 1  # another buyer
    assert urges.record("anon", "O1", 28.0) == 1  # a conversation without a buyer
    assert [(u.sender_id, u.overdue_hours, u.buyer_id) for u in urges.for_order("O1")][:1] == [
        ("conv-1", 26.0, "B1")
    ]
    assert [u.sender_id for u in get_urge_store().recent(2)] == ["anon", "conv-3"]
    assert urges.clear() == 4
    assert urges.for_order("O1") == []


def test_order_checks_limit_lookups_and_count_failures(project_db: Database) -> None:
    checks = OrderCheckStore(project_db)
    assert all(checks.lookup_allowed("s", f"O{i}", 3) for i in range(3))
    assert checks.lookup_allowed("s", "O1", 3)  # an order already looked up
    assert not checks.lookup_allowed("s", "O9", 3)  # a fourth distinct order
    assert checks.lookup_allowed("other", "O9", 3)
    assert checks.lookup_allowed("s", "O9", 0)  # no limit
    assert not checks.is_verified("s", "O1", 30)
    checks.record_verified("s", "O1")
    assert checks.is_verified("s", "O1", 30) and not checks.is_verified("other", "O1", 30)
    checks.record_failure("s", "O2")
    checks.record_failure("other", "O2")
    assert get_order_check_store().failures("O2") == 2
    assert checks.failures("O2", sender_id="s") == 1


def test_console_sessions(project_db: Database) -> None:
    sessions = SessionStore(project_db, lifetime_seconds=60)
    token = sessions.create(7)
    session = sessions.get(token)
    assert session is not None and session.agent_id == 7 and session.expires_at > time.time()
    assert sessions.get("forged") is None and sessions.get("") is None
    other = sessions.create(7)
    sessions.delete(token)
    assert sessions.get(token) is None and sessions.get(other) is not None
    sessions.delete_for_agent(7)
    assert sessions.get(other) is None
    expired = SessionStore(project_db, lifetime_seconds=-1).create(8)
    assert sessions.get(expired) is None
