"""Questions asked in the middle of a form, answered in one message; the form goes on.

``answer_digression`` is called by the forms' validation (actions/forms.py) for a message
that filled no slot. It reuses the answering actions (policies, products, bot challenge)
and keeps their first message only, without buttons: with the form's question that
follows, a turn is never more than two messages. A message it cannot answer gets no
answer here: the form's question, with help, is the reply.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent
from actions.faq import FAQ_RESPONSES, ActionAnswerFaq
from actions.messages import say
from actions.products import ActionProductQuestion

# words that ask for the address to send a return to
RETURN_ADDRESS = re.compile(r"(退|寄|换).{0,6}(地址|寄到哪|寄哪|寄去哪|收件)|寄回.{0,4}哪")
HOURS = re.compile(r"(人工|客服).{0,6}(几点|时间|上班|下班|在线)|几点.{0,4}(上班|下班)")
ORDER_FLOW_INTENTS = {
    "order_status", "urge_shipment", "cancel_order", "change_address", "inform_order_id",
    "return_goods", "refund", "exchange", "quality_issue",
}  # fmt: skip


def _answering_action(intent: str) -> Action | None:
    """The action that answers ``intent`` outside a form (None: nothing to answer)."""
    if intent in FAQ_RESPONSES:
        return ActionAnswerFaq()
    if intent in ("ask_price", "ask_stock", "ask_size", "product_info"):
        return ActionProductQuestion()
    return None


async def answer_digression(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
) -> bool:
    """Answer the latest message in one message when it can be; whether it was answered."""
    intent = latest_intent(tracker) or ""
    text = str(tracker.latest_message.get("text") or "")
    if RETURN_ADDRESS.search(text):
        say(dispatcher, "digression_return_address")
        return True
    if HOURS.search(text):
        say(dispatcher, "digression_service_hours")
        return True
    if intent == "bot_challenge":
        dispatcher.utter_message(response="utter_iamabot")
        return True
    if intent == "thank":
        dispatcher.utter_message(response="utter_thank")
        return True
    if intent == "keyword_reply":  # a merchant's keyword rule: its reply, without buttons
        from actions.keyword_replies import ActionKeywordReply

        inner = CollectingDispatcher()
        await ActionKeywordReply().run(inner, tracker, domain)
        kept = {
            k: v for k, v in (inner.messages or [{}])[0].items() if k in ("text", "image") and v
        }
        if kept:
            dispatcher.utter_message(**kept, keyword_rule=inner.messages[0].get("keyword_rule"))
        return bool(kept)
    if intent in ORDER_FLOW_INTENTS or intent == "greet" or "订单号" in text:
        return False  # the order number is what is needed: the question with help says so
    action = _answering_action(intent)
    if action is None:
        return False
    inner = CollectingDispatcher()
    try:
        await action.run(inner, tracker, domain)
    except Exception:  # noqa: BLE001 - an answer that failed must not break the form
        return False
    first = _first_plain(inner.messages)
    if first is None:
        return False
    dispatcher.utter_message(**first)
    return True


def _first_plain(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first message, without buttons (a question with buttons, such as "which
    product?", is not an answer)."""
    for message in messages:
        if message.get("buttons"):
            return None
        kept = {k: message[k] for k in ("text", "response", "image") if message.get(k)}
        if kept:
            return kept
    return None
