"""End-to-end: conversations as real anonymous customers write them over REST (issue 12,
with issue 11's phone check). Real action server and Rasa server; each test asserts what
the customer reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PAID, SHIPPED, WITH_CASE = "6938271045123400001", "6938271045123400002", "6938271045123400003"
UNPAID = "6938271045123400004"
PHONE_TAIL = "0000"  # the demo recipients' phone ends with it


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("stack-real")) as s:
        yield s


def sender() -> str:
    return f"real-{uuid.uuid4().hex[:10]}"


def said(stack: Stack, user: str, text: str) -> str:
    return "\n".join(r.get("text") or "" for r in stack.say(user, text))


def test_a_question_at_the_phone_tail_step_is_no_try(stack: Stack):
    user = sender()
    stack.say(user, "我要改收货地址")
    assert "手机号后4位" in said(stack, user, PAID)
    for question in ("还要几天啊", "为啥要这个"):
        reply = said(stack, user, question)
        assert "没有对上" not in reply and "不一致" not in reply, reply
        assert "后4位" in reply, reply
    assert "核实" in said(stack, user, PHONE_TAIL)


def test_refund_progress_is_read_without_the_phone_check(stack: Stack):
    user = sender()
    stack.say(user, "我的退款到哪一步了")
    reply = said(stack, user, WITH_CASE)
    assert "AS20261101" in reply and "退款处理中" in reply, reply
    assert "后4位" not in reply and "¥" not in reply
    reply = said(stack, sender(), "AS20261101 退款怎么样了")
    assert "AS20261101" in reply and "退款处理中" in reply, reply


def test_address_name_and_phone_in_one_message(stack: Stack):
    user = sender()
    stack.say(user, "我要改地址")
    stack.say(user, PAID)
    stack.say(user, PHONE_TAIL)
    reply = said(stack, user, "改成 浙江省杭州市西湖区文三路88号 李四 13900001111")
    assert "李四" in reply and "文三路88号" in reply and "139" in reply, reply
    assert "已为您修改" in said(stack, user, "对 没问题")


def test_new_address_sent_before_the_phone_check_is_kept(stack: Stack):
    user = sender()
    stack.say(user, "我要改地址")
    stack.say(user, UNPAID)  # (PAID's recipient is changed by the test above)
    reply = said(stack, user, "改成 浙江省杭州市西湖区文三路88号 李四 13900001111")
    assert "没有对上" not in reply and "后4位" in reply, reply
    reply = said(stack, user, PHONE_TAIL)
    assert "李四" in reply and "文三路88号" in reply, reply
    assert "已为您修改" in said(stack, user, "对 没问题")


def test_restock_without_a_product(stack: Stack):
    user = sender()
    reply = said(stack, user, "黑色M什么时候补货")
    assert "纯棉短袖T恤" in reply and "补货" in reply, reply
    reply = said(stack, user, "到货能通知我吗 13900001111")
    assert "到货" in reply and ("记下" in reply or "登记" in reply), reply


@pytest.mark.parametrize("pick", ["T恤", '/ask_size{"product": "P1001"}'], ids=["typed", "tap"])
def test_size_advice_after_the_product_is_picked(stack: Stack, pick: str):
    user = sender()
    buttons = [
        b for r in stack.say(user, "一米七 一百二十斤 穿哪个码") for b in r.get("buttons") or []
    ]
    assert any(b["title"] == "纯棉短袖T恤" for b in buttons), buttons
    reply = said(stack, user, pick)
    assert "L" in reply and "170" in reply and "面料" not in reply, reply


def test_bare_size_follow_up(stack: Stack):
    user = sender()
    stack.say(user, "跑鞋多少钱 白色44有吗")
    for follow_up in ("那43呢", "43码呢"):
        reply = said(stack, user, follow_up)
        assert "白色 43" in reply and "订单号" not in reply, reply


def test_arrival_of_the_order_shown(stack: Stack):
    user = sender()
    assert "SF1234567890123" in said(stack, user, f"帮我查下订单 {SHIPPED}")
    for question in ("今天能送到不", "明天能到吗"):
        reply = said(stack, user, question)
        assert "SF1234567890123" in reply, reply


def test_third_unknown_order_id_offers_a_human_again(stack: Stack):
    user = sender()
    stack.say(user, "查订单")
    replies = [stack.say(user, f"69382710451234999{i}{i}") for i in range(3)]

    def offers(rs: list[dict]) -> bool:
        return any("人工" in (r.get("text") or "") for r in rs)

    assert offers(replies[1]) and offers(replies[2]), replies
