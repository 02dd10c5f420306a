"""Issue 11: only a buyer reads and changes their own orders; anonymous customers verify.

Written as the attacks: an anonymous REST customer changing someone's address, a Douyin
buyer reaching another buyer's order, forged trackers sent straight to the final
actions, a status lookup fishing for personal data, and order-id enumeration."""

from __future__ import annotations

import random
from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.address import ActionChangeAddress, ValidateAddressForm
from actions.aftersales import ActionSubmitAfterSales, ValidateAfterSalesForm
from actions.cancel import ActionCancelOrder, ValidateCancelForm
from actions.forms import MAX_FAILURES, ActionAskVerifyPhoneTail
from actions.orders import ActionOrderStatus, ValidateOrderStatusForm
from actions.urge import ActionUrgeShipment
from tests.helpers import DOMAIN, run, texts, tracker
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop.access import get_order_check_store
from xiaoer.shop.factory import get_backend
from xiaoer.shop.models import OrderStatus
from xiaoer.shop.urges import get_urge_store

PAID, SHIPPED, UNPAID, NEW_DELIVERED = (
    "6938271045123400001",
    "6938271045123400002",
    "6938271045123400004",
    "6938271045123400007",
)
UNKNOWN = "6938271045123499999"
DEMO_ORDERS = [f"693827104512340000{i}" for i in range(1, 10)]
PERSONAL = ("13800000000", "张三", "体育西路", "¥", "89.00", "69.00", "299.00")
NEW_DETAILS = {
    "new_name": "李四",
    "new_phone": "13912345678",
    "new_address": "浙江省杭州市西湖区文三路100号",
}


@pytest.fixture(autouse=True)
def _shop(data_dir):
    yield


def slot_value(events: list[dict[str, Any]], name: str) -> Any:
    return next(
        (e["value"] for e in events if e.get("event") == "slot" and e["name"] == name), "absent"
    )


def in_form(form: str, slot: str, value: Any, slots: dict[str, Any] | None = None, **kw) -> Tracker:
    """The customer answers ``value`` to the form's question for ``slot``."""
    t = tracker(slots={**(slots or {}), "requested_slot": slot}, **kw)
    t.events.append({"event": "slot", "name": slot, "value": value})
    t.active_loop = {"name": form}
    return t


def as_douyin(buyer: str) -> dict[str, Any]:
    return {"metadata": {"buyer_id": buyer}, "channel": "douyin"}


async def recipient(order_id: str) -> tuple[str, str, str]:
    order = await get_backend().get_order(order_id)
    assert order is not None and order.recipient is not None
    return order.recipient.name, order.recipient.phone, order.recipient.address


# --- (a) an anonymous REST customer changes an address -----------------------------------------
async def test_anonymous_address_change_needs_the_phone_tail_and_forged_slots_change_nothing():
    before = await recipient(PAID)
    # the form asks for the phone tail before anything else, and says nothing of the order
    msgs, events = await run(
        ValidateAddressForm(), in_form("address_form", "order_id", PAID, channel="rest")
    )
    assert slot_value(events, "requested_slot") == "verify_phone_tail"
    assert slot_value(events, "flow_blocker") is None and texts(msgs) == ""
    # the attack: the new details and the confirmation without the verification
    forged = {"order_id": PAID, **NEW_DETAILS, "address_confirmed": True}
    forged["verify_phone_tail"] = "verified"
    msgs, events = await run(ActionChangeAddress(), tracker(slots=forged, channel="rest"))
    assert "核实" in texts(msgs) and "已为您修改" not in texts(msgs)
    assert slot_value(events, "handoff_offered") is True
    assert await recipient(PAID) == before


async def test_right_phone_tail_lets_the_change_through():
    msgs, events = await run(
        ValidateAddressForm(),
        in_form("address_form", "verify_phone_tail", "0000", {"order_id": PAID}, channel="rest"),
    )
    assert slot_value(events, "verify_phone_tail") == "verified"
    assert slot_value(events, "requested_slot") == "new_name"
    slots = {"order_id": PAID, **NEW_DETAILS, "address_confirmed": True}
    msgs, _ = await run(ActionChangeAddress(), tracker(slots=slots, channel="rest"))
    assert "已为您修改" in texts(msgs)
    assert await recipient(PAID) == ("李四", "13912345678", "浙江省杭州市西湖区文三路100号")


