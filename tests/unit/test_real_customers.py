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
from xiaoer.shop.backend import get_backend

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
