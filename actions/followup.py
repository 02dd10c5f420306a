"""Follow-ups that only make sense with the conversation's context (issue 12).

After an order's status was shown, "那怎么还没到" is about that order; after a stock or
price question, "那黑色呢" is the same question about the same product in black. NLU
reads such short messages with low confidence (``nlu_fallback``); before saying "didn't
understand", the fallback asks ``answer_follow_up`` whether the order or product in focus
(slots ``focus_order_id`` / ``focus_product``, which survive the end of a flow) answers it.
"""

from __future__ import annotations

import re

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, log_event
from actions.handoff import backend_failed, offer_human
from actions.messages import say
from actions.order_access import (
    ORDER_NOT_FOUND,
    accessible_order,
    focus_is_recent,
    is_public,
    lookup_allowed,
)
from actions.order_replies import order_reply, public_reply, say_case_if_asked
from actions.product_focus import only_product_named, pending_question
from actions.products import ActionProductQuestion
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import OrderStatus
from xiaoer.text.parsing import bare_size, mask_order_id

FOCUS_PRODUCT_SLOT = "focus_product"
FOCUS_SLOTS = ("focus_order_id", FOCUS_PRODUCT_SLOT)  # set by an answered follow-up
# "还没到", "到哪了", "怎么还不来", "物流呢": where the order in focus is
WHERE_IS_IT = re.compile(
    r"(还|怎么).{0,3}(没|不)(到|来|发|收到|动)|到哪|在哪了|物流|快递呢|几时到|啥时候到|什么时候到"
)
# "今天能送到不", "明天能到吗": when the order in focus arrives
ARRIVAL = re.compile(
    r"(今天|明天|后天|今晚|几号|哪天|周[一二三四五六日末]).{0,5}(到|送)|能(送)?到(吗|不|么|没)|送到(吗|不|么)"
)
PRODUCT_INTENTS = ("ask_stock", "ask_price", "ask_size", "product_info")


def _entity(tracker: Tracker, name: str) -> str | None:
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == name and entity.get("value"):
            return str(entity["value"])
    return None


PRODUCT_WORDS = (
    ("ask_stock", re.compile(r"有货|有没有|还有吗|库存|缺货|有吗")),
    ("ask_price", re.compile(r"多少钱|价格|几块|多少米|贵|便宜")),
    ("ask_size", re.compile(r"尺码|码数|什么码|多大码|穿.{0,2}码")),
)


def product_intent_in(text: str) -> str:
    """What a message naming a product asks about, from its words (product_info else)."""
    return next((intent for intent, words in PRODUCT_WORDS if words.search(text)), "product_info")


def last_product_intent(tracker: Tracker) -> str | None:
    """The latest product question in the conversation (before this message)."""
    for event in reversed(tracker.events[:-1]):
        if event.get("event") != "user":
            continue
        name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if name in PRODUCT_INTENTS:
            return str(name)
    return None


async def answer_follow_up(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
) -> list[EventType] | None:
    """Events when the message was answered as a follow-up, None when it was not one."""
    text = str(tracker.latest_message.get("text") or "")
    named = _entity(tracker, "order_id")
    if named:  # an order number is an order question even when the words are unclear
        return await _order_follow_up(dispatcher, tracker, named)
    order_id = tracker.get_slot("focus_order_id")
    if order_id and (WHERE_IS_IT.search(text) or ARRIVAL.search(text)):
        return await _order_follow_up(dispatcher, tracker, str(order_id))
    named_product = _entity(tracker, "product")
    product = named_product or tracker.get_slot(FOCUS_PRODUCT_SLOT) or tracker.get_slot("product")
    intent = product_intent_in(text) if named_product else last_product_intent(tracker)
    if named_product and only_product_named(tracker):
        intent = pending_question(tracker) or intent  # "T恤" picked for the size question
    variant = _entity(tracker, "color") or _entity(tracker, "size")
    if bare_size(text):  # "那43呢": the stock of that size
        variant, intent = bare_size(text), "ask_stock"
    if product and intent and (named_product or variant):
        follow = tracker.copy()
        follow.latest_message = {
            **tracker.latest_message,
            "intent": {"name": intent, "confidence": 1.0},
        }
        follow.slots = {**tracker.slots, "product": product}
        events = await ActionProductQuestion().run(dispatcher, follow, domain)
        log_event("follow_up", tracker, kind="product", intent=intent)
        return [*events, SlotSet(FOCUS_PRODUCT_SLOT, product)]
    return None


async def _order_follow_up(
    dispatcher: CollectingDispatcher, tracker: Tracker, order_id: str
) -> list[EventType] | None:
    """The status of ``order_id`` with the same access rules as the order status form
    (lookup limit, a known buyer's own orders only, no amounts for anonymous customers)."""
    if not lookup_allowed(tracker, order_id):
        say(dispatcher, "order_lookup_limited")
        return []
    try:
        order = await accessible_order(tracker, order_id)
    except BackendError:
        return backend_failed(dispatcher, tracker)
    if order is None:
        say(dispatcher, "order_not_found", order_id=order_id)
        if tracker.get_slot("handoff_reason") == ORDER_NOT_FOUND:
            return offer_human(dispatcher, tracker, ORDER_NOT_FOUND)  # offered again
        return []
    if await say_case_if_asked(dispatcher, tracker, order):  # "…退款到哪了"
        return [SlotSet("focus_order_id", order.order_id), SlotSet("order_id", None)]
    response, values = order_reply(order, backend().policies().ship_within_hours)
    if is_public(tracker):
        response, values = public_reply(response, values)
    say(dispatcher, response, **values)
    log_event("follow_up", tracker, kind="order", order=mask_order_id(order_id))
    return [SlotSet("focus_order_id", order.order_id), SlotSet("order_id", None)]


async def answer_arrival(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[EventType] | None:
    """ "今天能送到不" right after an order's status was shown: that order's status, latest
    trace, courier and tracking number instead of the general shipping-time answer (None:
    no such order in focus, or it is not on its way)."""
    order_id = tracker.get_slot("focus_order_id")
    text = str(tracker.latest_message.get("text") or "")
    if not order_id or not focus_is_recent(tracker) or not ARRIVAL.search(text):
        return None
    try:
        order = await accessible_order(tracker, str(order_id))
    except BackendError:
        return None
    if order is None or order.status not in (OrderStatus.PAID, OrderStatus.SHIPPED):
        return None
    events = await _order_follow_up(dispatcher, tracker, str(order_id))
    if events is not None and order.status == OrderStatus.SHIPPED:
        say(dispatcher, "arrival_by_courier")
    return events
