"""End-to-end: the rating question (actions/satisfaction.py) through the real Rasa and
action servers over REST: asked after a question the bot answered and 谢谢, not after
small talk and 谢谢, and only once in a conversation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

STARS = ["1分", "2分", "3分", "4分", "5分"]  # the buttons of ask_csat_rating (any variation)


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(trained_model, tmp_path_factory.mktemp("csat-stack")) as s:
        yield s


def sender() -> str:
    return f"e2e-csat-{uuid.uuid4().hex[:10]}"


def text_of(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def buttons_of(replies: list[dict]) -> list[str]:
    return [b.get("title") for r in replies for b in r.get("buttons") or []]


def test_thanks_after_an_answered_order_status_asks_once(stack: Stack) -> None:
    user = sender()
    answer = text_of(stack.say(user, "帮我查下订单 6938271045123400002 到哪了"))
    assert "SF1234567890123" in answer
    thanks = stack.say(user, "谢谢")
    assert buttons_of(thanks)[:5] == STARS, text_of(thanks)
    assert "满意" in text_of(thanks) or "打" in text_of(thanks)
    # another question and another thank-you: not asked twice
    stack.say(user, "帮我查下订单 6938271045123400001 到哪了")
    again = stack.say(user, "谢谢你")
    assert not set(STARS) & set(buttons_of(again)), text_of(again)


def test_thanks_after_a_greeting_asks_nothing(stack: Stack) -> None:
    user = sender()
    stack.say(user, "你好")
    thanks = stack.say(user, "谢谢")
    assert thanks, "the thank-you is answered"
    assert not set(STARS) & set(buttons_of(thanks)), text_of(thanks)
    assert "满意" not in text_of(thanks), text_of(thanks)
