"""Urge shipment: record the urge for agents and give the promise (or the tracking)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import backend, buyer_id, fmt_time, log_event
from actions.forms import OrderFormValidation, form_reset
from actions.handoff import hand_over
from actions.messages import say
from actions.order_flow import OrderFlowSubmit
from actions.order_replies import order_reply
from xiaoer.core.clock import now_beijing
from xiaoer.core.senders import is_sandbox
from xiaoer.shop.models import Order, OrderStatus
from xiaoer.shop.urges import get_urge_store
from xiaoer.text.parsing import mask_order_id

RESET = form_reset()


class ValidateUrgeForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_urge_form"


class ActionUrgeShipment(OrderFlowSubmit):
    reset = RESET

    def name(self) -> str:
        return "action_urge_shipment"

    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
        order_id = order.order_id
        policies = backend().policies()
        _, values = order_reply(order, policies.ship_within_hours)
        if order.status == OrderStatus.PAID:
            deadline = order.ship_deadline(policies.ship_within_hours)
            overdue = (
                max(0.0, (now_beijing() - deadline).total_seconds() / 3600) if deadline else 0.0
            )
            # the console's test chat records no urge (agents' queue): counted as the first
            times = (
                1
                if is_sandbox(tracker.sender_id)
                else get_urge_store().record(
                    tracker.sender_id, order.order_id, overdue, buyer_id(tracker)
                )
            )
            log_event("urge", tracker, order=mask_order_id(order_id), overdue_h=round(overdue))
            values["ship_deadline"] = fmt_time(deadline)
            if overdue > 0 and times >= 2:
                say(dispatcher, "urge_repeated_overdue")
                return RESET + hand_over(
                    dispatcher,
                    tracker,
                    "urge_overdue",
                    "订单信息和催单记录",
                    f"订单 {order.order_id} 超时约{overdue:.0f}小时，已催单{times}次",
                )
            key = "urge_recorded_overdue" if overdue > 0 else "urge_recorded"
            say(dispatcher, key, overdue_hours=f"{overdue:.0f}", **values)
        elif order.status == OrderStatus.SHIPPED:
            say(dispatcher, "urge_shipped", **values)
        elif order.status == OrderStatus.UNPAID:
            say(dispatcher, "urge_unpaid", **values)
        elif order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
            say(dispatcher, "urge_delivered", delivered_at=fmt_time(order.delivered_at), **values)
        else:
            say(dispatcher, "urge_cancelled", **values)
        return RESET
