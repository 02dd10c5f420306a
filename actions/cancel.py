"""Cancel an order: unpaid after confirmation; paid per the shop's permission; shipped: explain."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, log_event
from actions.forms import (
    OrderFormValidation,
    current_order,
    form_reset,
    order_for_submit,
    order_values,
)
from actions.handoff import hand_over, offer_human
from actions.messages import say
from xiaoer.core.settings import allowed
from xiaoer.shop.backend import BackendError, NotSupportedByBackend, OperationRejected
from xiaoer.shop.models import Order, OrderStatus
from xiaoer.text.parsing import mask_order_id

RESET = form_reset("cancel_confirmed")


class ValidateCancelForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_cancel_form"

    async def blocker(self, order: Order, tracker: Tracker) -> str | None:
        if order.status == OrderStatus.UNPAID:
            return None
        if order.status == OrderStatus.PAID:
            return None if allowed("cancel_paid_orders") else "needs_agent"
        if order.status == OrderStatus.SHIPPED:
            return "shipped"
        return "closed"


class ActionAskCancelConfirmed(Action):
    def name(self) -> str:
        return "action_ask_cancel_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        order = await current_order(tracker)
        if order is None:
            say(dispatcher, "backend_error")
            return []
        say(dispatcher, "cancel_ask_confirm", **order_values(order))
        return []


class ActionCancelOrder(Action):
    def name(self) -> str:
        return "action_cancel_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # ownership / verification, the order's state and the permission are checked
        # here again from the backend and the settings, never taken from the slots
        order, stop = await order_for_submit(dispatcher, tracker, RESET, change=True)
        if order is None:
            return stop
        order_id = order.order_id
        values = order_values(order)
        blocker = await ValidateCancelForm().blocker(order, tracker)
        if blocker == "shipped":
            say(dispatcher, "cancel_shipped", **values)
            return RESET + offer_human(dispatcher, tracker, "cancel_shipped")
        if blocker == "closed":
            say(dispatcher, "cancel_closed", **values)
            return RESET
        if blocker == "needs_agent":
            return RESET + hand_over(
                dispatcher,
                tracker,
                "cancel_paid_order",
                "订单信息和取消请求",
                f"买家要求取消已付款订单 {order.order_id}（{order.summary}，¥{order.total}）",
            )
        if tracker.get_slot("cancel_confirmed") is not True:
            say(dispatcher, "cancel_kept", **values)
            return RESET
        try:
            await backend().cancel_order(order.order_id)
        except (NotSupportedByBackend, OperationRejected):
            return RESET + hand_over(
                dispatcher,
                tracker,
                "cancel_order",
                "订单信息和取消请求",
                f"买家确认取消订单 {order.order_id}，系统未能自动取消",
            )
        except BackendError:
            say(dispatcher, "backend_error")
            return RESET + offer_human(dispatcher, tracker, "backend_error")
        log_event("order_cancelled", tracker, order=mask_order_id(order_id))
        key = "cancel_done_paid" if order.status == OrderStatus.PAID else "cancel_done_unpaid"
        say(dispatcher, key, **values)
        return RESET
