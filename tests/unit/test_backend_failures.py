"""A shop backend that is down or too slow is answered as such (issue 19).

Every order flow's turn (the form's validation, then its submit action, as Rasa runs them)
and a product question give exactly one message: the busy system named, a human offered
with buttons, never "I did not understand" after it. Before, the form said "busy" and its
submit action, seeing no order, added "我好像一直没理解您的问题".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.address import ActionChangeAddress, ValidateAddressForm
from actions.aftersales import ActionSubmitAfterSales, ValidateAfterSalesForm
from actions.cancel import ActionCancelOrder, ValidateCancelForm
from actions.handoff import ActionHandoff
from actions.orders import ActionOrderStatus, ValidateOrderStatusForm
from actions.products import ActionProductQuestion
from actions.urge import ActionUrgeShipment, ValidateUrgeForm
from tests.helpers import run, texts
from tests.helpers import tracker as any_tracker
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop.backend import BackendUnavailable, ShopBackend
from xiaoer.shop.factory import get_backend

ORDER_PAID = "6938271045123400001"
BUSY = "订单系统暂时有点忙"
NOT_UNDERSTOOD = "没理解"


class FailingShop:
    """The inner backend of the process-wide one: every call fails (``down``) or outlasts
    the timeout (``slow``); the shop's own settings (policies) still answer."""

    def __init__(self, real: ShopBackend, mode: str) -> None:
        self.real, self.mode, self.name = real, mode, real.name

    def policies(self) -> Any:
        return self.real.policies()

    def __getattr__(self, method: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            if self.mode == "slow":
                await asyncio.sleep(5)
            raise BackendUnavailable(f"{method}: connection refused")

        return fail


@pytest.fixture(params=["down", "slow"])
def broken_shop(request: pytest.FixtureRequest, data_dir, monkeypatch: pytest.MonkeyPatch) -> str:
    guarded = get_backend()
    monkeypatch.setattr(guarded, "inner", FailingShop(guarded.inner, request.param))
    monkeypatch.setattr(guarded, "timeout", 0.05)
    return str(request.param)


def customer(slots: dict[str, Any] | None = None, channel: str = "douyin", **kw: Any) -> Tracker:
    metadata = {"buyer_id": "buyer_demo_001"} if channel == "douyin" else {}
    return any_tracker(slots=slots or {}, channel=channel, metadata=metadata, **kw)


async def form_turn(validation, submit, form: str, slots: dict[str, Any] | None = None, **kw):
    """The customer sends the order number while ``form`` asks for it: the validation,
    then (the form finished) its submit action on the slots the validation set."""
    t = customer(slots=slots, intent="inform_order_id", text=ORDER_PAID, **kw)
    t.events.append({"event": "slot", "name": "order_id", "value": ORDER_PAID})
    t.active_loop = {"name": form}
    t.slots["requested_slot"] = "order_id"
    msgs, events = await run(validation, t)
    assert SlotSet("requested_slot", None) in events, "the form stops asking"
    after = customer(slots=slots, intent="inform_order_id", text=ORDER_PAID, **kw)
    after.slots.update({e["name"]: e["value"] for e in events if e.get("event") == "slot"})
    submitted, submit_events = await run(submit, after)
    return msgs + submitted, events + submit_events


def assert_named_with_a_human_offered(msgs: list[dict], events: list, busy: str = BUSY) -> None:
    assert len(msgs) == 1, texts(msgs)
    text = texts(msgs)
    assert busy in text and "人工" in text and NOT_UNDERSTOOD not in text
    assert [b["title"] for b in msgs[0]["buttons"]] == ["转人工", "不用了"]
    assert SlotSet("handoff_offered", True) in events
    assert SlotSet("handoff_reason", "backend_error") in events


FLOWS = [
    (ValidateOrderStatusForm(), ActionOrderStatus(), "order_status_form", {}),
    (ValidateUrgeForm(), ActionUrgeShipment(), "urge_form", {}),
    (ValidateCancelForm(), ActionCancelOrder(), "cancel_form", {}),
    (ValidateAddressForm(), ActionChangeAddress(), "address_form", {}),
    (ValidateAfterSalesForm(), ActionSubmitAfterSales(), "after_sales_form", {"as_type": "return_refund"}),
]  # fmt: skip


@pytest.mark.parametrize("channel", ["douyin", "rest"])
@pytest.mark.parametrize(("validation", "submit", "form", "slots"), FLOWS, ids=lambda v: str(v))
async def test_every_order_flow_names_the_busy_backend_once(
    broken_shop, validation, submit, form, slots, channel
):
    msgs, events = await form_turn(validation, submit, form, slots, channel=channel)
    assert_named_with_a_human_offered(msgs, events)
    assert SlotSet("order_id", None) in events and SlotSet("flow_blocker", None) in events


async def test_a_failure_while_the_phone_tail_is_checked_is_named_once(broken_shop):
    t = customer(
        slots={"order_id": ORDER_PAID, "requested_slot": "verify_phone_tail"},
        channel="rest",
        intent="inform",
        text="0000",
    )
    t.events.append({"event": "slot", "name": "verify_phone_tail", "value": "0000"})
    t.active_loop = {"name": "cancel_form"}
    msgs, events = await run(ValidateCancelForm(), t)
    assert msgs == [] and SlotSet("requested_slot", None) in events
    t.slots.update({e["name"]: e["value"] for e in events if e.get("event") == "slot"})
    submitted, submit_events = await run(ActionCancelOrder(), t)
    assert_named_with_a_human_offered(submitted, submit_events)


async def test_the_submit_action_alone_names_the_busy_backend(broken_shop):
    msgs, events = await run(ActionOrderStatus(), customer(slots={"order_id": ORDER_PAID}))
    assert_named_with_a_human_offered(msgs, events)


async def test_a_product_question_names_the_busy_product_system(broken_shop):
    t = customer(slots={"product": "P1001"}, intent="ask_stock", text="白色L码有货吗")
    msgs, events = await run(ActionProductQuestion(), t)
    assert_named_with_a_human_offered(msgs, events, busy="商品系统暂时有点忙")


async def test_yes_to_the_offer_queues_the_conversation_for_a_human(broken_shop):
    _, events = await form_turn(ValidateOrderStatusForm(), ActionOrderStatus(), "order_status_form")
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    msgs, _ = await run(ActionHandoff(), customer(slots=slots, intent="affirm", text="好"))
    assert [h.reason for h in get_handoff_store().waiting()] == ["backend_error"]
    assert NOT_UNDERSTOOD not in texts(msgs)
