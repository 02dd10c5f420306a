"""Policy questions answered from the shop's policy data (xiaoer.yml).

Shipping questions get one sentence per question asked (Xinjiang surcharge, Hong Kong,
SF Express, couriers, where from, when, transit time, free shipping), rendered from the
facts by xiaoer/shop/policies.py; a coupon question about a product says whether the
coupon applies to it; service hours are told with whether agents are online now.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, buyer_id, latest_intent
from actions.followup import answer_arrival
from actions.handoff import hand_over
from actions.leads import offer_contact
from actions.messages import say
from actions.product_focus import product_in_focus
from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.settings import allowed, handoff_settings
from xiaoer.shop.backend import BackendError
from xiaoer.shop.policies import coupon_for_price, shipping_answers

FAQ_RESPONSES = {
    "return_policy": "faq_return_policy",
    "ask_shipping": "faq_shipping",
    "shipping_time": "faq_shipping_time",
    "ask_invoice": "faq_invoice",
    "ask_discount": "faq_discount",
}


async def is_returning_buyer(tracker: Tracker) -> bool:
    buyer = buyer_id(tracker)
    if not buyer:
        return False
    try:
        found = await backend().get_buyer(buyer)
    except BackendError:
        return False
    return bool(found and found.returning)


def say_shipping(dispatcher: CollectingDispatcher, text: str, intent: str) -> None:
    """One sentence per shipping question in ``text``; the general answer otherwise."""
    answers = shipping_answers(backend().policies(), text)
    if not answers:
        say(dispatcher, FAQ_RESPONSES[intent])
        return
    for key, values in answers:
        say(dispatcher, key, **values)


async def say_coupon_for_product(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """The everyone-coupon for the product in focus: applies, or how much is missing."""
    product_id = product_in_focus(tracker)
    if not product_id:
        return False
    product = await backend().get_product(product_id)
    if product is None:
        return False
    values = coupon_for_price(backend().policies().coupon_everyone, product.price)
    if values is None:
        return False
    key = "coupon_applies" if "after_coupon" in values else "coupon_not_reached"
    say(dispatcher, key, product_name=product.name, price=f"{product.price}", **values)
    return True


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker) or ""
        response = FAQ_RESPONSES.get(intent)
        if response is None:
            say(dispatcher, "please_rephrase")
            return []
        if intent in {"ask_shipping", "shipping_time"}:
            arrival = await answer_arrival(dispatcher, tracker)  # about the order just shown
            if arrival is not None:
                return arrival
            say_shipping(dispatcher, tracker.latest_message.get("text") or "", intent)
            return offer_contact(dispatcher, tracker)
        returning = intent == "ask_discount" and await is_returning_buyer(tracker)
        if returning and not allowed("give_coupons"):
            say(dispatcher, response)
            return hand_over(
                dispatcher,
                tracker,
                "coupon",
                "您的老客户身份",
                "老客户询问优惠码（店铺设置：优惠码需人工发放）",
            )
        if intent == "ask_discount":
            try:
                about_product = await say_coupon_for_product(dispatcher, tracker)
            except BackendError:
                about_product = False
            if about_product:
                if returning:
                    say(dispatcher, "coupon_returning_code")
                return offer_contact(dispatcher, tracker)
        say(dispatcher, "faq_discount_returning" if returning else response, tracker=tracker)
        return offer_contact(dispatcher, tracker)


class ActionServiceHours(Action):
    """ "人工客服几点上班": the hours and whether agents are online now (Beijing time).
    A question about the hours, never a handoff."""

    def name(self) -> str:
        return "action_service_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        settings = handoff_settings()  # the shop's hours, as the admin console may set them
        now = now_beijing().astimezone(BEIJING)
        values = {"service_hours": settings.hours_text, "now_time": f"{now:%H:%M}"}
        if settings.in_hours(now):
            say(dispatcher, "service_hours_open", **values)
        else:
            say(dispatcher, "service_hours_closed", back_at=settings.next_start(now), **values)
        return []
