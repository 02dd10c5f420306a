"""Change the recipient, phone and address of an order before it ships."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, log_event
from actions.forms import OrderFormValidation, form_reset
from actions.handoff import backend_failed, hand_over
from actions.messages import sandbox_stop, say
from actions.order_flow import OrderFlowSubmit
from actions.order_replies import order_values
from actions.questions import ask_actions
from xiaoer.core.settings import allowed
from xiaoer.shop.backend import BackendError, NotSupportedByBackend, OperationRejected
from xiaoer.shop.models import Order, OrderStatus, Recipient
from xiaoer.text.contacts import recipient_in
from xiaoer.text.parsing import (
    mask_order_id,
    mask_phone,
    parse_phone,
    valid_address,
    valid_name,
)

SLOTS = ("new_name", "new_phone", "new_address", "address_confirmed")
RESET = form_reset(*SLOTS, failures=SLOTS[:3])


class ValidateAddressForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_address_form"

    async def blocker(self, order: Order, tracker: Tracker) -> str | None:
        if order.status == OrderStatus.SHIPPED:
            return "shipped"
        if order.status not in (OrderStatus.UNPAID, OrderStatus.PAID):
            return "closed"
        return None if allowed("change_address") else "needs_agent"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("flow_blocker") == "needs_agent":
            # address changes are done by an agent (permissions.change_address off): the
            # new details are still collected, so that the agent gets them (no confirmation)
            if any(self.failures(tracker, s) >= 2 for s in SLOTS[:3]):
                return []
            return [s for s in SLOTS[:3] if not tracker.get_slot(s)]
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        # a detail that failed twice: stop and let an agent finish
        if any(self.failures(tracker, s) >= 2 for s in SLOTS[:3]):
            return []
        return slots

    # --- all three details in one message (issue 12) ---------------------------------
    @staticmethod
    def _in_one_message(tracker: Tracker, slot: str) -> dict[str, Any]:
        """ "改成 浙江省杭州市…88号 李四 13900001111": every detail from one message, while
        the form asks for any of them."""
        if tracker.get_slot("requested_slot") not in SLOTS[:3]:
            return {}
        found = recipient_in(tracker.latest_message.get("text"))
        if found is None:
            return {}
        return {slot: dict(zip(SLOTS[:3], found, strict=True))[slot]}

    async def extract_new_name(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._in_one_message(tracker, "new_name")

    async def extract_new_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._in_one_message(tracker, "new_phone")

    async def extract_new_address(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._in_one_message(tracker, "new_address")

    async def validate_new_name(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        return self.checked(
            dispatcher,
            tracker,
            "new_name",
            valid_name(slot_value),
            "address_invalid_name",
            value=str(slot_value)[:30],
        )

    async def validate_new_phone(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        return self.checked(
            dispatcher,
            tracker,
            "new_phone",
            parse_phone(slot_value),
            "address_invalid_phone",
            value=str(slot_value)[:30],
        )

    async def validate_new_address(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        return self.checked(
            dispatcher, tracker, "new_address", valid_address(slot_value), "address_invalid_address"
        )


async def ask_address_confirmed(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType]:
    say(
        dispatcher,
        "address_confirm",
        name=tracker.get_slot("new_name"),
        phone=tracker.get_slot("new_phone"),
        address=tracker.get_slot("new_address"),
    )
    return []


ASKS = ask_actions(
    __name__,
    {
        "action_ask_new_name": "address_ask_name",
        "action_ask_new_phone": "address_ask_phone",
        "action_ask_new_address": "address_ask_address",
        "action_ask_address_confirmed": ask_address_confirmed,
    },
)
ActionAskAddressConfirmed = ASKS["action_ask_address_confirmed"]


class ActionChangeAddress(OrderFlowSubmit):
    reset = RESET
    changes = True
    replies = {
        "shipped": ("address_shipped", "address_shipped"),
        "closed": ("address_closed", None),
    }

    def name(self) -> str:
        return "action_change_address"

    async def check(self, order: Order, tracker: Tracker) -> tuple[str | None, dict[str, Any]]:
        return await ValidateAddressForm().blocker(order, tracker), {}

    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
        values = order_values(order)
        name, phone, address = (tracker.get_slot(s) for s in SLOTS[:3])
        details = f"订单 {order.order_id} 改地址：{name or '?'} {phone or '?'} {address or '?'}"
        if blocker == "needs_agent" or not (name and phone and address):
            # say only what was really collected (issue 12)
            what = "订单和新的收货信息" if (name and phone and address) else "订单信息"
            return RESET + hand_over(dispatcher, tracker, "change_address", what, details)
        if tracker.get_slot("address_confirmed") is not True:
            say(dispatcher, "address_kept", **values)
            return RESET
        if sandbox_stop(dispatcher, tracker, "sandbox_address", **values):
            return RESET
        try:
            await backend(tracker).update_address(order.order_id, Recipient(name, phone, address))
        except (NotSupportedByBackend, OperationRejected):
            return RESET + hand_over(
                dispatcher, tracker, "change_address", "订单和新的收货信息", details
            )
        except BackendError:
            return RESET + backend_failed(dispatcher, tracker)
        log_event(
            "address_changed", tracker, order=mask_order_id(order.order_id), phone=mask_phone(phone)
        )
        say(dispatcher, "address_changed", **values)
        return RESET