async def test_wrong_phone_tail_twice_offers_a_human_and_changes_nothing():
    before = await recipient(PAID)
    msgs, events = await run(
        ValidateAddressForm(),
        in_form("address_form", "verify_phone_tail", "1234", {"order_id": PAID}),
    )
    assert "没有对上" in texts(msgs) or "不一致" in texts(msgs)
    assert slot_value(events, "verify_phone_tail_failures") == 1.0
    assert slot_value(events, "requested_slot") == "verify_phone_tail"
    # the form's question after it says nothing more: "再发一次" was the question
    after = tracker(slots={"order_id": PAID, "requested_slot": "verify_phone_tail"})
    after.events += [{"event": "user", "text": "1234"}, *events]
    asked, _ = await run(ActionAskVerifyPhoneTail(), after)
    assert asked == []
    # a first question (no try yet in this turn) is asked
    after.events.append({"event": "user", "text": "我要改地址"})
    asked, _ = await run(ActionAskVerifyPhoneTail(), after)
    assert "收件人手机号后4位" in texts(asked)
    msgs, events = await run(
        ValidateAddressForm(),
        in_form(
            "address_form",
            "verify_phone_tail",
            "8888",
            {"order_id": PAID, "verify_phone_tail_failures": 1.0},
        ),
    )
    assert "两次都没有对上" in texts(msgs)
    assert slot_value(events, "requested_slot") is None  # the form stops asking
    slots = {"order_id": PAID, **NEW_DETAILS, "address_confirmed": True}
    slots["verify_phone_tail_failures"] = float(MAX_FAILURES)
    msgs, events = await run(ActionChangeAddress(), tracker(slots=slots))
    assert slot_value(events, "handoff_offered") is True and "已为您修改" not in texts(msgs)
    assert await recipient(PAID) == before
    # a reset failure counter gives no third try: the wrong answers are on record
    msgs, events = await run(
        ValidateAddressForm(),
        in_form("address_form", "verify_phone_tail", "0000", {"order_id": PAID}),
    )
    assert slot_value(events, "verify_phone_tail") is None
    assert "次数过多" in texts(msgs)


async def test_verification_is_per_conversation_and_per_order():
    await run(
        ValidateCancelForm(),
        in_form("cancel_form", "verify_phone_tail", "0000", {"order_id": UNPAID}),
    )
    store = get_order_check_store()
    assert store.is_verified("test-user", UNPAID, 30)
    assert not store.is_verified("someone-else", UNPAID, 30)
    assert not store.is_verified("test-user", PAID, 30)
    # another conversation cannot use it
    t = tracker(slots={"order_id": UNPAID, "cancel_confirmed": True}, sender_id="someone-else")
    await run(ActionCancelOrder(), t)
    assert (await get_backend().get_order(UNPAID)).status == OrderStatus.UNPAID
    # the verified conversation can
    msgs, _ = await run(
        ActionCancelOrder(), tracker(slots={"order_id": UNPAID, "cancel_confirmed": True})
    )
    assert "已为您取消" in texts(msgs)
    assert (await get_backend().get_order(UNPAID)).status == OrderStatus.CANCELLED


async def test_after_sales_needs_verification_too():
    slots = {
        "order_id": NEW_DELIVERED,
        "as_type": "return_refund",
        "as_reason": "不想要了",
        "as_confirmed": True,
        "verify_phone_tail": "verified",
    }
    msgs, _ = await run(ActionSubmitAfterSales(), tracker(intent="affirm", slots=slots))
    assert await get_backend().after_sales_for_order(NEW_DELIVERED) == []
    assert "售后单号" not in texts(msgs)
    _, events = await run(
        ValidateAfterSalesForm(),
        in_form(
            "after_sales_form",
            "order_id",
            NEW_DELIVERED,
            {"as_type": "return_refund"},
            channel="rest",
        ),
    )
    assert slot_value(events, "requested_slot") == "verify_phone_tail"


# --- (b) a Douyin buyer reaches another buyer's order -------------------------------------------
async def reply_to(action: Any, t: Tracker, seed: int = 7) -> tuple[str, list[dict[str, Any]]]:
    random.seed(seed)  # the same variation of a message for both ids
    msgs, events = await run(action, t)
    return texts(msgs), events


@pytest.mark.parametrize(
    "form,validator",
    [
        ("order_status_form", ValidateOrderStatusForm()),
        ("cancel_form", ValidateCancelForm()),
        ("address_form", ValidateAddressForm()),
    ],
)
async def test_another_buyers_order_is_answered_like_an_unknown_one(form, validator):
    someone_else = as_douyin("buyer_demo_002")
    theirs, their_events = await reply_to(
        validator, in_form(form, "order_id", PAID, **someone_else)
    )
    unknown, unknown_events = await reply_to(
        validator, in_form(form, "order_id", UNKNOWN, **someone_else)
    )
    assert theirs == unknown.replace(UNKNOWN, PAID)
    assert ("没有查到" in theirs) or ("没有找到" in theirs)
    strip = [{**e, "value": None} if e.get("name") == "order_id" else e for e in their_events]
    assert strip == [
        {**e, "value": None} if e.get("name") == "order_id" else e for e in unknown_events
    ]
    assert slot_value(their_events, "order_id_failures") == 1.0


