"""Which orders a conversation may see and change (issue 11, xiaoer/shop/access.py).

A known buyer (Douyin) only reaches their own orders, others look unknown; an anonymous
customer (REST) must give the last 4 digits of the recipient's phone before an order is
changed, and what the actions trust is the server-side record of that check, not a slot.
Also the order "in focus" (the one just shown), which follow-ups and new flows go on with.
"""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.common import backend, buyer_id, channel_security
from xiaoer.shop.access import VERIFY_PHONE_TAIL, get_order_check_store, security_settings
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order

MAX_FAILURES = 2  # bad answers for a slot before the form stops asking for it
ORDER_NOT_FOUND = "order_not_found"  # handoff reason: unknown order ids
FOCUS_ORDER_SLOT = "focus_order_id"
FOCUS_TURNS = 3  # a follow-up refers to the order in focus for this many messages
VERIFY_SLOT = "verify_phone_tail"
LOOKUP_LIMITED = "lookup_limited"


def focus_is_recent(tracker: Tracker) -> bool:
    """Whether the order in focus was named in the latest few customer messages (an older
    one is not what a new request is about: the customer is asked, or picks)."""
    messages = 0
    for event in reversed(tracker.events):
        if event.get("event") == "slot" and event.get("name") == FOCUS_ORDER_SLOT:
            return messages <= FOCUS_TURNS
        if event.get("event") == "user":
            messages += 1
    return False


async def accessible_order(tracker: Tracker, order_id: str) -> Order | None:
    """The order, if this conversation may see it: a known buyer only sees their own
    orders (another buyer's is ``None``, exactly like an unknown id)."""
    if not order_id:
        return None
    order = await backend().get_order(order_id)
    if order is None:
        return None
    buyer = buyer_id(tracker)
    if buyer is not None and order.buyer_id != buyer:
        return None
    return order


def is_public(tracker: Tracker) -> bool:
    """Whether the customer is anonymous (replies leave out names, phones and amounts)."""
    return buyer_id(tracker) is None


def needs_verification(tracker: Tracker) -> bool:
    return is_public(tracker) and channel_security(tracker).verify_changes == VERIFY_PHONE_TAIL


def is_verified(tracker: Tracker, order_id: str) -> bool:
    """Whether this conversation may change ``order_id``: a known buyer (whose ownership
    ``accessible_order`` checks), or the server-side record of a correct phone check."""
    if not needs_verification(tracker):
        return True
    minutes = security_settings().verification_minutes
    return get_order_check_store().is_verified(tracker.sender_id, order_id, minutes)


def verification_locked(tracker: Tracker, order_id: str) -> bool:
    """Too many wrong answers for this order (this conversation, or anyone) in the hour."""
    store = get_order_check_store()
    per_order = security_settings().max_verify_failures_per_order
    return (
        store.failures(order_id, tracker.sender_id) >= MAX_FAILURES
        or store.failures(order_id) >= per_order
    )


def lookup_allowed(tracker: Tracker, order_id: str) -> bool:
    """Records the lookup; False when the conversation looked up too many distinct ids."""
    limit = channel_security(tracker).max_order_lookups_per_hour
    return get_order_check_store().lookup_allowed(tracker.sender_id, order_id, limit)


async def current_order(tracker: Tracker) -> Order | None:
    """The order of the running form (None when unknown, not this buyer's or the backend
    failed)."""
    try:
        return await accessible_order(tracker, tracker.get_slot("order_id") or "")
    except BackendError:
        return None
