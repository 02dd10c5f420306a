"""索电 (asking for a contact) and the one-time thanks for a contact.

* ``offer_contact``: called after an answer to a purchase question (price, stock, size,
  discount; wholesale has its own action). When the question came with a contact, it
  thanks for it (once) instead. Otherwise it adds one message that offers something
  worth a contact (restock notice, size advice, a coupon) and asks for a phone or WeChat,
  at most once per conversation (slot ``contact_offered``), never when the customer has
  already given a contact or refused one, never during after-sales trouble or anger,
  never inside a form, and only when ``leads.ask_contact.enabled`` is on.
* ``action_thank_contact`` (rule on ``provide_contact``; also used by the fallback and
  the wholesale answer when a message carries a contact): thanks once (slot
  ``contact_thanked``); a further new contact gets a short acknowledgement, the same one
  again a "noted already". The contact itself is stored by the lead capture
  (``xiaoer.leads.capture``, from the event stream), not here.
* ``action_wholesale``: wholesale / cooperation questions: hands the customer to the
  wholesale advisers by asking for a contact (or thanks, when one came with the message).

Wording: ``actions/messages.yml`` (``ask_contact_<intent>``, ``contact_thanks``...),
overridden by the merchant's ``leads.ask_contact.wording`` / ``thanks`` in xiaoer.yml.
"""

from __future__ import annotations

import random
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.messages import say
from xiaoer.core.config import get_settings

DEFAULT_OFFER_INTENTS = ["ask_price", "ask_stock", "ask_size", "ask_discount", "ask_wholesale"]
# Intents that mean after-sales trouble or anger in this conversation: no 索电 then.
TROUBLE_INTENTS = frozenset(
    {
        "complain", "quality_issue", "refund", "return_goods", "exchange", "urge_shipment",
        "cancel_order", "request_human",
    }
)  # fmt: skip
ANGER = re.compile(r"差评|投诉|举报|12315|垃圾|骗子|坑人|太差|气死|滚|退钱|无语|恶心")
REFUSAL = re.compile(
    r"(?:不|别|没必要|不用)(?:要|想|方便|必要|用)?(?:留|给|加|打|发)(?:你|我)?"
    r"(?:的)?(?:电话|手机|号码|微信|联系方式|vx|v信)"
    r"|(?:电话|手机|号码|微信|联系方式)(?:就)?(?:不|别)(?:留|给|加|打)了?"
)


def settings() -> dict[str, Any]:
    return get_settings().section("leads").get("ask_contact") or {}


def contacts_in(event_or_message: dict[str, Any]) -> list[tuple[str, str]]:
    parse = event_or_message.get("parse_data") or event_or_message
    return [
        (str(e["entity"]), str(e["value"]))
        for e in parse.get("entities") or []
        if e.get("entity") in ("phone", "wechat") and e.get("value")
    ]


def _session_user_events(tracker: Tracker) -> list[dict[str, Any]]:
    """User events of the current session, oldest first."""
    events: list[dict[str, Any]] = []
    for event in tracker.events:
        if event.get("event") == "session_started":
            events = []
        elif event.get("event") == "user":
            events.append(event)
    return events