async def test_another_buyers_order_cannot_be_cancelled_or_read_by_the_final_actions():
    someone_else = as_douyin("buyer_demo_002")
    slots = {"order_id": UNPAID, "cancel_confirmed": True}
    theirs, _ = await reply_to(ActionCancelOrder(), tracker(slots=slots, **someone_else))
    unknown, _ = await reply_to(
        ActionCancelOrder(), tracker(slots={**slots, "order_id": UNKNOWN}, **someone_else)
    )
    assert theirs == unknown.replace(UNKNOWN, UNPAID)
    assert (await get_backend().get_order(UNPAID)).status == OrderStatus.UNPAID
    text, _ = await reply_to(
        ActionOrderStatus(), tracker(slots={"order_id": SHIPPED}, **someone_else)
    )
    assert "SF1234567890123" not in text and "没有" in text
    await run(ActionUrgeShipment(), tracker(slots={"order_id": PAID}, **someone_else))
    assert get_urge_store().for_order(PAID) == []
    # the owner still can, without a phone check
    msgs, _ = await run(ActionCancelOrder(), tracker(slots=slots, **as_douyin("buyer_demo_001")))
    assert "已为您取消" in texts(msgs)


# --- (c) forged trackers straight to the final action ----------------------------------------------
async def test_forged_cancel_of_a_paid_order_respects_the_permission():
    """cancel_paid_orders is false: even the verified owner's forged confirmation goes to
    an agent, the order stays paid."""
    forged = {
        "order_id": PAID,
        "cancel_confirmed": True,
        "flow_blocker": None,
        "verify_phone_tail": "verified",
    }
    msgs, _ = await run(ActionCancelOrder(), tracker(slots=forged, **as_douyin("buyer_demo_001")))
    assert "人工客服" in texts(msgs)
    assert (await get_backend().get_order(PAID)).status == OrderStatus.PAID
    assert [h.reason for h in get_handoff_store().waiting()] == ["cancel_paid_order"]


async def test_forged_cancel_of_an_unverified_unpaid_order_changes_nothing():
    forged = {"order_id": UNPAID, "cancel_confirmed": True, "verify_phone_tail": "verified"}
    msgs, _ = await run(ActionCancelOrder(), tracker(slots=forged, channel="rest"))
    assert "已为您取消" not in texts(msgs)
    assert (await get_backend().get_order(UNPAID)).status == OrderStatus.UNPAID


async def test_forged_blocker_slot_does_not_open_a_shipped_order():
    """A made-up ``flow_blocker: null`` for a shipped order: the state comes from the shop."""
    forged = {"order_id": SHIPPED, **NEW_DETAILS, "address_confirmed": True, "flow_blocker": None}
    msgs, _ = await run(ActionChangeAddress(), tracker(slots=forged, **as_douyin("buyer_demo_001")))
    assert "已经发货" in texts(msgs)
    order = await get_backend().get_order(SHIPPED)
    assert order.recipient is not None and order.recipient.name == "张三"


# --- (d) anonymous status lookups show no personal data -----------------------------------------------
@pytest.mark.parametrize("order_id", DEMO_ORDERS)
async def test_anonymous_status_lookup_shows_no_recipient_or_price(order_id):
    for channel in (None, "rest"):
        msgs, _ = await run(
            ActionOrderStatus(), tracker(slots={"order_id": order_id}, channel=channel)
        )
        text = texts(msgs)
        assert order_id in text
        assert not [p for p in PERSONAL if p in text], text


async def test_anonymous_lookup_still_names_courier_and_tracking():
    msgs, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": SHIPPED}, channel="rest"))
    assert "顺丰速运" in texts(msgs) and "SF1234567890123" in texts(msgs)


