"""Cancel an order: unpaid after confirmation; paid per the shop's permission; shipped: explain."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import backend, log_event
from actions.forms import OrderFormValidation, form_reset
from actions.handoff import backend_failed, hand_over
from actions.messages import sandbox_stop, say
from actions.order_access import current_order
from actions.order_flow import OrderFlowSubmit
from actions.order_replies import order_values
from actions.questions import ask_actions
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


async def ask_cancel_confirmed(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType]:
    order = await current_order(tracker)
    if order is None:  # the backend failed while the form waits: no yes/no buttons here
        say(dispatcher, "backend_error_in_form")
        return []
    say(dispatcher, "cancel_ask_confirm", **order_values(order))
    return []


ASKS = ask_actions(__name__, {"action_ask_cancel_confirmed": ask_cancel_confirmed})


class ActionCancelOrder(OrderFlowSubmit):
    reset = RESET
    changes = True
    replies = {
        "shipped": ("cancel_shipped", "cancel_shipped"),
        "closed": ("cancel_closed", None),
    }

    def name(self) -> str:
        return "action_cancel_order"

    async def check(self, order: Order, tracker: Tracker) -> tuple[str | None, dict[str, Any]]:
        return await ValidateCancelForm().blocker(order, tracker), {}

    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
        values = order_values(order)
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
        if sandbox_stop(dispatcher, tracker, "sandbox_cancel", **values):
            return RESET
        try:
            await backend(tracker).cancel_order(order.order_id)
        except (NotSupportedByBackend, OperationRejected):
            return RESET + hand_over(
                dispatcher,
                tracker,
                "cancel_order",
                "订单信息和取消请求",
                f"买家确认取消订单 {order.order_id}，系统未能自动取消",
            )
        except BackendError:
            return RESET + backend_failed(dispatcher, tracker)
        log_event("order_cancelled", tracker, order=mask_order_id(order.order_id))
        key = "cancel_done_paid" if order.status == OrderStatus.PAID else "cancel_done_unpaid"
        say(dispatcher, key, **values)
        return RESET
