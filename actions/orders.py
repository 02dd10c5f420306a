"""Order status: the form's validation and the answer."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, fmt_time, log_event, shop_facts
from actions.forms import MAX_FAILURES, XiaoerFormValidationAction
from actions.handoff import offer_human
from actions.messages import say
from xiaoer.parsing import mask_order_id, parse_order_id
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order, OrderStatus


class ValidateOrderStatusForm(XiaoerFormValidationAction):
    def name(self) -> str:
        return "validate_order_status_form"

    async def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        order_id = parse_order_id(str(slot_value) if slot_value is not None else None)
        if order_id is None:
            shown = str(slot_value or "")[:30]
            say(dispatcher, "invalid_order_id", value=shown)
            return self.fail(tracker, "order_id")
        try:
            order = await backend().get_order(order_id)
        except BackendError:
            say(dispatcher, "backend_error")
            return {"order_id": None, "order_id_failures": float(MAX_FAILURES)}
        if order is None:
            log_event("order_not_found", tracker, order=mask_order_id(order_id))
            say(dispatcher, "order_not_found", order_id=order_id)
            return self.fail(tracker, "order_id")
        return {"order_id": order_id}


def order_reply(
    order: Order, facts: dict[str, str], within_hours: int
) -> tuple[str, dict[str, str]]:
    """The response name and its values for an order's status."""
    values = {
        "order_id": order.order_id,
        "items": order.summary,
        "total": f"{order.total:.2f}",
        "status": order.status.words,
        "ship_promise": facts["ship_promise"],
    }
    shipment = order.shipment
    if shipment:
        latest = shipment.latest_trace
        values.update(
            courier=shipment.courier,
            tracking_no=shipment.tracking_no,
            trace=latest.text if latest else "暂无物流更新",
            trace_time=fmt_time(latest.time) if latest else "",
        )
    if order.status == OrderStatus.UNPAID:
        return "order_unpaid", values
    if order.status == OrderStatus.PAID:
        values["ship_deadline"] = fmt_time(order.ship_deadline(within_hours))
        if order.is_overdue(within_hours):
            return "order_paid_overdue", values
        return "order_paid", values
    if order.status == OrderStatus.SHIPPED:
        return "order_shipped", values
    if order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        values["delivered_at"] = fmt_time(order.delivered_at)
        values.setdefault("courier", "")
        values.setdefault("tracking_no", "")
        return "order_delivered", values
    return "order_cancelled", values


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reset = [SlotSet("order_id", None), SlotSet("order_id_failures", 0.0)]
        order_id = tracker.get_slot("order_id")
        if not order_id:
            # the form gave up after repeated bad ids (or the backend failed)
            return reset + offer_human(dispatcher, tracker, "order_not_found", after_misses=True)
        try:
            order = await backend().get_order(order_id)
        except BackendError:
            say(dispatcher, "backend_error")
            return reset + offer_human(dispatcher, tracker, "backend_error")
        if order is None:
            say(dispatcher, "order_not_found", order_id=order_id)
            return reset
        policies = backend().policies()
        response, values = order_reply(order, shop_facts(), policies.ship_within_hours)
        say(dispatcher, response, **values)
        log_event("order_status", tracker, order=mask_order_id(order_id), status=order.status.value)
        return reset


class ActionAskOrderId(Action):
    """The form's question for the order id."""

    def name(self) -> str:
        return "action_ask_order_id"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        say(dispatcher, "ask_order_id")
        return []
