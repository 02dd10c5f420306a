"""End-to-end with the shop backend switched to Doudian, against the local fake Doudian."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.shop.doudian_fake import FakeDoudian, running_fake_doudian
from xiaoer.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDoudian]:
    with running_fake_doudian() as f:
        yield f


@pytest.fixture(scope="module")
def stack(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory, fake: FakeDoudian
) -> Iterator[Stack]:
    env = {
        "XIAOER_BACKEND": "doudian",
        "XIAOER_DOUDIAN_BASE_URL": fake.base_url,
        "XIAOER_DOUDIAN_APP_KEY": fake.app_key,
        "XIAOER_DOUDIAN_APP_SECRET": fake.app_secret,
        "XIAOER_DOUDIAN_ACCESS_TOKEN": fake.access_token,
    }
    with running_stack(trained_model, tmp_path_factory.mktemp("doudian"), env_extra=env) as s:
        yield s


def sender() -> str:
    return f"dd-{uuid.uuid4().hex[:10]}"


def text_of(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def test_order_status_from_doudian(stack: Stack):
    text = text_of(stack.say(sender(), "帮我查下订单 6938271045123400002 到哪了"))
    assert "SF1234567890123" in text and "【杭州转运中心】已发出，下一站【广州转运中心】" in text


def test_unpaid_and_unknown_orders(stack: Stack):
    assert "还没有付款" in text_of(stack.say(sender(), "订单6938271045123400004什么状态"))
    user = sender()
    stack.say(user, "查一下我的订单")
    assert "1234567890123456" in text_of(stack.say(user, "1234567890123456"))


def test_existing_case_from_doudian(stack: Stack):
    text = text_of(stack.say(sender(), "订单6938271045123400003我要退货"))
    assert "AS20261101" in text and "39.90" in text


def test_new_return_is_queued_for_an_agent_with_how_to_apply_in_the_app(stack: Stack):
    user = sender()
    stack.say(user, "我想退货")
    stack.say(user, "6938271045123400007")
    stack.say(user, "不想要了")
    text = text_of(stack.say(user, "/affirm"))
    assert "申请售后" in text and "人工客服" in text
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    rows = db.execute(
        "SELECT reason, details FROM handoff_requests WHERE sender_id = ?", (user,)
    ).fetchall()
    assert rows and rows[0][0] == "after_sales" and "6938271045123400007" in rows[0][1]


def test_doudian_outage_gets_a_polite_answer(stack: Stack, fake: FakeDoudian):
    fake.inject("order.orderDetail", status=502)
    try:
        text = text_of(stack.say(sender(), "订单6938271045123400001到哪了"))
    finally:
        fake.clear_faults()
    assert "订单系统暂时有点忙" in text
