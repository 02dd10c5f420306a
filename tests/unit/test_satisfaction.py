"""Customer satisfaction actions: asked once, skippable, a low rating asks what went wrong."""

from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.satisfaction import (
    SKIPPED,
    ActionCsatAsk,
    ActionCsatThanks,
    ValidateCsatForm,
    rating_of,
)
from tests.helpers import DOMAIN, run, texts, tracker

pytestmark = pytest.mark.asyncio


async def test_goodbye_asks_once_with_five_buttons_and_a_skip() -> None:
    msgs, events = await run(ActionCsatAsk(), tracker("goodbye", "拜拜"))
    buttons = msgs[0]["buttons"]
    assert [b["title"] for b in buttons] == ["1分", "2分", "3分", "4分", "5分", "跳过"]
    assert buttons[4]["payload"] == '/rate_service{"csat_rating":"5"}'
    assert "1-5" in texts(msgs) or "1分" in texts(msgs)
    assert events == [{"event": "slot", "timestamp": None, "name": "csat_asked", "value": True}]
    # asked already in this conversation: nothing
    msgs, events = await run(
        ActionCsatAsk(), tracker("goodbye", "再见", slots={"csat_asked": True})
    )
    assert msgs == [] and events == []


async def test_thanks_ask_only_after_a_solved_question() -> None:
    small_talk = tracker(
        "thank",
        "谢谢",
        events=[
            {"event": "session_started"},
            {"event": "action", "name": "action_greet"},
            {"event": "user", "text": "谢谢"},
        ],
    )
    assert await run(ActionCsatAsk(), small_talk) == ([], [])
    solved = tracker(
        "thank",
        "谢谢",
        events=[
            {"event": "session_started"},
            {"event": "action", "name": "action_order_status"},
            {"event": "user", "text": "谢谢"},
        ],
    )
    msgs, events = await run(ActionCsatAsk(), solved)
    assert msgs and events[0]["name"] == "csat_asked"


async def test_the_agent_closing_asks_for_a_rating() -> None:
    msgs, _ = await run(ActionCsatAsk(), tracker("EXTERNAL_ask_csat", ""))
    assert len(msgs[0]["buttons"]) == 6


def test_ratings_as_customers_give_them() -> None:
    assert [rating_of(v) for v in ("5", "给4分", "五星好评", "1分 太差了", "skip", "跳过")] == [
        5,
        4,
        5,
        1,
        SKIPPED,
        SKIPPED,
    ]
    assert rating_of("9分") is None and rating_of("") is None and rating_of("好的") is None


async def test_a_low_rating_asks_what_went_wrong_a_high_one_does_not() -> None:
    form = ValidateCsatForm()
    d = CollectingDispatcher()
    slots = ["csat_rating", "csat_comment"]
    low = tracker("rate_service", "", slots={"csat_rating": "2"})
    high = tracker("rate_service", "", slots={"csat_rating": "4"})
    assert await form.required_slots(slots, d, low, DOMAIN) == slots
    assert await form.required_slots(slots, d, high, DOMAIN) == ["csat_rating"]
    assert form.validate_csat_rating("五", d, high, DOMAIN) == {"csat_rating": "5"}
    # not a rating: the question is dropped, never asked again
    assert form.validate_csat_rating("随便", d, high, DOMAIN) == {"csat_rating": SKIPPED}
    comment = tracker("complain", "客服回复太慢了")
    assert form.validate_csat_comment("客服回复太慢了", d, comment, DOMAIN) == {
        "csat_comment": "客服回复太慢了"
    }
    assert form.validate_csat_comment("不用了", d, tracker("deny", "不用了"), DOMAIN) == {
        "csat_comment": "-"
    }


async def test_thanks_for_the_rating() -> None:
    low, _ = await run(ActionCsatThanks(), tracker("complain", "", slots={"csat_rating": "1"}))
    high, _ = await run(ActionCsatThanks(), tracker("rate_service", "", slots={"csat_rating": "5"}))
    skipped, _ = await run(
        ActionCsatThanks(), tracker("rate_service", "", slots={"csat_rating": SKIPPED})
    )
    assert "改进" in texts(low) or "抱歉" in texts(low)
    assert "评" in texts(high) or "支持" in texts(high)
    assert "不打扰" in texts(skipped)
