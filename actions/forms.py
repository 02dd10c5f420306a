"""Shared form-validation bases.

* ``XiaoerFormValidationAction`` counts failures per slot (``<slot>_failures``) and stops
  asking for a slot after MAX_FAILURES bad answers.
* ``OrderFormValidation`` validates ``order_id`` for every order flow: normalised, looked
  up in the shop backend, unknown ids get one more chance. A flow may decide from the
  order that it cannot go on (``blocker``): the slot ``flow_blocker`` is set and the form
  stops asking, so that its submit action explains why.
* Order access (issue 11, ``actions/order_access.py``): a known buyer (Douyin) only
  reaches their own orders, others look unknown; an anonymous customer (REST) must give
  the last 4 digits of the recipient's phone (``verify_phone_tail``) in every form that
  changes an order, and the submit actions (``actions/order_flow.py``) check the
  server-side record of that, not the slot.
"""

from __future__ import annotations

import abc
import re
import unicodedata
from collections import OrderedDict
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.digressions import HOURS, answer_digression
from actions.handoff import BACKEND_ERROR, keyword_of
from actions.messages import say
from actions.order_access import (
    FOCUS_ORDER_SLOT,
    LOOKUP_LIMITED,
    MAX_FAILURES,
    ORDER_NOT_FOUND,
    VERIFY_SLOT,
    accessible_order,
    focus_is_recent,
    is_verified,
    lookup_allowed,
    verification_locked,
)
from actions.questions import ask_actions, asked_in_this_message, refused_this_turn
from xiaoer.shop.access import get_order_check_store, phone_tail_matches
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Order, OrderStatus
from xiaoer.text.contacts import recipient_in
from xiaoer.text.parsing import mask_order_id, parse_order_id

# "就刚才那个单", "上面那个订单", "同一个单", "这单": the order the conversation was about
EARLIER_ORDER = re.compile(
    r"(刚才|刚刚|上面|前面|之前|上一|同一|这|那)(个|笔)?的?(订单|单子|单)(?![号品])"
)


def form_reset(*slots: str, failures: tuple[str, ...] = ()) -> list[EventType]:
    """Events that clear an order flow's slots once its submit action is done.

    ``focus_order_id`` is kept: follow-ups ("能催一下吗") go on with the same order."""
    # the verification slot is cleared too; the verification itself stays on record
    cleared = ("order_id", "flow_blocker", "verify_phone_tail", *slots)
    counted = ("order_id", "verify_phone_tail", *failures)
    return (
        [SlotSet(s, None) for s in cleared]
        + [SlotSet(f"{s}_failures", 0.0) for s in counted]
        + [SlotSet(MISSES_SLOT, 0.0)]
    )