def _intent(event: dict[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def refused(tracker: Tracker) -> bool:
    """The customer declined a contact: said no right after the offer, or said so."""
    offered = False
    for event in tracker.events:
        kind = event.get("event")
        if kind == "slot" and event.get("name") == "contact_offered" and event.get("value"):
            offered = True
            continue
        if kind != "user":
            continue
        if REFUSAL.search(event.get("text") or ""):
            return True
        if offered and _intent(event) == "deny":
            return True
        offered = False
    return False


def upset(tracker: Tracker) -> bool:
    for event in _session_user_events(tracker):
        if _intent(event) in TROUBLE_INTENTS or ANGER.search(event.get("text") or ""):
            return True
    return False


def contact_known(tracker: Tracker) -> bool:
    if any(contacts_in(e) for e in tracker.events if e.get("event") == "user"):
        return True
    from xiaoer.leads import get_lead_store

    try:
        return bool(get_lead_store().contacts_for(tracker.sender_id))
    except Exception:  # noqa: BLE001 - the lead store must not break an answer
        return False


def _custom_text(key: str, intent: str | None = None) -> str | None:
    """The merchant's own wording from xiaoer.yml, if any (a string or a list)."""
    conf = settings()
    value = (conf.get("wording") or {}).get(intent) if intent else conf.get(key)
    if isinstance(value, list):
        value = random.choice(value) if value else None
    return str(value) if value else None


RESTOCK_ASK = re.compile(r"到货|补货|有货|上货").pattern + r"|通知我|提醒我"


def asks_restock_notice(tracker: Tracker) -> bool:
    """ "到货能通知我吗 139…": the contact is left for a restock notice."""
    return bool(re.search(RESTOCK_ASK, str(tracker.latest_message.get("text") or "")))


def offer_contact(
    dispatcher: CollectingDispatcher, tracker: Tracker, restock: dict[str, str] | None = None
) -> list[EventType]:
    """One 索电 message after a purchase answer, when allowed (see module docstring).

    ``restock``: the product and variant (``product_name``, ``variant``) a contact in the
    message is left for, so that the thanks confirms the restock notice."""
    conf = settings()
    intent = latest_intent(tracker)
    if contacts_in(tracker.latest_message):  # "多少钱，电话139…": thank instead of asking
        if restock and asks_restock_notice(tracker):
            return thank_contact(dispatcher, tracker, "restock_noted", **restock)
        return [] if tracker.get_slot("contact_thanked") else thank_contact(dispatcher, tracker)
    if not conf.get("enabled", True):
        return []
    if intent not in (conf.get("after_intents") or DEFAULT_OFFER_INTENTS):
        return []
    if tracker.get_slot("contact_offered") or (tracker.active_loop or {}).get("name"):
        return []
    if intent == "ask_size" and tracker.get_slot("height_cm") is None:
        return []  # the answer asked for height and weight: one question at a time
    if refused(tracker) or upset(tracker):
        return []
    if contact_known(tracker):
        return []
    text = _custom_text("wording", intent)
    if text:
        dispatcher.utter_message(text=text)
    else:
        say(dispatcher, f"ask_contact_{intent}")
    log_event("contact_offered", tracker, intent=intent)
    return [SlotSet("contact_offered", True)]


def thank_contact(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    first_key: str = "contact_thanks",
    **values: str,
) -> list[EventType]:
    """Thanks for the contact(s) in the latest message: in full once per conversation (a
    restock notice, ``restock_noted``, is always confirmed with what it is for)."""
    now = contacts_in(tracker.latest_message)
    users = [e for e in tracker.events if e.get("event") == "user"]
    earlier = {c for e in users[:-1] for c in contacts_in(e)}  # the latest one is "now"
    if first_key == "restock_noted":
        say(dispatcher, first_key, **values)
        log_event("restock_notice", tracker, kinds=",".join(sorted({k for k, _ in now})))
        return [SlotSet("contact_thanked", True)]
    if now and all(c in earlier for c in now):
        say(dispatcher, "contact_already_noted")
        return []
    if tracker.get_slot("contact_thanked"):
        say(dispatcher, "contact_noted_again")
        return []
    text = _custom_text("thanks") if first_key == "contact_thanks" else None
    if text:
        dispatcher.utter_message(text=text)
    else:
        say(dispatcher, first_key)
    log_event("contact_thanked", tracker, kinds=",".join(sorted({k for k, _ in now})))
    return [SlotSet("contact_thanked", True)]


class ActionThankContact(Action):
    def name(self) -> str:
        return "action_thank_contact"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not contacts_in(tracker.latest_message):
            say(dispatcher, "contact_not_found")
            return []
        if asks_restock_notice(tracker):
            from actions.products import restock_subject

            subject = await restock_subject(tracker)
            if subject is not None:
                return thank_contact(dispatcher, tracker, "restock_noted", **subject)
        return thank_contact(dispatcher, tracker)


class ActionWholesale(Action):
    def name(self) -> str:
        return "action_wholesale"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if contacts_in(tracker.latest_message):
            return thank_contact(dispatcher, tracker, first_key="wholesale_with_contact")
        say(dispatcher, "wholesale_answer")
        return offer_contact(dispatcher, tracker)
