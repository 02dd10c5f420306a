"""Live-room (直播间) words: 怎么拍 / 上车, 扣1, 福袋, 链接在哪 / 几号链接.

The fixed answers are the merchant's (xiaoer.yml ``live_room.replies``, built-in ones
otherwise); which link is which product comes from ``live_room.links``.
"""

from __future__ import annotations

import random

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent, shop_facts
from actions.handoff import backend_failed
from actions.messages import _Missing, say
from actions.product_focus import latest_entity, link_product, links_text
from xiaoer.shop.backend import BackendError
from xiaoer.shop.live_room import live_room, presenting_named

TOPICS = {
    "how_to_buy": "how_to_buy",
    "ask_comment_one": "comment_one",
    "ask_lucky_bag": "lucky_bag",
    "ask_live_link": "link_where",
}


class ActionLiveRoom(Action):
    def name(self) -> str:
        return "action_live_room"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker) or "ask_live_link"
        room = live_room()
        try:
            if intent == "ask_live_link":
                link_no, linked = link_product(tracker)
                text = tracker.latest_message.get("text") or ""
                product_id = latest_entity(tracker, "product") or (
                    room.presenting if presenting_named(text) else None
                )
                if link_no:  # "3号链接是什么"
                    product = await backend().get_product(linked) if linked else None
                    if product is None:
                        say(
                            dispatcher,
                            "live_link_unknown",
                            link_no=link_no,
                            links=await links_text(),
                        )
                        return []
                    say(
                        dispatcher,
                        "live_link_product",
                        link_no=link_no,
                        product_name=product.name,
                        price=f"{product.price}",
                    )
                    return [
                        SlotSet("product", product.product_id),
                        SlotSet("focus_product", product.product_id),
                    ]
                if product_id:  # "几号链接是T恤"
                    product = await backend().get_product(product_id)
                    numbers = room.links_for_product(product_id)
                    if product is not None and numbers:
                        say(
                            dispatcher,
                            "live_product_link",
                            product_name=product.name,
                            link_no="、".join(numbers),
                            price=f"{product.price}",
                        )
                        return [
                            SlotSet("product", product.product_id),
                            SlotSet("focus_product", product.product_id),
                        ]
                    if product is not None:
                        say(dispatcher, "live_product_no_link", product_name=product.name)
                        return []
            links = await links_text()
        except BackendError:
            return backend_failed(dispatcher, tracker, "products")
        template = random.choice(room.reply_variants(TOPICS.get(intent, "link_where")))
        dispatcher.utter_message(
            text=template.format_map(_Missing({**shop_facts(), "links": links}))
        )
        return []