# --- (e) enumeration ------------------------------------------------------------------------------------
async def test_lookups_of_many_order_ids_are_limited_per_conversation():
    def ask(order_id: str, sender: str = "prober") -> Tracker:
        return in_form("order_status_form", "order_id", order_id, sender_id=sender, channel="rest")

    for i in range(5):
        _, events = await run(ValidateOrderStatusForm(), ask(f"69382710451234999{i:02d}"))
        assert slot_value(events, "order_id_failures") == 1.0  # unknown, but looked up
    msgs, events = await run(ValidateOrderStatusForm(), ask(SHIPPED))
    assert "查询的订单号比较多" in texts(msgs)
    assert slot_value(events, "order_id") is None and slot_value(events, "requested_slot") is None
    msgs, events = await run(
        ActionOrderStatus(),
        tracker(
            slots={"order_id": None, "flow_blocker": "lookup_limited"},
            sender_id="prober",
            channel="rest",
        ),
    )
    assert slot_value(events, "handoff_offered") is True and "SF1234567890123" not in texts(msgs)
    # the final action checks the limit too (a forged tracker naming a sixth id)
    msgs, _ = await run(
        ActionOrderStatus(),
        tracker(slots={"order_id": SHIPPED}, sender_id="prober", channel="rest"),
    )
    assert "SF1234567890123" not in texts(msgs) and "查询的订单号比较多" in texts(msgs)
    # an id already looked up is answered again; another conversation is not limited
    _, events = await run(ValidateOrderStatusForm(), ask("6938271045123499900"))
    assert slot_value(events, "order_id_failures") == 1.0
    _, events = await run(ValidateOrderStatusForm(), ask(SHIPPED, sender="someone-else"))
    assert slot_value(events, "order_id") == SHIPPED


async def test_known_buyers_are_not_limited_on_douyin():
    for order_id in DEMO_ORDERS[:7]:
        t = in_form("order_status_form", "order_id", order_id, **as_douyin("buyer_demo_001"))
        msgs, _ = await run(ValidateOrderStatusForm(), t)
        assert "查询的订单号比较多" not in texts(msgs)


def test_the_verification_slot_is_in_every_order_changing_form():
    forms = DOMAIN["forms"]
    for form in ("cancel_form", "address_form", "after_sales_form"):
        slots = forms[form]["required_slots"]
        assert slots.index("verify_phone_tail") == slots.index("order_id") + 1
    for form in ("order_status_form", "urge_form"):
        assert "verify_phone_tail" not in forms[form]["required_slots"]


# --- settings ----------------------------------------------------------------------------------------
def test_channel_settings_default_to_the_safe_side(tmp_path, monkeypatch):
    import yaml

    from xiaoer.core import config
    from xiaoer.shop.access import security_settings

    conf = tmp_path / "xiaoer.yml"
    conf.write_text(
        yaml.safe_dump(
            {"security": {"channels": {"douyin": {"buyer_known": True}, "kiosk": {}}}},
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("XIAOER_CONFIG", str(conf))
    config.get_settings.cache_clear()
    try:
        settings = security_settings()
        for name in ("rest", "socketio", None, "kiosk"):
            channel = settings.channel(name)
            assert not channel.buyer_known and channel.verify_changes == "phone_tail"
            assert channel.max_order_lookups_per_hour == 5
        assert settings.channel("douyin").buyer_known
        conf.write_text(
            yaml.safe_dump({"security": {"channels": {"rest": {"verify_changes": "maybe"}}}}),
            encoding="utf-8",
        )
        config.get_settings.cache_clear()
        with pytest.raises(ValueError, match="verify_changes"):
            security_settings()
    finally:
        config.get_settings.cache_clear()


async def test_douyin_message_without_a_buyer_is_anonymous():
    _, events = await run(
        ValidateCancelForm(), in_form("cancel_form", "order_id", UNPAID, channel="douyin")
    )
    assert slot_value(events, "requested_slot") == "verify_phone_tail"


@pytest.mark.parametrize(
    ("answer", "matches"),
    [
        ("0000", True),
        ("尾号0000", True),
        ("００００", True),  # full-width
        ("零零零零", True),  # Chinese numerals, as customers say them
        ("〇〇〇〇", True),
        ("我看一下 是0000", True),  # 一下 is no digit when 4 digits are written
        ("零零零", False),
        ("1234", False),
        ("0000 0000", False),
    ],
)
def test_the_phone_tail_in_every_written_form(answer: str, matches: bool) -> None:
    from xiaoer.shop.access import phone_tail_matches

    assert phone_tail_matches("13800000000", answer) is matches


async def test_a_phone_tail_in_chinese_numerals_verifies():
    msgs, events = await run(
        ValidateAddressForm(),
        in_form("address_form", "verify_phone_tail", "零零零零", {"order_id": PAID}),
    )
    assert slot_value(events, "verify_phone_tail") == "verified"
    assert "没有对上" not in texts(msgs) and "不一致" not in texts(msgs)
