"""Order status: the form's validation and the answer."""

from __future__ import annotations

import json

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import backend, buyer_id, log_event
from actions.forms import MISSES_SLOT, OrderFormValidation, form_reset
from actions.handoff import backend_failed
from actions.messages import say, say_with_buttons
from actions.order_access import FOCUS_ORDER_SLOT, accessible_order, is_public, lookup_allowed
from actions.order_flow import OrderFlowSubmit
from actions.order_replies import order_reply, public_reply, say_case_if_asked
from actions.questions import ask_actions
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order, OrderStatus
from xiaoer.text.parsing import mask_order_id, parse_order_id

RESET = form_reset()
ORDER_ID_MISSING = "order_id_missing"  # handoff reason: no order number after two tries


class ValidateOrderStatusForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_order_status_form"


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


class ActionOrderStatus(OrderFlowSubmit):
    """The status of the order the form collected, and of every other order number the
    same message named ("…001 和 …006 都到哪了"), each in the order written, each through
    the same access rules (lookup limit, a known buyer's own orders only)."""

    reset = RESET

    def name(self) -> str:
        return "action_order_status"

    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
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
                    return RESET + backend_failed(dispatcher, tracker)
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


async def ask_order_id(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """The forms' question for the order id; a known buyer gets their orders as buttons."""
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


ASKS = ask_actions(__name__, {"action_ask_order_id": ask_order_id})
ActionAskOrderId = ASKS["action_ask_order_id"]