def backend_stop(slot: str = "order_id") -> dict[str, Any]:
    """The slots that stop an order form when the shop backend failed or timed out: the
    form asks nothing more and says nothing; its submit action answers the failure in one
    message that offers a human (``order_for_submit``). Before, the validation said
    "busy" and the submit, seeing no order, added "I did not understand" (issue 19)."""
    return {slot: None, "flow_blocker": BACKEND_ERROR}


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
    """Validation of ``order_id`` shared by all order flows.

    Also the forms' unhappy paths (see ``off_topic_events``): a message that fills no slot
    is answered here when it can be, and counted, instead of rejecting the form."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if activating(tracker) and first_time(tracker):
            apologise_if_upset(dispatcher, tracker)  # before the form's first question
        events = await super().run(dispatcher, tracker, domain)
        return events + await off_topic_events(dispatcher, tracker, domain, events)

    # the order statuses for which the order in focus starts this flow (None: any; the
    # flow's answer then explains, e.g. "already shipped, no need to urge")
    focus_statuses: set[OrderStatus] | None = None

    async def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """When the form starts without a number, the order in focus (the one just shown);
        and when the customer answers the question for the number with "就刚才那个单", the
        order in focus however long ago it was shown (validated as if its number was sent)."""
        if tracker.get_slot("order_id"):
            return {}
        if any(e.get("entity") == "order_id" for e in tracker.latest_message.get("entities") or []):
            return {}
        focus = tracker.get_slot(FOCUS_ORDER_SLOT)
        if not focus:
            return {}
        asked = activating(tracker) or tracker.get_slot("requested_slot") == "order_id"
        if asked and EARLIER_ORDER.search(tracker.latest_message.get("text") or ""):
            return {"order_id": focus}
        if not activating(tracker) or not focus_is_recent(tracker):
            return {}
        if self.focus_statuses is not None:  # only an order this flow can work on
            try:
                order = await accessible_order(tracker, str(focus))
            except BackendError:
                return {}
            if order is None or order.status not in self.focus_statuses:
                return {}
        return {"order_id": focus}

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
            return ["order_id"] if tracker.get_slot("order_id") else []
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if "order_id" not in slots:  # the id failed twice: stop the whole form
            return []
        # --- order verification (issue 11) ---
        if VERIFY_SLOT in domain_slots:
            if self.failures(tracker, VERIFY_SLOT) >= MAX_FAILURES:
                return []  # wrong twice: nothing more is asked, the submit offers a human
            if not tracker.get_slot("order_id") or is_verified(
                tracker, tracker.get_slot("order_id")
            ):
                slots = [s for s in slots if s != VERIFY_SLOT]
            elif VERIFY_SLOT in slots:  # nothing else is asked before the check
                return slots[: slots.index(VERIFY_SLOT) + 1]
        # --- end order verification ---
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
        if not lookup_allowed(tracker, order_id):
            say(dispatcher, "order_lookup_limited")
            return {
                "order_id": None,
                "order_id_failures": float(MAX_FAILURES),
                "flow_blocker": LOOKUP_LIMITED,
            }
        try:
            order = await accessible_order(tracker, order_id)
        except BackendError:
            return backend_stop()
        if order is None:  # unknown, or another buyer's: the same answer
            log_event("order_not_found", tracker, order=mask_order_id(order_id))
            say(dispatcher, "order_not_found", order_id=order_id)
            if tracker.get_slot("handoff_reason") == ORDER_NOT_FOUND:
                # a human was offered after earlier unknown ids: with this one, again (the
                # form stops and its submit action offers it), not only the question
                return {"order_id": None, "order_id_failures": float(MAX_FAILURES)}
            return self.fail(tracker, "order_id")
        changes = VERIFY_SLOT in domain_slots_of(domain, self.form_name())
        if changes and not is_verified(tracker, order_id):
            # nothing about the order is said before the customer is verified
            if verification_locked(tracker, order_id):
                say(dispatcher, "verify_locked")
                return {"order_id": order_id, f"{VERIFY_SLOT}_failures": float(MAX_FAILURES)}
            return {"order_id": order_id, "flow_blocker": None}
        try:
            reason = await self.blocker(order, tracker)
        except BackendError:
            return backend_stop()
        found: dict[str, Any] = {"order_id": order_id, "flow_blocker": reason}
        found[FOCUS_ORDER_SLOT] = order_id
        if tracker.get_slot("handoff_reason") == "order_id_missing":
            found.update(handoff_offered=False, handoff_reason=None)  # the number came after all
        return found

    async def validate_verify_phone_tail(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        """The last 4 digits of the recipient's phone, checked against the shop backend.

        A correct answer is recorded server-side (what the submit actions trust); wrong
        answers are counted there too, so that a reset slot gives no extra tries."""
        order_id = tracker.get_slot("order_id") or ""
        if not has_digits(slot_value):
            # a question ("还要几天啊", "为啥要这个") is no try: it is answered as a
            # digression (off_topic_events) and the tail is asked again with the reason
            return {VERIFY_SLOT: None}
        recipient = recipient_in(str(slot_value))
        if recipient is not None:
            # the new details sent before the check ("改成 浙江省… 李四 139…"): no try;
            # an address change keeps them for after the check
            kept: dict[str, Any] = {VERIFY_SLOT: None}
            if {"new_name", "new_phone", "new_address"} <= set(
                domain_slots_of(domain, self.form_name())
            ):
                kept.update(zip(("new_name", "new_phone", "new_address"), recipient, strict=True))
                say(dispatcher, "address_details_kept")
            return kept
        stop = {VERIFY_SLOT: None, f"{VERIFY_SLOT}_failures": float(MAX_FAILURES)}
        if verification_locked(tracker, order_id):
            say(dispatcher, "verify_locked")
            return stop
        try:
            order = await accessible_order(tracker, order_id)
        except BackendError:
            return backend_stop(VERIFY_SLOT)
        if order is None:
            say(dispatcher, "order_not_found", order_id=order_id)
            return stop
        store = get_order_check_store()
        phone = order.recipient.phone if order.recipient else None
        if phone_tail_matches(phone, slot_value):
            store.record_verified(tracker.sender_id, order_id)
            log_event("order_verified", tracker, order=mask_order_id(order_id))
            try:
                reason = await self.blocker(order, tracker)
            except BackendError:
                return backend_stop(VERIFY_SLOT)
            say(dispatcher, "verify_ok")
            return {VERIFY_SLOT: "verified", "flow_blocker": reason}
        store.record_failure(tracker.sender_id, order_id)
        log_event("order_verify_failed", tracker, order=mask_order_id(order_id))
        tries = max(
            self.failures(tracker, VERIFY_SLOT) + 1, store.failures(order_id, tracker.sender_id)
        )
        if tries >= MAX_FAILURES:
            say(dispatcher, "verify_failed")
            return stop
        say(dispatcher, "verify_wrong")
        return self.fail(tracker, VERIFY_SLOT)


# --- issue 12: unhappy paths in forms (a message that fills no slot) -------------------
# Rasa rejects a form when the message fills no slot, then lets the policies guess; with a
# fallback that did not end the turn this became a storm of "didn't understand" until the
# circuit breaker. Now the form's validation handles the message itself: it answers what
# it can (one message), counts the miss in ``form_misses`` (a SlotSet, so the form is not
# rejected) and the form's question is asked again by the ask action, with help on the
# first miss and a human offered on the second (``action_ask_order_id``). Only leaving the
# form is left to the rules (data/rules/order_flows.yml): deny, a human, a complaint, and
# the yes/no to a human offered.

MISSES_SLOT = "form_misses"
LEAVE_INTENTS = {"deny", "request_human", "complain"}
OFFER_ANSWERS = {"affirm", "deny"}
LEAVE_CONFIDENCE = 0.8  # below it, a "leave" intent is treated as one more miss
CANNOT_FIND = re.compile(r"找不到|没找到|不知道(在)?哪|在哪(里)?(找|看)|看不到|不会找")


def activating(tracker: Tracker) -> bool:
    """Whether the form is starting: nothing was asked yet (Rasa already shows the form as
    the active loop while it activates)."""
    return not tracker.get_slot("requested_slot")


def after_user_message(tracker: Tracker) -> bool:
    """Whether the form runs on a new customer message (not when coming back to it after
    another action). Rasa's validation tracker ends with the form's own ActionExecuted."""
    form = tracker.active_loop.get("name")
    skipped_own = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            return True
        if kind == "action":
            if event.get("name") == form and not skipped_own:
                skipped_own = True
                continue
            return bool(event.get("name") == "action_listen")
    return False


def asks_service_hours(tracker: Tracker) -> bool:
    return bool(HOURS.search(str(tracker.latest_message.get("text") or "")))


def wants_to_leave(tracker: Tracker) -> bool:
    """The message leaves the form or answers a human offer: the rules handle it."""
    intent = latest_intent(tracker)
    if keyword_of(tracker):
        return True
    confidence = float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)
    if intent != "complain" and confidence < LEAVE_CONFIDENCE:
        return False  # leaving on a guess ("asdfgh" read as yes) is worse than asking again
    if intent == "request_human" and asks_service_hours(tracker):
        return False  # "人工客服几点上班" asks when, not for a human now
    if intent == "deny" and CANNOT_FIND.search(str(tracker.latest_message.get("text") or "")):
        return False  # "找不到" needs help finding the number, it does not leave
    if intent in LEAVE_INTENTS:
        return True
    return bool(tracker.get_slot("handoff_offered")) and intent in OFFER_ANSWERS


def _handled(events: list[EventType], requested: str) -> bool:
    """Whether the validation used the message: the requested slot got a value, or a bad
    value was counted (the validation then said what was wrong)."""
    for e in events:
        if e.get("event") != "slot":
            continue
        name = str(e.get("name") or "")
        if (name == requested and e.get("value") is not None) or name.endswith("_failures"):
            return True
    return False


async def off_topic_events(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    domain: DomainDict,
    events: list[EventType],
) -> list[EventType]:
    """Answer and count a message that filled nothing while the form waits for a slot."""
    requested = tracker.get_slot("requested_slot")
    if not requested or not tracker.active_loop.get("name") or not after_user_message(tracker):
        return []
    if _handled(events, requested):
        return [SlotSet(MISSES_SLOT, 0.0)] if tracker.get_slot(MISSES_SLOT) else []
    if wants_to_leave(tracker):
        return []
    await answer_digression(dispatcher, tracker, domain)
    if asked_in_this_message(tracker):
        return []  # the question came in this same reply: the customer could not answer
    misses = int(tracker.get_slot(MISSES_SLOT) or 0) + 1
    log_event("form_miss", tracker, form=tracker.active_loop.get("name"), slot=requested)
    return [SlotSet(MISSES_SLOT, float(misses))]


# --- issue 12: an upset customer hears an apology before the form's first question -----
UPSET = re.compile(
    r"气死|气人|生气|火大|破东西|什么破|垃圾|太差|差评|坑人|骗子|坏的|坏了|烂了|碎了|退钱|"
    r"[!！]{2,}|什么玩意|无语|恶心"
)
_apologised: OrderedDict[str, None] = OrderedDict()  # message ids (the form validates twice)


def first_time(tracker: Tracker, hook: str = "apology") -> bool:
    """False when this message was already seen by this hook (activation validates twice)."""
    key = f"{hook}:{tracker.sender_id}:{tracker.latest_message.get('message_id') or ''}"
    if key in _apologised:
        return False
    _apologised[key] = None
    while len(_apologised) > 1000:
        _apologised.popitem(last=False)
    return True


def apologise_if_upset(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    text = str(tracker.latest_message.get("text") or "")
    if latest_intent(tracker) == "complain" or not UPSET.search(text):
        return  # a complaint gets its apology from the rules
    say(dispatcher, "apology_first")


# --- order access and verification (issue 11) -------------------------------------------------


def domain_slots_of(domain: DomainDict, form: str) -> list[str]:
    """The required slots of ``form`` as the domain lists them."""
    return list(((domain.get("forms") or {}).get(form) or {}).get("required_slots") or [])


_CN_NUMERALS = frozenset("零〇一幺二两三四五六七八九")


def has_digits(value: Any) -> bool:
    """Whether an answer to the phone-tail question holds digits (full-width too, or four
    Chinese numerals such as 八八八八): only such an answer counts as a try."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    return any(c.isascii() and c.isdigit() for c in text) or (
        sum(c in _CN_NUMERALS for c in text) >= 4
    )


async def ask_verify_phone_tail(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType]:
    """The phone-tail question; after a message without digits (a question the form
    answered, if it could), once more with the reason why it is needed."""
    if refused_this_turn(tracker, VERIFY_SLOT):
        return []  # "没有对上…请…再发一次" was just said: no second question
    misses = int(tracker.get_slot(MISSES_SLOT) or 0)
    order_id = tracker.get_slot("order_id")
    if misses:
        say(dispatcher, "verify_ask_phone_tail_again")
    elif order_id:  # which order: it may come from the conversation, not this message
        say(dispatcher, "verify_ask_phone_tail_order", order_id=str(order_id))
    else:
        say(dispatcher, "verify_ask_phone_tail")
    return []


ASKS = ask_actions(__name__, {"action_ask_verify_phone_tail": ask_verify_phone_tail})
ActionAskVerifyPhoneTail = ASKS["action_ask_verify_phone_tail"]
# --- end order access and verification ---------------------------------------------------------
