"""Order status: the form's validation and the answer."""

from __future__ import annotations

import json
import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, buyer_id, fmt_time, log_event
from actions.forms import (
    FOCUS_ORDER_SLOT,
    MISSES_SLOT,
    OrderFormValidation,
    accessible_order,
    form_reset,
    is_public,
    lookup_allowed,
    order_for_submit,
    order_values,
)
from actions.messages import say, say_with_buttons
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order, OrderStatus
from xiaoer.text.parsing import mask_order_id, mask_phone, parse_order_id

RESET = form_reset()
ORDER_ID_MISSING = "order_id_missing"  # handoff reason: no order number after two tries


class ValidateOrderStatusForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_order_status_form"


def order_reply(order: Order, within_hours: int) -> tuple[str, dict[str, str]]:
    """The response name and its values for an order's status (shop facts such as the
    shipping promise are added by ``say``)."""
    values = order_values(order)
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


_PHONE_IN_TEXT = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def public_reply(response: str, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The status answer for a customer the channel does not know: no amounts, and any
    phone number a courier's trace may carry is masked (recipient details are never in
    the status answers)."""
    values = {k: v for k, v in values.items() if k != "total"}
    if values.get("trace"):
        values["trace"] = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), values["trace"])
    if response == "order_unpaid":
        response = "order_unpaid_public"
    return response, values


def message_order_ids(tracker: Tracker) -> list[str]:
    """The order numbers of the latest message, in the order they were written."""
    ids: list[str] = []
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") != "order_id":
            continue
        order_id = parse_order_id(str(entity.get("value") or ""))
        if order_id and order_id not in ids:
            ids.append(order_id)
    return ids


class ActionOrderStatus(Action):
    """The status of the order the form collected, and of every other order number the
    same message named ("…001 和 …006 都到哪了"), each in the order written, each through
    the same access rules (lookup limit, a known buyer's own orders only)."""

    def name(self) -> str:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        order, stop = await order_for_submit(dispatcher, tracker, RESET)
        if order is None:
            # the form gave up after repeated bad ids, or the backend failed
            return stop
        from actions.aftersales import say_case_if_asked

        named = message_order_ids(tracker)
        if order.order_id not in named:
            named = [order.order_id]
        if named == [order.order_id] and await say_case_if_asked(dispatcher, tracker, order):
            return RESET + [SlotSet(FOCUS_ORDER_SLOT, order.order_id)]  # "…退款到哪了"
        for order_id in named:
            if order_id != order.order_id:
                if not lookup_allowed(tracker, order_id):
                    say(dispatcher, "order_lookup_limited")
                    break
                try:
                    other = await accessible_order(tracker, order_id)
                except BackendError:
                    say(dispatcher, "backend_error")
                    break
                if other is None:
                    say(dispatcher, "order_not_found", order_id=order_id)
                    continue
                self.tell(dispatcher, tracker, other)
            else:
                self.tell(dispatcher, tracker, order)
        return RESET

    @staticmethod
    def tell(dispatcher: CollectingDispatcher, tracker: Tracker, order: Order) -> None:
        policies = backend().policies()
        response, values = order_reply(order, policies.ship_within_hours)
        if is_public(tracker):  # anonymous: status and tracking only
            response, values = public_reply(response, values)
        say(dispatcher, response, **values)
        log_event(
            "order_status", tracker, order=mask_order_id(order.order_id), status=order.status.value
        )


# which of the buyer's orders each flow offers as buttons
FLOW_ORDER_FILTER = {
    "urge_form": {OrderStatus.PAID},
    "cancel_form": {OrderStatus.UNPAID, OrderStatus.PAID},
    "address_form": {OrderStatus.UNPAID, OrderStatus.PAID},
    "after_sales_form": {OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.PAID},
}


class ActionAskOrderId(Action):
    """The forms' question for the order id; a known buyer gets their orders as buttons."""

    def name(self) -> str:
        return "action_ask_order_id"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        misses = int(tracker.get_slot(MISSES_SLOT) or 0)
        if misses == 2 and not tracker.get_slot("handoff_offered"):
            # second message without the number: a human is offered, the form goes on
            say(dispatcher, "ask_order_id_offer_human")
            log_event("handoff_offered", tracker, reason=ORDER_ID_MISSING)
            return [SlotSet("handoff_offered", True), SlotSet("handoff_reason", ORDER_ID_MISSING)]
        if misses >= 2:
            say(dispatcher, "ask_order_id_brief")
            return []
        buyer = buyer_id(tracker)
        orders: list[Order] = []
        if buyer:
            try:
                orders = await backend().orders_by_buyer(buyer, limit=10)
            except BackendError:
                orders = []
            form = (tracker.active_loop or {}).get("name", "")
            wanted = FLOW_ORDER_FILTER.get(form)
            if wanted:
                orders = [o for o in orders if o.status in wanted]
        if not orders:
            say(dispatcher, "ask_order_id_help" if misses else "ask_order_id")
            return []
        buttons = [
            {
                "title": f"{o.summary} · {o.status.words} · 尾号{o.order_id[-4:]}",
                "payload": "/inform_order_id" + json.dumps({"order_id": o.order_id}),
            }
            for o in orders[:5]
        ]
        say_with_buttons(dispatcher, "ask_order_id_help" if misses else "pick_order", buttons)
        return []
