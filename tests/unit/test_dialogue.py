"""Issue 12 dialogue: forms that never loop, context, tone and the smaller wrong behaviours."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction, SlotSet

import xiaoer.core.settings
from actions.address import ActionChangeAddress, ValidateAddressForm
from actions.fallback import ActionDefaultFallback
from actions.greeting import ActionGreet
from actions.orders import ActionAskOrderId, ActionOrderStatus, ValidateOrderStatusForm
from actions.urge import ActionUrgeShipment, ValidateUrgeForm
from tests.helpers import DOMAIN, run, texts, tracker
from xiaoer.conversations.buttons import get_button_memory
from xiaoer.core import config
from xiaoer.core.clock import now_beijing
from xiaoer.handoff.store import get_handoff_store
from xiaoer.handoff.waiting import queue_notice
from xiaoer.shop import urges as urges_module
from xiaoer.shop.urges import get_urge_store

ORDER_PAID, ORDER_SHIPPED, ORDER_UNPAID = (
    "6938271045123400001",
    "6938271045123400002",
    "6938271045123400004",
)
NOT_UNDERSTOOD = ("没太明白", "没看懂")


@pytest.fixture(autouse=True)
def _shop(data_dir):
    yield


def in_form(form: str, intent: str, text: str, slots: dict[str, Any] | None = None, **kw):
    """A tracker of a form waiting for ``order_id`` that just got ``text``."""
    t = tracker(
        intent=intent, text=text, slots={"requested_slot": "order_id", **(slots or {})}, **kw
    )
    t.active_loop = {"name": form}
    t.events.append({"event": "action", "name": form})  # as Rasa's validation tracker ends
    return t


def slot_value(events, name):
    return next(
        (e["value"] for e in events if e.get("event") == "slot" and e["name"] == name), "absent"
    )


# --- a form that waits for the order number --------------------------------------------------
async def test_a_question_in_the_form_is_answered_and_counted_not_rejected():
    msgs, events = await run(
        ValidateOrderStatusForm(), in_form("order_status_form", "shipping_time", "几天能到")
    )
    assert len(msgs) == 1 and "2-4天" in texts(msgs)  # the answer (transit days), once
    assert slot_value(events, "form_misses") == 1.0  # a slot event: the form is not rejected


async def test_the_return_address_is_answered_in_the_form():
    msgs, _ = await run(
        ValidateOrderStatusForm(), in_form("urge_form", "return_goods", "退货地址是哪里")
    )
    assert "收件人" in texts(msgs) and "电话" in texts(msgs)


async def test_gibberish_in_the_form_says_nothing_itself_and_is_counted():
    msgs, events = await run(ValidateUrgeForm(), in_form("urge_form", "nlu_fallback", "asdfgh"))
    assert msgs == []  # the form's question (with help) is the reply
    assert slot_value(events, "form_misses") == 1.0


@pytest.mark.parametrize("intent", ["deny", "request_human", "complain"])
async def test_leaving_the_form_is_left_to_the_rules(intent):
    msgs, events = await run(ValidateUrgeForm(), in_form("urge_form", intent, "算了"))
    assert msgs == [] and slot_value(events, "form_misses") == "absent"


async def test_yes_to_a_human_offered_in_the_form_is_left_to_the_rules():
    t = in_form("urge_form", "affirm", "好的", slots={"handoff_offered": True})
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "form_misses") == "absent"


async def test_the_number_after_misses_resets_them_and_the_offer():
    t = in_form(
        "order_status_form",
        "inform_order_id",
        ORDER_SHIPPED,
        slots={"form_misses": 2.0, "handoff_offered": True, "handoff_reason": "order_id_missing"},
    )
    t.events.append({"event": "slot", "name": "order_id", "value": ORDER_SHIPPED})
    _, events = await run(ValidateOrderStatusForm(), t)
    assert slot_value(events, "order_id") == ORDER_SHIPPED
    assert slot_value(events, "focus_order_id") == ORDER_SHIPPED
    assert slot_value(events, "handoff_offered") is False
    assert slot_value(events, "form_misses") == 0.0


async def test_the_question_again_with_help_then_a_human_then_brief():
    first, _ = await run(ActionAskOrderId(), in_form("urge_form", "greet", "x"))
    assert "订单" in texts(first) and "长按" not in texts(first)
    helped, _ = await run(
        ActionAskOrderId(), in_form("urge_form", "greet", "x", slots={"form_misses": 1.0})
    )
    assert "「我的」" in texts(helped) and "长按" in texts(helped)
    offered, events = await run(
        ActionAskOrderId(), in_form("urge_form", "greet", "x", slots={"form_misses": 2.0})
    )
    assert [b["title"] for b in offered[0]["buttons"]][0] == "转人工"
    assert SlotSet("handoff_offered", True) in events
    brief, events = await run(
        ActionAskOrderId(),
        in_form("urge_form", "greet", "x", slots={"form_misses": 3.0, "handoff_offered": True}),
    )
    assert len(brief) == 1 and not brief[0]["buttons"] and events == []


# --- one "didn't understand" per turn ------------------------------------------------------
async def test_the_fallback_speaks_once_per_turn_and_ends_the_turn():
    t = tracker(intent="nlu_fallback", text="asdf")
    msgs, events = await run(ActionDefaultFallback(), t)
    assert any(w in texts(msgs) for w in NOT_UNDERSTOOD)
    assert FollowupAction("action_listen") in events
    t.events.append({"event": "action", "name": "action_default_fallback"})
    again, events = await run(ActionDefaultFallback(), t)
    assert again == [] and FollowupAction("action_listen") in events


# --- context: the order and product in focus ---------------------------------------------
async def test_order_status_keeps_the_order_in_focus():
    _, events = await run(ActionOrderStatus(), tracker(slots={"order_id": ORDER_SHIPPED}))
    assert slot_value(events, "order_id") is None
    assert slot_value(events, "focus_order_id") == "absent"  # not cleared


async def test_where_is_it_after_a_status_answers_with_the_transit():
    t = tracker(intent="nlu_fallback", text="那怎么还没到", slots={"focus_order_id": ORDER_SHIPPED})
    msgs, _ = await run(ActionDefaultFallback(), t)
    assert "SF1234567890123" in texts(msgs)
    assert not any(w in texts(msgs) for w in NOT_UNDERSTOOD)
    assert not any(m.get("buttons") for m in msgs)


async def test_urge_form_starts_with_the_order_in_focus():
    t = tracker(intent="urge_shipment", text="能催一下吗", slots={"focus_order_id": ORDER_PAID})
    t.events.insert(0, {"event": "slot", "name": "focus_order_id", "value": ORDER_PAID})
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "order_id") == ORDER_PAID


async def test_an_old_focus_is_not_used_for_a_new_request():
    t = tracker(intent="urge_shipment", text="能催一下吗", slots={"focus_order_id": ORDER_PAID})
    older = [{"event": "slot", "name": "focus_order_id", "value": ORDER_PAID}] + [
        {"event": "user", "text": "你好", "parse_data": {"intent": {"name": "greet"}}}
    ] * 4
    t.events[:0] = older
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "order_id") == "absent"  # asked (or picked) instead


async def test_another_colour_of_the_product_in_focus():
    earlier = {
        "event": "user",
        "text": "T恤有货吗",
        "parse_data": {"intent": {"name": "ask_stock"}},
    }
    t = tracker(
        intent="nlu_fallback",
        text="那黑色呢",
        slots={"focus_product": "P1001"},
        entities=[{"entity": "color", "value": "黑色"}],
    )
    t.events.insert(0, earlier)
    msgs, events = await run(ActionDefaultFallback(), t)
    assert "黑色" in texts(msgs)
    assert not any(w in texts(msgs) for w in NOT_UNDERSTOOD)
    assert slot_value(events, "focus_product") == "P1001"


# --- tone ------------------------------------------------------------------------------------
async def test_an_angry_customer_hears_an_apology_before_the_question():
    t = tracker(intent="refund", text="气死了 退钱！！")
    t.latest_message["message_id"] = "m-angry"
    msgs, _ = await run(ValidateOrderStatusForm(), t)
    assert "抱歉" in texts(msgs) or "对不起" in texts(msgs)
    again, _ = await run(ValidateOrderStatusForm(), t)  # the form validates twice: once
    assert again == []


async def test_the_introduction_once_then_brief():
    first, _ = await run(ActionGreet(), tracker(intent="greet", text="在吗"))
    assert "店小二" in texts(first)  # the introduction
    t = tracker(intent="greet", text="在吗")
    t.events.insert(0, {"event": "action", "name": "action_greet"})
    brief, _ = await run(ActionGreet(), t)
    assert "店小二" not in texts(brief) and "在" in texts(brief)


def test_a_waiting_customer_hears_the_queue_at_most_once_per_few_minutes():
    store = get_handoff_store()
    store.request("someone-else", "requested", details="", in_hours=True)
    store.request("waiting-1", "requested", details="", in_hours=True)
    now = time.time()
    first = queue_notice("waiting-1", "人呢", now=now)
    assert first and "排队" in first and "1 位" in first
    assert queue_notice("waiting-1", "还有人吗", now=now + 60) is None
    assert queue_notice("waiting-1", "还有人吗", now=now + 4 * 60)
    assert queue_notice("waiting-1", "好的我等等", now=now + 10 * 60) is None
    assert queue_notice("not-waiting", "人呢", now=now) is None


# --- smaller wrong behaviours ---------------------------------------------------------------
def test_a_typed_button_label_is_the_button():
    memory = get_button_memory()
    memory.remember(
        "c1",
        [
            {
                "text": "确认要取消订单吗？",
                "buttons": [
                    {"title": "确认取消", "payload": "/affirm"},
                    {"title": "不取消了", "payload": "/deny"},
                ],
            }
        ],
    )
    assert memory.resolve("c1", "确认取消") == "/affirm"
    assert memory.resolve("c1", " 不取消了！") == "/deny"
    assert memory.resolve("c1", "确认取消吗 我再想想") == "确认取消吗 我再想想"
    assert memory.resolve("c2", "确认取消") == "确认取消"
    memory.remember("c1", [{"text": "好的"}])  # a reply without buttons forgets them
    assert memory.resolve("c1", "确认取消") == "确认取消"


async def test_unpaid_order_message_says_the_promise_once():
    msgs, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": ORDER_UNPAID}))
    text = texts(msgs)
    assert "还没有付款" in text and text.count("付款后") == 1


@pytest.fixture()
def no_address_changes(monkeypatch):
    settings = config.get_settings()
    replaced = dataclasses.replace(
        settings, permissions={**settings.permissions, "change_address": False}
    )
    monkeypatch.setattr(xiaoer.core.settings, "get_settings", lambda: replaced)


async def test_address_details_are_collected_before_an_agent_gets_them(no_address_changes):
    t = tracker(
        intent="change_address", slots={"order_id": ORDER_PAID, "flow_blocker": "needs_agent"}
    )
    slots = await ValidateAddressForm().required_slots(
        ["order_id", "new_name", "new_phone", "new_address", "address_confirmed"],
        None,  # type: ignore[arg-type]
        t,
        DOMAIN,
    )
    assert slots == ["new_name", "new_phone", "new_address"]
    msgs, _ = await run(ActionChangeAddress(), t)  # nothing collected (details failed)
    assert "收货信息" not in texts(msgs)


async def test_urges_count_per_customer_per_order_per_day(monkeypatch):
    store = get_urge_store()
    assert store.record("conv-a", ORDER_PAID, 1.0, "buyer-a") == 1
    assert store.record("conv-b", ORDER_PAID, 1.0, "buyer-b") == 1  # another buyer
    assert store.record("conv-c", ORDER_PAID, 1.0) == 1  # anonymous: per conversation
    assert store.record("conv-a2", ORDER_PAID, 1.0, "buyer-a") == 2  # same buyer, today
    tomorrow = now_beijing() + timedelta(days=1)
    monkeypatch.setattr(urges_module, "now_beijing", lambda: tomorrow)
    assert store.record("conv-a", ORDER_PAID, 1.0, "buyer-a") == 1
    assert store.clear() == 5 and store.for_order(ORDER_PAID) == []


async def test_a_first_urge_is_not_answered_as_a_repeated_one():
    get_urge_store().record("someone-else", ORDER_PAID, 30.0, "buyer-x")
    msgs, _ = await run(
        ActionUrgeShipment(), tracker(intent="urge_shipment", slots={"order_id": ORDER_PAID})
    )
    assert "反复催" not in texts(msgs) and get_handoff_store().waiting() == []


async def test_cannot_find_the_number_is_helped_not_a_goodbye():
    msgs, events = await run(ValidateUrgeForm(), in_form("urge_form", "deny", "找不到啊"))
    assert slot_value(events, "form_misses") == 1.0  # stays in the form, asked again with help


async def test_an_order_number_with_unclear_words_is_an_order_question():
    t = tracker(
        intent="nlu_fallback",
        text="帮我查下订单 6938271045123400002",
        entities=[{"entity": "order_id", "value": ORDER_SHIPPED}],
    )
    msgs, events = await run(ActionDefaultFallback(), t)
    assert "SF1234567890123" in texts(msgs)
    assert slot_value(events, "focus_order_id") == ORDER_SHIPPED


async def test_an_answered_follow_up_is_not_a_miss():
    fallback = {"intent": {"name": "nlu_fallback"}}
    events = [
        {"event": "user", "text": "那怎么还没到", "parse_data": fallback},
        {"event": "action", "name": "action_default_fallback"},
        {"event": "slot", "name": "focus_order_id", "value": ORDER_SHIPPED},
        {"event": "user", "text": "asdf", "parse_data": fallback},
    ]
    t = tracker(intent="nlu_fallback", text="asdf", events=events)
    msgs, _ = await run(ActionDefaultFallback(), t)
    assert any(w in texts(msgs) for w in NOT_UNDERSTOOD)  # a first miss: no human offer yet


async def test_a_shipped_order_in_focus_does_not_start_an_after_sales_case():
    from actions.aftersales import ValidateAfterSalesForm

    t = tracker(intent="quality_issue", text="鞋子开胶了", slots={"focus_order_id": ORDER_SHIPPED})
    t.events.insert(0, {"event": "slot", "name": "focus_order_id", "value": ORDER_SHIPPED})
    _, events = await run(ValidateAfterSalesForm(), t)
    assert slot_value(events, "order_id") == "absent"  # the customer picks or types it


async def test_the_order_just_talked_about_is_taken_when_the_customer_points_at_it():
    """Asked for the number, "就刚才那个单" is the order the conversation was about, even
    after more messages than a follow-up's focus lasts."""
    t = in_form("urge_form", "nlu_fallback", "就刚才那个单", slots={"focus_order_id": ORDER_PAID})
    older = [{"event": "slot", "name": "focus_order_id", "value": ORDER_PAID}] + [
        {"event": "user", "text": "你好", "parse_data": {"intent": {"name": "greet"}}}
    ] * 5
    t.events[:0] = older
    msgs, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "order_id") == ORDER_PAID
    assert not any(w in texts(msgs) for w in NOT_UNDERSTOOD)
    # nothing talked about yet: still asked for
    t = in_form("urge_form", "nlu_fallback", "就刚才那个单")
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "order_id") in ("absent", None)
    # "the number of that order" is not the order itself
    t = in_form(
        "urge_form", "nlu_fallback", "那个订单号我找不到", slots={"focus_order_id": ORDER_PAID}
    )
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "order_id") != ORDER_PAID


