"""End-to-end over REST: live-room and specific shop answers (issue 12), with the real
Rasa server, action server and the embedded demo shop."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("stack-answers")) as s:
        yield s


def reply(stack: Stack, text: str, user: str | None = None) -> str:
    replies = stack.say(user or f"e2e-{uuid.uuid4().hex[:10]}", text)
    joined = "\n".join(r.get("text") or "" for r in replies)
    assert not re.search(r"\{\w+\}", joined), f"unfilled placeholder in: {joined}"
    return joined


def test_stock_of_link_3(stack: Stack):
    text = reply(stack, "3号链接有货吗")
    assert "3号链接是陶瓷马克杯" in text and "有货" in text


def test_stock_of_link_3_in_chinese_numerals(stack: Stack):
    text = reply(stack, "三号链接还有吗")
    assert "陶瓷马克杯" in text and "有货" in text


def test_price_of_what_the_host_wears(stack: Stack):
    text = reply(stack, "主播身上那件多少钱")
    assert "纯棉短袖T恤" in text and "¥89.00" in text
    assert "券后" not in text  # 满199减20 does not apply to one ¥89 item


def test_which_link_is_the_t_shirt(stack: Stack):
    assert "1号链接" in reply(stack, "几号链接是T恤")


def test_how_to_buy(stack: Stack):
    assert "小黄车" in reply(stack, "怎么拍")


def test_service_hours_are_told_not_handed_over(stack: Stack):
    text = reply(stack, "人工客服几点上班")
    assert "09:00-22:00" in text and "转接" not in text


def test_xinjiang_surcharge_and_hong_kong(stack: Stack):
    assert "15元" in reply(stack, "发新疆吗")
    assert "不发" in reply(stack, "寄香港可以吗")


def test_short_size_question_follows_the_product_in_focus(stack: Stack):
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    reply(stack, "T恤多少钱", user)
    text = reply(stack, "黑色M码有吗", user)
    assert "缺货" in text and "补货" in text and "白色 M" in text
