"""End-to-end over REST: several questions in one message get every answer, in order,
in one reply (clause splitting, xiaoer/nlu/multi.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("stack-multi")) as s:
        yield s


def texts(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def test_price_and_free_shipping_in_one_reply(stack: Stack):
    text = texts(stack.say(f"e2e-{uuid.uuid4().hex[:10]}", "这件T恤多少钱，包邮吗"))
    assert "89" in text  # the T-shirt's price
    assert "包邮" in text  # the shipping policy
    assert text.index("89") < text.index("包邮")  # answered in the order asked
    assert "没太明白" not in text and "没看懂" not in text


def test_price_and_shipping_time_separated_by_a_space(stack: Stack):
    text = texts(stack.say(f"e2e-{uuid.uuid4().hex[:10]}", "T恤多少钱 什么时候发"))
    assert "89" in text and "48小时" in text  # the price, then when it ships
    assert text.index("89") < text.index("48小时")


def test_the_readme_example_shows_the_order(stack: Stack):
    text = texts(stack.say(f"e2e-{uuid.uuid4().hex[:10]}", "帮我查下订单 6938271045123400002"))
    assert "SF1234567890123" in text and "已发货" in text