async def test_a_later_request_of_the_same_message_is_no_miss_and_the_question_is_not_repeated():
    """ "T恤洗了一次就缩水了 要求退货", split in two requests: the first starts the
    after-sales form, which asks for the order number; the second (the return policy) is
    answered, without counting a miss and without asking for the number again in the same
    reply."""
    from actions.aftersales import ValidateAfterSalesForm

    first = {"split": {"part": 1, "of": 2}}
    second = {"split": {"part": 2, "of": 2}}
    case = {"as_type": "quality", "as_reason": "质量问题"}
    t = in_form("after_sales_form", "return_policy", "要求退货", case, metadata=second)
    t.events[:0] = [
        {"event": "user", "text": "T恤洗了一次就缩水了", "metadata": first,
         "parse_data": {"intent": {"name": "quality_issue"}}},
        {"event": "action", "name": "after_sales_form"},
        {"event": "slot", "name": "requested_slot", "value": "order_id"},
        {"event": "bot", "text": "请提供一下订单编号哦"},
        {"event": "action", "name": "action_listen"},
    ]  # fmt: skip
    t.events[-2]["metadata"] = second  # the user event of the second request
    msgs, events = await run(ValidateAfterSalesForm(), t)
    assert "7天无理由" in texts(msgs)  # the question of the second request is answered
    assert slot_value(events, "form_misses") == "absent"
    t.events += events
    asked, _ = await run(ActionAskOrderId(), t)
    assert asked == []
    # the same question as a message of its own: a miss, and the number asked again
    t = in_form("after_sales_form", "return_policy", "要求退货", case)
    msgs, events = await run(ValidateAfterSalesForm(), t)
    assert "7天无理由" in texts(msgs) and slot_value(events, "form_misses") == 1.0
    t.events += events
    asked, _ = await run(ActionAskOrderId(), t)
    assert "订单" in texts(asked)


async def test_a_guessed_yes_does_not_leave_the_form():
    t = in_form("urge_form", "affirm", "asdfgh", slots={"handoff_offered": True})
    t.latest_message["intent"]["confidence"] = 0.67
    _, events = await run(ValidateUrgeForm(), t)
    assert slot_value(events, "form_misses") == 1.0  # one more miss, the form goes on


async def test_a_product_named_in_unclear_words_is_a_product_question():
    t = tracker(
        intent="nlu_fallback",
        text="纯棉短袖T恤有货吗",
        entities=[{"entity": "product", "value": "P1001"}],
    )
    msgs, _ = await run(ActionDefaultFallback(), t)
    assert "纯棉短袖T恤" in texts(msgs) and not any(w in texts(msgs) for w in NOT_UNDERSTOOD)
