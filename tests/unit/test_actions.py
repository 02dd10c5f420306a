"""Every custom action, run with rasa-sdk's CollectingDispatcher on hand-built trackers."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet

from actions import messages
from actions.fallback import ActionDefaultFallback
from actions.faq import ActionAnswerFaq
from actions.handoff import ActionDeclineHuman, ActionHandoff, ActionOfferHuman
from actions.orders import ActionAskOrderId, ActionOrderStatus, ValidateOrderStatusForm
from actions.products import ActionProductQuestion
from actions.session import ActionSessionStart
from tests.helpers import run, texts, tracker
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop import backend as backend_module
from xiaoer.shop.backend import BackendUnavailable


@pytest.fixture(autouse=True)
def _shop(data_dir):
    """Every test gets a freshly seeded demo shop."""
    yield


# --- order status --------------------------------------------------------------------
async def test_shipped_order_names_courier_tracking_number_and_latest_trace():
    msgs, events = await run(
        ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400002"})
    )
    text = texts(msgs)
    assert "已发货" in text and "顺丰速运" in text and "SF1234567890123" in text
    assert "【杭州转运中心】已发出，下一站【广州转运中心】" in text
    assert SlotSet("order_id", None) in events


async def test_every_order_number_of_a_message_is_answered_in_order():
    text = "订单 6938271045123400001 和 6938271045123400006 都到哪了"
    ids = ["6938271045123400001", "6938271045123400006"]
    t = tracker(
        text=text,
        slots={"order_id": ids[1]},  # whichever the form kept
        entities=[{"entity": "order_id", "value": i} for i in ids],
    )
    msgs, _ = await run(ActionOrderStatus(), t)
    text = texts(msgs)
    assert len(msgs) == 2
    assert text.index(ids[0]) < text.index(ids[1])
    assert "48小时" in text and "YT9876543210987" in text


async def test_another_buyers_order_in_the_same_message_is_answered_like_an_unknown_one():
    ids = ["6938271045123400002", "6938271045123400006"]  # …006 is buyer_demo_002's
    t = tracker(
        text=" ".join(ids),
        slots={"order_id": ids[0]},
        entities=[{"entity": "order_id", "value": i} for i in ids],
        metadata={"buyer_id": "buyer_demo_001"},
        channel="douyin",
    )
    msgs, _ = await run(ActionOrderStatus(), t)
    text = texts(msgs)
    assert "SF1234567890123" in text and "YT9876543210987" not in text
    assert "6938271045123400006" in text and ("没有查到" in text or "没有找到" in text)


async def test_paid_order_gives_the_shipping_promise():
    msgs, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400001"}))
    text = texts(msgs)
    assert "待发货" in text and "48小时内" in text
    assert "超时" in text  # paid 3 days ago: overdue, the bot says so


async def test_unpaid_order_gets_a_payment_reminder():
    # the buyer (known on Douyin) is told the amount; an anonymous customer is not
    t = tracker(
        slots={"order_id": "6938271045123400004"},
        metadata={"buyer_id": "buyer_demo_001"},
        channel="douyin",
    )
    msgs, _ = await run(ActionOrderStatus(), t)
    assert "还没有付款" in texts(msgs) and "¥69.00" in texts(msgs)
    msgs, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400004"}))
    assert "还没有付款" in texts(msgs) and "69.00" not in texts(msgs)


async def test_delivered_order():
    msgs, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400003"}))
    assert "已签收" in texts(msgs) and "75312345678901" in texts(msgs)


async def test_after_repeated_failures_a_human_is_offered():
    t = tracker(slots={"order_id": None, "order_id_failures": 2.0})
    msgs, events = await run(ActionOrderStatus(), t)
    assert "人工" in texts(msgs)
    assert [b["title"] for b in msgs[0]["buttons"]] == ["转人工", "不用了，我换个说法"]
    assert SlotSet("handoff_offered", True) in events
    assert SlotSet("order_id_failures", 0.0) in events


async def test_backend_down_gives_a_polite_answer_and_offers_a_human(monkeypatch):
    async def broken(self, order_id):
        raise BackendUnavailable("down")

    monkeypatch.setattr(backend_module.GuardedBackend, "get_order", broken)
    msgs, events = await run(
        ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400002"})
    )
    assert "订单系统暂时有点忙" in texts(msgs)
    assert SlotSet("handoff_offered", True) in events


async def test_missing_shop_database_is_a_polite_answer(data_dir, monkeypatch):
    import dataclasses

    from xiaoer.core.config import get_settings
    from xiaoer.shop import factory
    from xiaoer.shop.factory import get_backend

    # the demo shop in a SQLite file of its own (backend.sqlite.path), which then disappears
    own_file = dataclasses.replace(get_settings(), sqlite_path=data_dir / "shop.db")
    monkeypatch.setattr(factory, "get_settings", lambda: own_file)
    get_backend()  # seeds
    (data_dir / "shop.db").unlink()
    msgs, events = await run(
        ActionOrderStatus(), tracker(slots={"order_id": "6938271045123400002"})
    )
    assert "订单系统暂时有点忙" in texts(msgs)
    assert SlotSet("handoff_offered", True) in events


# --- the order status form's validation ----------------------------------------------
def form_tracker(value: Any, failures: float = 0.0) -> Tracker:
    t = tracker(intent="inform_order_id", text=str(value), slots={"order_id_failures": failures})
    t.events.append({"event": "slot", "name": "order_id", "value": value})
    t.active_loop = {"name": "order_status_form"}
    t.slots["requested_slot"] = "order_id"
    return t


async def test_valid_order_id_with_spaces_is_normalised():
    msgs, events = await run(ValidateOrderStatusForm(), form_tracker("6938 2710 4512 3400 002"))
    assert SlotSet("order_id", "6938271045123400002") in events
    assert msgs == []


async def test_unknown_order_id_gets_a_clear_answer_and_another_chance():
    msgs, events = await run(ValidateOrderStatusForm(), form_tracker("1234567890123456"))
    assert "没有查到订单号 1234567890123456" in texts(
        msgs
    ) or "没有找到订单 1234567890123456" in texts(msgs)
    assert SlotSet("order_id", None) in events
    assert SlotSet("order_id_failures", 1.0) in events


async def test_second_failure_ends_the_form():
    msgs, events = await run(
        ValidateOrderStatusForm(), form_tracker("1234567890123456", failures=1.0)
    )
    assert SlotSet("order_id_failures", 2.0) in events
    assert SlotSet("requested_slot", None) in events


async def test_malformed_order_id_is_explained():
    msgs, events = await run(ValidateOrderStatusForm(), form_tracker("12345"))
    assert "不是有效的订单号" in texts(msgs) and "16到19位数字" in texts(msgs)
    assert SlotSet("order_id_failures", 1.0) in events


async def test_ask_order_id():
    msgs, _ = await run(ActionAskOrderId(), tracker())
    assert "订单号" in texts(msgs) or "订单编号" in texts(msgs)


# --- FAQ from the policy data --------------------------------------------------------
@pytest.mark.parametrize(
    "intent,expected",
    [
        ("return_policy", ["7天无理由", "运费险"]),
        (
            "ask_shipping",
            [
                "杭州",
                "中通快递、圆通速递",
                "顺丰速运",
                "10元",
                "新疆、西藏、青海",
                "15元",
                "港澳台",
            ],
        ),
        ("shipping_time", ["48小时内", "16:00前付款当天发货"]),
        ("ask_invoice", ["电子普通发票", "增值税专用发票", "人工客服"]),
        ("ask_discount", ["满199减20"]),
    ],
)
async def test_faq_answers_come_from_the_policies(intent, expected):
    msgs, _ = await run(ActionAnswerFaq(), tracker(intent=intent))
    for fragment in expected:
        assert fragment in texts(msgs)
    assert "{" not in texts(msgs)


async def test_returning_customer_code_only_for_returning_customers():
    def asking(buyer: str, channel: str = "douyin") -> Any:
        return tracker(intent="ask_discount", metadata={"buyer_id": buyer}, channel=channel)

    msgs, _ = await run(ActionAnswerFaq(), asking("buyer_demo_001"))
    assert "XIAOER5" in texts(msgs)
    msgs, _ = await run(ActionAnswerFaq(), asking("buyer_demo_002"))
    assert "XIAOER5" not in texts(msgs)
    msgs, _ = await run(ActionAnswerFaq(), tracker(intent="ask_discount"))
    assert "XIAOER5" not in texts(msgs)
    # a buyer id claimed on a channel that cannot know the buyer is not believed
    msgs, _ = await run(ActionAnswerFaq(), asking("buyer_demo_001", channel="rest"))
    assert "XIAOER5" not in texts(msgs)


# --- products ---------------------------------------------------------------------------
async def test_price_of_a_named_product():
    msgs, _ = await run(
        ActionProductQuestion(), tracker(intent="ask_price", slots={"product": "P1002"})
    )
    assert "男士轻量跑步鞋" in texts(msgs) and "¥299.00" in texts(msgs)


async def test_stock_lists_variants_and_restock_dates():
    msgs, _ = await run(
        ActionProductQuestion(), tracker(intent="ask_stock", slots={"product": "P1001"})
    )
    text = texts(msgs)
    assert "白色 S/M/L/XL/XXL" in text and "黑色 M暂时缺货" in text and "补货" in text


async def test_size_chart_and_fit_note():
    msgs, _ = await run(
        ActionProductQuestion(), tracker(intent="ask_size", slots={"product": "P1001"})
    )
    assert "L码 身高167-173cm 体重57.5-65kg" in texts(msgs) and "大一码" in texts(msgs)


async def test_no_product_known_offers_buttons_for_the_same_question():
    msgs, _ = await run(ActionProductQuestion(), tracker(intent="ask_stock"))
    buttons = msgs[0]["buttons"]
    assert [b["title"] for b in buttons] == [
        "纯棉短袖T恤",
        "男士轻量跑步鞋",
        "陶瓷马克杯",
        "儿童防水雨衣",
    ]
    assert buttons[0]["payload"] == '/ask_stock{"product": "P1001"}'


# --- handoff and fallback -----------------------------------------------------------------
async def test_handoff_is_recorded_once_per_conversation():
    msgs, events = await run(ActionHandoff(), tracker(intent="request_human", text="转人工"))
    assert "人工客服" in texts(msgs)
    assert SlotSet("handoff_offered", False) in events
    await run(ActionHandoff(), tracker(intent="request_human", text="快点转人工"))
    waiting = get_handoff_store().waiting()
    assert [(w.sender_id, w.reason, w.details) for w in waiting] == [
        ("test-user", "requested", "转人工")
    ]


async def test_complaint_offer_and_decline():
    msgs, events = await run(ActionOfferHuman(), tracker(intent="complain"))
    assert SlotSet("handoff_reason", "complaint") in events
    msgs, events = await run(ActionDeclineHuman(), tracker(intent="deny"))
    assert SlotSet("handoff_offered", False) in events and msgs


def fallback_events(n: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"event": "user", "parse_data": {"intent": {"name": "greet"}}}]
    for _ in range(n):
        events += [
            {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}},
            {"event": "action", "name": "action_default_fallback"},
        ]
    return events[:-1]


async def test_first_miss_asks_to_rephrase_second_offers_a_human():
    msgs, events = await run(
        ActionDefaultFallback(), tracker(intent="nlu_fallback", events=fallback_events(1))
    )
    # the turn ends after the fallback (issue 12: no storm of "didn't understand")
    assert "说法" in texts(msgs) and events == [FollowupAction("action_listen")]
    msgs, events = await run(
        ActionDefaultFallback(), tracker(intent="nlu_fallback", events=fallback_events(2))
    )
    assert "转接人工客服" in texts(msgs) and SlotSet("handoff_offered", True) in events


async def test_session_start_fills_shop_facts():
    _, events = await run(ActionSessionStart(), tracker())
    assert SlotSet("shop_name", "小二优选旗舰店") in events
    assert SlotSet("service_hours", "09:00-22:00") in events
    assert events[0]["event"] == "session_started" and events[-1]["name"] == "action_listen"


def test_every_message_has_variations_that_use_the_same_placeholders():
    for key, variants in messages.catalogue().items():
        assert variants, key
        rendered = messages.render(key, **{name: "X" for name in messages.placeholders(key)})
        assert "{" not in rendered["text"], key
