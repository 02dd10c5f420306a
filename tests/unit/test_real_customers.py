"""Issue 12/11: conversations as real anonymous REST customers write them, action level.

Each test plays the customer's message into the action that answers it and asserts what
the customer reads (and what the shop store holds)."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.address import ActionAskAddressConfirmed, ActionChangeAddress, ValidateAddressForm
from actions.aftersales import ActionSubmitAfterSales, ValidateAfterSalesForm
from actions.forms import ActionAskVerifyPhoneTail
from tests.helpers import run, texts, tracker
from xiaoer.shop.access import get_order_check_store
from xiaoer.shop.factory import get_backend

PAID = "6938271045123400001"
WITH_CASE = "6938271045123400003"


@pytest.fixture(autouse=True)
def _shop(data_dir):
    yield


def slot_value(events: list[dict[str, Any]], name: str) -> Any:
    return next(
        (e["value"] for e in events if e.get("event") == "slot" and e["name"] == name), "absent"
    )


def in_form(
    form: str, slot: str, value: Any, slots: dict[str, Any] | None = None, **kw: Any
) -> Tracker:
    """The customer answers ``value`` (text ``kw['text']``) while the form asks ``slot``."""
    t = tracker(slots={**(slots or {}), "requested_slot": slot}, channel="rest", **kw)
    if value is not None:
        t.events.append({"event": "slot", "name": slot, "value": value})
        t.slots[slot] = value
    t.active_loop = {"name": form}
    return t


# --- 1. a question while the phone tail is asked is no failed try -----------------------
@pytest.mark.parametrize(
    "text,intent", [("还要几天啊", "shipping_time"), ("为啥要这个", "nlu_fallback")]
)
async def test_a_question_instead_of_the_phone_tail_is_not_a_try(text, intent):
    t = in_form(
        "address_form", "verify_phone_tail", text, {"order_id": PAID}, text=text, intent=intent
    )
    msgs, events = await run(ValidateAddressForm(), t)
    assert slot_value(events, "verify_phone_tail_failures") == "absent"
    assert "没有对上" not in texts(msgs) and "不一致" not in texts(msgs)
    assert slot_value(events, "requested_slot") == "verify_phone_tail"  # asked again
    assert get_order_check_store().failures(PAID) == 0
    # the question again, with the reason
    misses = slot_value(events, "form_misses")
    assert misses == 1.0
    again, _ = await run(
        ActionAskVerifyPhoneTail(), tracker(slots={"form_misses": misses}, channel="rest")
    )
    assert "后4位" in texts(again) and ("本人" in texts(again) or "保护" in texts(again))
    # the first question names the order (it may be the one the conversation was about)
    first, _ = await run(ActionAskVerifyPhoneTail(), tracker(slots={"order_id": PAID}))
    assert f"订单 {PAID}" in texts(first) and "收件人手机号后4位" in texts(first)
    # wrong digits still count
    t = in_form("address_form", "verify_phone_tail", "1234", {"order_id": PAID}, text="1234")
    msgs, events = await run(ValidateAddressForm(), t)
    assert slot_value(events, "verify_phone_tail_failures") == 1.0
    assert get_order_check_store().failures(PAID) == 1


async def test_shipping_question_during_the_phone_tail_is_answered():
    t = in_form(
        "address_form",
        "verify_phone_tail",
        "一般几天能到",
        {"order_id": PAID},
        text="一般几天能到",
        intent="shipping_time",
    )
    msgs, events = await run(ValidateAddressForm(), t)
    assert texts(msgs), "the shipping question gets an answer"
    assert slot_value(events, "verify_phone_tail_failures") == "absent"


# --- 2. reading an after-sales case's progress is a read ---------------------------------
async def test_refund_progress_of_an_order_with_a_case_needs_no_phone_check():
    t = in_form(
        "after_sales_form",
        "order_id",
        WITH_CASE,
        {"as_type": "refund"},
        text=WITH_CASE,
        intent="inform_order_id",
    )
    msgs, events = await run(ValidateAfterSalesForm(), t)
    assert slot_value(events, "flow_blocker") == "existing_case"
    assert slot_value(events, "requested_slot") is None  # no phone tail asked
    msgs, _ = await run(
        ActionSubmitAfterSales(),
        tracker(
            intent="inform_order_id",
            slots={"order_id": WITH_CASE, "flow_blocker": "existing_case"},
            channel="rest",
        ),
    )
    reply = texts(msgs)
    assert "AS20261101" in reply and "退款处理中" in reply and "1-3个工作日" in reply
    assert "39.90" not in reply and "¥" not in reply and "核实" not in reply
    assert len(await get_backend().after_sales_for_order(WITH_CASE)) == 1  # nothing opened


async def test_case_number_names_its_case():
    entities = [{"entity": "case_id", "value": "AS20261101"}]
    t = in_form(
        "after_sales_form",
        "order_id",
        None,
        {},
        text="AS20261101 退款怎么样了",
        intent="refund",
        entities=entities,
    )
    t.slots["requested_slot"] = None
    msgs, events = await run(ValidateAfterSalesForm(), t)
    assert slot_value(events, "order_id") == WITH_CASE
    assert slot_value(events, "flow_blocker") == "existing_case"
    t = tracker(
        intent="refund",
        text="AS20261101 退款怎么样了",
        entities=entities,
        slots={"order_id": WITH_CASE, "flow_blocker": "existing_case"},
        channel="rest",
    )
    msgs, _ = await run(ActionSubmitAfterSales(), t)
    assert "AS20261101" in texts(msgs) and "退款处理中" in texts(msgs)


async def test_a_new_return_still_needs_the_phone_check():
    t = in_form("after_sales_form", "order_id", "6938271045123400007", {"as_type": "return_refund"})
    _, events = await run(ValidateAfterSalesForm(), t)
    assert slot_value(events, "requested_slot") == "verify_phone_tail"


# --- 3. the new address, name and phone in one message ----------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "改成 浙江省杭州市西湖区文三路88号 李四 13900001111",
        "李四 13900001111 浙江省杭州市西湖区文三路88号",
        "收件人：李四，电话：139 0000 1111，地址：浙江省杭州市西湖区文三路88号",
    ],
)
async def test_address_name_and_phone_in_one_message(text):
    get_order_check_store().record_verified("test-user", PAID)
    slots = {"order_id": PAID, "verify_phone_tail": "verified"}
    t = in_form("address_form", "new_name", text, slots, text=text, intent="inform")
    msgs, events = await run(ValidateAddressForm(), t)
    assert slot_value(events, "new_name") == "李四"
    assert slot_value(events, "new_phone") == "13900001111"
    assert slot_value(events, "new_address") == "浙江省杭州市西湖区文三路88号"
    assert slot_value(events, "requested_slot") == "address_confirmed"
    filled = {**slots, "new_name": "李四", "new_phone": "13900001111"}
    filled["new_address"] = "浙江省杭州市西湖区文三路88号"
    msgs, _ = await run(ActionAskAddressConfirmed(), tracker(slots=filled, channel="rest"))
    assert "李四" in texts(msgs) and "文三路88号" in texts(msgs)
    # "对 没问题"
    msgs, _ = await run(
        ActionChangeAddress(),
        tracker(intent="affirm", slots={**filled, "address_confirmed": True}, channel="rest"),
    )
    assert "已为您修改" in texts(msgs)
    order = await get_backend().get_order(PAID)
    assert order is not None and order.recipient is not None
    assert (order.recipient.name, order.recipient.phone) == ("李四", "13900001111")


# --- helpers for multi-turn trackers ----------------------------------------------------
def user(text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    parse = {"intent": {"name": intent, "confidence": 0.99}, "entities": entities or []}
    return {"event": "user", "text": text, "parse_data": {"text": text, **parse}}


def conversation(
    turns: list[dict[str, Any]], slots: dict[str, Any] | None = None, sender_id: str = "rest-1"
) -> Tracker:
    """A tracker whose latest message is the last user event of ``turns``."""
    last = [e for e in turns if e["event"] == "user"][-1]
    t = tracker(
        intent=last["parse_data"]["intent"]["name"],
        text=last["text"],
        entities=last["parse_data"]["entities"],
        slots=slots,
        channel="rest",
        sender_id=sender_id,
    )
    t.events = turns
    return t


def ent(entity: str, value: str, text: str, surface: str | None = None) -> dict[str, Any]:
    start = text.index(surface or value)
    return {"entity": entity, "value": value, "start": start, "end": start + len(surface or value)}


# --- 4. stock / restock without a product -----------------------------------------------
async def test_colour_and_size_of_one_product_name_that_product():
    from actions.leads import ActionThankContact
    from actions.products import ActionProductQuestion

    text = "黑色M什么时候补货"
    t = conversation([user(text, "ask_stock", [ent("color", "黑色", text)])])
    msgs, events = await run(ActionProductQuestion(), t)
    reply = texts(msgs)
    assert "纯棉短袖T恤" in reply and "补货" in reply and not any(m.get("buttons") for m in msgs)
    assert slot_value(events, "focus_product") == "P1001"
    # "到货能通知我吗 + phone": the notice is confirmed for that product and variant
    follow = "到货能通知我吗 13900001111"
    t = conversation(
        [
            user(text, "ask_stock", [ent("color", "黑色", text)]),
            {"event": "bot", "text": reply},
            user(follow, "provide_contact", [ent("phone", "13900001111", follow)]),
        ],
        slots={"focus_product": "P1001"},
    )
    msgs, _ = await run(ActionThankContact(), t)
    assert "纯棉短袖T恤 黑色 M" in texts(msgs) and "到货" in texts(msgs)


async def test_colour_and_size_of_several_products_still_ask_which():
    from actions.products import ActionProductQuestion

    text = "白色42有吗"  # only the running shoe has white 42, but white XL is only the T-shirt
    t = conversation([user("白色有吗", "ask_stock", [ent("color", "白色", "白色有吗")])])
    msgs, _ = await run(ActionProductQuestion(), t)
    assert any(m.get("buttons") for m in msgs)  # white alone: several products
    t = conversation([user(text, "ask_stock", [ent("color", "白色", text)])])
    msgs, events = await run(ActionProductQuestion(), t)
    assert slot_value(events, "focus_product") == "P1002"


# --- 5. size advice goes on after the product is picked ---------------------------------
@pytest.mark.parametrize("intent", ["product_info", "nlu_fallback"])
async def test_size_advice_continues_with_the_product_typed_after_the_buttons(intent):
    from actions.fallback import ActionDefaultFallback
    from actions.products import ActionProductQuestion

    first = "一米七 一百二十斤 穿哪个码"
    measures = [
        ent("height_cm", "170", first, "一米七"),
        ent("weight_kg", "60", first, "一百二十斤"),
    ]
    slots = {"height_cm": 170.0, "weight_kg": 60.0}
    msgs, _ = await run(
        ActionProductQuestion(), conversation([user(first, "ask_size", measures)], slots)
    )
    asked = [m for m in msgs if m.get("buttons")]
    assert asked, "which product?"
    t = conversation(
        [
            user(first, "ask_size", measures),
            {
                "event": "bot",
                "text": asked[0].get("text"),
                "data": {"buttons": asked[0]["buttons"]},
            },
            user("T恤", intent, [ent("product", "P1001", "T恤", "T恤")]),
        ],
        slots,
    )
    action = ActionProductQuestion() if intent == "product_info" else ActionDefaultFallback()
    msgs, _ = await run(action, t)
    reply = texts(msgs)
    assert "L" in reply and "170" in reply, reply
    assert "面料" not in reply  # not the product info


# --- 6. a bare size after a variant question is a stock question ------------------------
async def test_bare_size_follow_up_keeps_product_and_colour():
    from actions.fallback import ActionDefaultFallback
    from actions.products import ActionProductQuestion
    from xiaoer.nlu.rules import EntityIntentRule

    first = "跑鞋多少钱 白色44有吗"
    first_entities = [ent("product", "P1002", first, "跑鞋"), ent("color", "白色", first)]
    turns = [user(first, "ask_price", first_entities), {"event": "bot", "text": "…"}]
    for intent in ("ask_stock", "nlu_fallback"):
        t = conversation([*turns, user("那43呢", intent)], {"focus_product": "P1002"})
        action = ActionProductQuestion() if intent == "ask_stock" else ActionDefaultFallback()
        msgs, _ = await run(action, t)
        reply = texts(msgs)
        assert "男士轻量跑步鞋" in reply and "白色 43" in reply, reply
        assert "订单号" not in reply
    # the NLU never reads it as an order number
    from rasa.shared.nlu.training_data.message import Message

    message = Message(
        data={"text": "那43呢", "intent": {"name": "inform_order_id", "confidence": 0.9}}
    )
    EntityIntentRule({"threshold": 0.55}).process([message])
    assert message.get("intent")["name"] == "ask_stock"


# --- 7. "今天能送到不" after an order's status --------------------------------------------
async def test_arrival_question_answers_from_the_order_in_focus():
    from actions.faq import ActionAnswerFaq

    shipped = "6938271045123400002"
    turns = [
        user(shipped, "inform_order_id", [ent("order_id", shipped, shipped)]),
        {"event": "slot", "name": "focus_order_id", "value": shipped},
        {"event": "bot", "text": "已发货"},
    ]
    for text in ("今天能送到不", "明天能到吗"):
        t = conversation([*turns, user(text, "shipping_time")], {"focus_order_id": shipped})
        msgs, _ = await run(ActionAnswerFaq(), t)
        reply = texts(msgs)
        order = await get_backend().get_order(shipped)
        assert order is not None and order.shipment is not None
        assert order.shipment.tracking_no in reply and order.shipment.courier in reply
        assert "13800000000" not in reply and "¥" not in reply
    # without an order in focus: the general answer
    msgs, _ = await run(ActionAnswerFaq(), conversation([user("明天能到吗", "shipping_time")]))
    assert "运单号" not in texts(msgs) and texts(msgs)


# --- 8. a third unknown order id offers a human again -----------------------------------
async def test_third_unknown_order_id_offers_a_human_again():
    from actions.orders import ActionOrderStatus, ValidateOrderStatusForm

    unknown = "6938271045123499999"
    slots: dict[str, Any] = {}
    offers = []
    for attempt in range(3):
        t = in_form("order_status_form", "order_id", unknown, slots, text=unknown)
        msgs, events = await run(ValidateOrderStatusForm(), t)
        assert "没有" in texts(msgs)
        for e in events:
            if e.get("event") == "slot":
                slots[e["name"]] = e["value"]
        if slot_value(events, "requested_slot") is None:  # the form stops: the answer
            msgs, events = await run(
                ActionOrderStatus(), tracker(slots=slots, channel="rest", text=unknown)
            )
            offers.append(attempt)
            assert "人工" in texts(msgs)
            for e in events:
                if e.get("event") == "slot":
                    slots[e["name"]] = e["value"]
            slots.update(order_id_failures=0.0, order_id=None)  # the form's reset
    assert offers == [1, 2]


async def test_refund_progress_asked_as_an_order_status_tells_the_case():
    from actions.fallback import ActionDefaultFallback
    from actions.orders import ActionOrderStatus

    text = f"{WITH_CASE} 退款到哪了"
    entities = [ent("order_id", WITH_CASE, text)]
    t = tracker(text=text, entities=entities, slots={"order_id": WITH_CASE}, channel="rest")
    msgs, _ = await run(ActionOrderStatus(), t)
    assert "AS20261101" in texts(msgs) and "退款处理中" in texts(msgs)
    assert "¥" not in texts(msgs)
    t = conversation([user(text, "nlu_fallback", entities)])
    msgs, _ = await run(ActionDefaultFallback(), t)
    assert "AS20261101" in texts(msgs) and "¥" not in texts(msgs)
    # the plain status question still gets the status
    t = tracker(text=WITH_CASE, slots={"order_id": WITH_CASE}, channel="rest")
    msgs, _ = await run(ActionOrderStatus(), t)
    assert "AS20261101" not in texts(msgs) and WITH_CASE in texts(msgs)


async def test_another_buyers_case_number_names_nothing():
    entities = [{"entity": "case_id", "value": "AS20261101"}]
    t = in_form(
        "after_sales_form",
        "order_id",
        None,
        {},
        text="AS20261101 退款怎么样了",
        intent="refund",
        entities=entities,
        metadata={"buyer_id": "buyer_demo_002"},
    )
    t.events[0]["input_channel"] = "douyin"
    t.slots["requested_slot"] = None
    order = await get_backend().get_order(WITH_CASE)
    assert order is not None and order.buyer_id != "buyer_demo_002"
    msgs, events = await run(ValidateAfterSalesForm(), t)
    assert slot_value(events, "order_id") in ("absent", None)
    assert WITH_CASE not in texts(msgs)


async def test_new_details_sent_at_the_phone_tail_step_are_kept_and_no_try():
    text = "改成 浙江省杭州市西湖区文三路88号 李四 13900001111"
    t = in_form("address_form", "verify_phone_tail", text, {"order_id": PAID}, text=text)
    msgs, events = await run(ValidateAddressForm(), t)
    assert slot_value(events, "verify_phone_tail_failures") == "absent"
    assert get_order_check_store().failures(PAID) == 0
    assert slot_value(events, "new_name") == "李四"
    assert slot_value(events, "new_address") == "浙江省杭州市西湖区文三路88号"
    assert "记下" in texts(msgs)
    assert slot_value(events, "requested_slot") == "verify_phone_tail"
    # the tail next: straight to the confirmation of the kept details
    slots = {
        "order_id": PAID,
        "new_name": "李四",
        "new_phone": "13900001111",
        "new_address": "浙江省杭州市西湖区文三路88号",
    }
    t = in_form("address_form", "verify_phone_tail", "0000", slots, text="0000")
    _, events = await run(ValidateAddressForm(), t)
    assert slot_value(events, "requested_slot") == "address_confirmed"
