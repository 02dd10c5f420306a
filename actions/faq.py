"""Policy questions answered from the shop's policy data (xiaoer.yml)."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, buyer_id, latest_intent
from actions.handoff import hand_over
from actions.leads import offer_contact
from actions.messages import say
from xiaoer.permissions import allowed
from xiaoer.shop.backend import BackendError

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
        if intent == "ask_discount" and await is_returning_buyer(tracker):
            if not allowed("give_coupons"):
                say(dispatcher, response)
                return hand_over(
                    dispatcher,
                    tracker,
                    "coupon",
                    "您的老客户身份",
                    "老客户询问优惠码（店铺设置：优惠码需人工发放）",
                )
            response = "faq_discount_returning"
        say(dispatcher, response)
        return offer_contact(dispatcher, tracker)
