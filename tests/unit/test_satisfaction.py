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


def said(text: str, intent: str) -> dict:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}


def did(name: str) -> dict:
    return {"event": "action", "name": name}


def loop(name: str | None) -> dict:
    return {"event": "active_loop", "name": name}


START = [did("action_session_start"), {"event": "session_started"}, did("action_listen")]
# 我的订单到哪了 → the order form asks for the number → it is given → the status is told
ORDER_STATUS_ANSWERED = [
    *START,
    said("我的订单到哪了", "order_status"),
    did("order_status_form"),
    loop("order_status_form"),
    {"event": "slot", "name": "requested_slot", "value": "order_id"},
    did("action_listen"),
    said("6938271045123400002", "inform_order_id"),
    did("order_status_form"),
    {"event": "slot", "name": "order_id", "value": "6938271045123400002"},
    {"event": "slot", "name": "requested_slot", "value": None},
    loop(None),
    did("action_order_status"),
    did("action_listen"),
]


def thanks_after(events: list[dict], slots: dict | None = None):
    return tracker(
        "thank",
        "谢谢",
        slots=slots,
        events=[*events, said("谢谢", "thank"), did("utter_thank")],
    )


async def test_thanks_after_an_answered_order_status_asks_for_a_rating() -> None:
    msgs, events = await run(ActionCsatAsk(), thanks_after(ORDER_STATUS_ANSWERED))
    assert [b["title"] for b in msgs[0]["buttons"]][:5] == ["1分", "2分", "3分", "4分", "5分"]
    assert events[0]["name"] == "csat_asked" and events[0]["value"] is True


async def test_thanks_after_a_greeting_alone_asks_nothing() -> None:
    hello = [*START, said("你好", "greet"), did("action_greet"), did("action_listen")]
    assert await run(ActionCsatAsk(), thanks_after(hello)) == ([], [])
    # small talk around it changes nothing: 你是机器人吗
    chat = [
        *hello,
        said("你是机器人吗", "bot_challenge"),
        did("utter_iamabot"),
        did("action_listen"),
    ]
    assert await run(ActionCsatAsk(), thanks_after(chat)) == ([], [])


async def test_thanks_before_the_question_is_answered_asks_nothing() -> None:
    # the form still waits for the order number: nothing is solved yet
    asked = ORDER_STATUS_ANSWERED[:8]
    assert await run(ActionCsatAsk(), thanks_after(asked)) == ([], [])
    # the customer cancelled the form: not solved either
    cancelled = [*asked, said("算了", "deny"), did("action_deactivate_loop"), loop(None)]
    assert await run(ActionCsatAsk(), thanks_after(cancelled)) == ([], [])
    # a question answered in an earlier session does not count in this one
    earlier = [*ORDER_STATUS_ANSWERED, *START, said("你好", "greet"), did("action_greet")]
    assert await run(ActionCsatAsk(), thanks_after(earlier)) == ([], [])


async def test_thanks_after_a_finished_form_or_an_answered_faq_asks() -> None:
    after_sales = [
        *START,
        said("我要退货", "return_goods"),
        did("after_sales_form"),
        loop("after_sales_form"),
        did("action_listen"),
        said("是的", "affirm"),
        did("after_sales_form"),
        {"event": "slot", "name": "requested_slot", "value": None},
        loop(None),
        did("action_listen"),
    ]
    msgs, _ = await run(ActionCsatAsk(), thanks_after(after_sales))
    assert msgs
    faq = [
        *START,
        said("可以开发票吗", "ask_invoice"),
        did("action_answer_faq"),
        did("action_listen"),
    ]
    msgs, _ = await run(ActionCsatAsk(), thanks_after(faq))
    assert msgs


async def test_the_rating_is_asked_once_only() -> None:
    first = thanks_after(ORDER_STATUS_ANSWERED)
    msgs, events = await run(ActionCsatAsk(), first)
    assert len(msgs) == 1 and events[0]["name"] == "csat_asked"
    # 谢谢 again, or 再见: the question is not repeated in this conversation
    again = thanks_after(ORDER_STATUS_ANSWERED, slots={"csat_asked": True})
    assert await run(ActionCsatAsk(), again) == ([], [])
    bye = tracker("goodbye", "再见", slots={"csat_asked": True})
    assert await run(ActionCsatAsk(), bye) == ([], [])


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
