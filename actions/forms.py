"""Shared form-validation bases.

* ``XiaoerFormValidationAction`` counts failures per slot (``<slot>_failures``) and stops
  asking for a slot after MAX_FAILURES bad answers.
* ``OrderFormValidation`` validates ``order_id`` for every order flow: normalised, looked
  up in the shop backend, unknown ids get one more chance. A flow may decide from the
  order that it cannot go on (``blocker``): the slot ``flow_blocker`` is set and the form
  stops asking, so that its submit action explains why.
"""

from __future__ import annotations

import abc
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import backend, log_event
from actions.handoff import offer_human
from actions.messages import say
from xiaoer.parsing import mask_order_id, parse_order_id
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order

MAX_FAILURES = 2


def form_reset(*slots: str, failures: tuple[str, ...] = ()) -> list[EventType]:
    """Events that clear an order flow's slots once its submit action is done."""
    cleared = ("order_id", "flow_blocker", *slots)
    counted = ("order_id", *failures)
    return [SlotSet(s, None) for s in cleared] + [SlotSet(f"{s}_failures", 0.0) for s in counted]


def order_values(order: Order) -> dict[str, Any]:
    """The placeholders every order message uses."""
    return {
        "order_id": order.order_id,
        "items": order.summary,
        "total": f"{order.total:.2f}",
        "status": order.status.words,
    }


class AskAction(Action, abc.ABC):
    """Asks for a form slot with one message of messages.yml."""

    message = ""

    @abc.abstractmethod
    def name(self) -> str: ...

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        say(dispatcher, self.message)
        return []


class XiaoerFormValidationAction(FormValidationAction, abc.ABC):
    """After MAX_FAILURES bad answers for a slot the form stops asking for it.

    The failure count lives in the slot ``<slot>_failures``; the form's submit action
    sees the slot still empty and the count at MAX_FAILURES and offers a human.
    """

    @abc.abstractmethod
    def name(self) -> str:
        """The form's validation action name: validate_<form name>."""

    @staticmethod
    def failures(tracker: Tracker, slot: str) -> int:
        return int(tracker.get_slot(f"{slot}_failures") or 0)

    def fail(self, tracker: Tracker, slot: str) -> dict[str, Any]:
        return {slot: None, f"{slot}_failures": float(self.failures(tracker, slot) + 1)}

    def checked(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        slot: str,
        parsed: Any,
        error: str,
        **error_values: Any,
    ) -> dict[str, Any]:
        """``{slot: parsed}``; when ``parsed`` is None, message ``error`` and a failure."""
        if parsed is None:
            say(dispatcher, error, **error_values)
            return self.fail(tracker, slot)
        return {slot: parsed}

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        return [s for s in domain_slots if self.failures(tracker, s) < MAX_FAILURES]


class OrderFormValidation(XiaoerFormValidationAction, abc.ABC):
    """Validation of ``order_id`` shared by all order flows."""

    async def blocker(self, order: Order, tracker: Tracker) -> str | None:
        """A reason code why this flow cannot continue for ``order`` (None: go on)."""
        return None

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("flow_blocker"):
            return ["order_id"]
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if "order_id" not in slots:  # the id failed twice: stop the whole form
            return []
        return slots

    async def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        order_id = parse_order_id(str(slot_value) if slot_value is not None else None)
        if order_id is None:
            say(dispatcher, "invalid_order_id", value=str(slot_value or "")[:30])
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
        try:
            reason = await self.blocker(order, tracker)
        except BackendError:
            say(dispatcher, "backend_error")
            return {"order_id": None, "order_id_failures": float(MAX_FAILURES)}
        return {"order_id": order_id, "flow_blocker": reason}


async def order_for_submit(
    dispatcher: CollectingDispatcher, tracker: Tracker, reset: list[EventType]
) -> tuple[Order | None, list[EventType]]:
    """The order a finished form collected, for its submit action.

    ``(None, events)`` means the action stops and returns ``events``: the id failed twice
    (a human is offered), the backend failed (polite answer, human offered) or the order
    vanished."""
    order_id = tracker.get_slot("order_id")
    if not order_id:
        return None, reset + offer_human(dispatcher, tracker, "order_not_found", after_misses=True)
    try:
        order = await backend().get_order(order_id)
    except BackendError:
        say(dispatcher, "backend_error")
        return None, reset + offer_human(dispatcher, tracker, "backend_error")
    if order is None:
        say(dispatcher, "order_not_found", order_id=order_id)
        return None, reset
    return order, []


async def current_order(tracker: Tracker) -> Order | None:
    """The order of the running form (None when unknown or the backend failed)."""
    try:
        return await backend().get_order(tracker.get_slot("order_id") or "")
    except BackendError:
        return None
