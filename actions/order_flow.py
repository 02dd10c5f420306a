"""The submit action of an order flow, as one template.

Every order flow (status, urge, cancel, address, after-sales) ends in a submit action
that takes the order its form collected, checks it again (the lookup limit, the buyer's
ownership, the phone check for a change: whatever the slots say, a tracker can be
forged), answers the states in which the flow cannot go on ("already shipped",
"closed"...), and only then does the flow's own work. ``OrderFlowSubmit`` is that
prelude; a flow declares its replies and writes ``submit``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import log_event
from actions.handoff import BACKEND_ERROR, backend_failed, offer_human
from actions.messages import say
from actions.order_access import (
    LOOKUP_LIMITED,
    MAX_FAILURES,
    ORDER_NOT_FOUND,
    VERIFY_SLOT,
    accessible_order,
    is_verified,
    lookup_allowed,
)
from actions.order_replies import order_values
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order
from xiaoer.text.parsing import mask_order_id


async def order_for_submit(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    reset: list[EventType],
) -> tuple[Order | None, list[EventType]]:
    """The order a finished form collected, for its submit action.

    ``(None, events)`` means the action stops and returns ``events``: the id failed twice
    (a human is offered), the backend failed, in the form or here (one message naming
    it, a human offered: ``backend_failed``) or the order
    vanished. (For a change, ``unverified_stop`` checks the verification next.)"""
    if tracker.get_slot("flow_blocker") == BACKEND_ERROR:  # the form's lookup failed
        return None, reset + backend_failed(dispatcher, tracker)
    order_id = tracker.get_slot("order_id")
    if not order_id:
        if tracker.get_slot("flow_blocker") == LOOKUP_LIMITED:
            return None, reset + offer_human(dispatcher, tracker, LOOKUP_LIMITED)
        return None, reset + offer_human(dispatcher, tracker, ORDER_NOT_FOUND, after_misses=True)
    # re-checked here, whatever the slots say (a tracker can be forged): the lookup limit
    # and the buyer's ownership (the verification record: ``unverified_stop``)
    if not lookup_allowed(tracker, order_id):
        say(dispatcher, "order_lookup_limited")
        return None, reset + offer_human(dispatcher, tracker, LOOKUP_LIMITED)
    try:
        order = await accessible_order(tracker, order_id)
    except BackendError:
        return None, reset + backend_failed(dispatcher, tracker)
    if order is None:
        say(dispatcher, "order_not_found", order_id=order_id)
        return None, reset
    return order, []


def unverified_stop(
    dispatcher: CollectingDispatcher, tracker: Tracker, order_id: str, reset: list[EventType]
) -> list[EventType] | None:
    """For a change: None when this conversation may change ``order_id`` (the server-side
    record), else the events that stop the submit action (a human is offered)."""
    if is_verified(tracker, order_id):
        return None
    log_event("order_change_unverified", tracker, order=mask_order_id(order_id))
    if float(tracker.get_slot(f"{VERIFY_SLOT}_failures") or 0) < MAX_FAILURES:
        say(dispatcher, "verify_needed")
    return reset + offer_human(dispatcher, tracker, "verify_failed")


class OrderFlowSubmit(Action, abc.ABC):
    """The submit action of an order flow: the prelude every flow shares.

    1. the order the form collected, checked again (``order_for_submit``);
    2. ``check``: why the flow cannot go on for this order (a blocker, None: go on);
    3. for a flow that ``changes`` the order, the phone check (issue 11), except for the
       blockers in ``reads`` (answered as a read, e.g. an open case's progress);
    4. a blocker in ``replies`` is answered with its message (the order's values and the
       check's), followed by the offer of a human when it names a handoff reason;
    5. anything else goes to the flow's ``submit``.
    """

    reset: ClassVar[list[EventType]] = []  # the events that clear the form's slots
    changes: ClassVar[bool] = False
    reads: ClassVar[frozenset[str]] = frozenset()
    # blocker -> (message, handoff reason of the human offered after it, or None)
    replies: ClassVar[Mapping[str, tuple[str, str | None]]] = {}

    @abc.abstractmethod
    def name(self) -> str: ...

    async def check(self, order: Order, tracker: Tracker) -> tuple[str | None, dict[str, Any]]:
        """The blocker for ``order`` (None: go on) and the values its reply needs besides
        the order's own. May read the backend (a failure is answered politely)."""
        return None, {}

    @abc.abstractmethod
    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
        """The flow's own work once the order passed the checks."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # ownership / verification, the order's state and the permission are checked
        # here again from the backend and the settings, never taken from the slots
        order, stop = await order_for_submit(dispatcher, tracker, self.reset)
        if order is None:
            return stop
        try:
            blocker, values = await self.check(order, tracker)
        except BackendError:
            return self.reset + backend_failed(dispatcher, tracker)
        if blocker not in self.reads:
            if self.changes:
                unverified = unverified_stop(dispatcher, tracker, order.order_id, self.reset)
                if unverified is not None:
                    return unverified
            if blocker is not None and blocker in self.replies:
                message, reason = self.replies[blocker]
                say(dispatcher, message, **{**order_values(order), **values})
                offered = offer_human(dispatcher, tracker, reason) if reason else []
                return self.reset + offered
        return await self.submit(dispatcher, tracker, order, blocker)
