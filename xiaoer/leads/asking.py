"""索电: when the assistant asks a customer for a contact, and how it thanks for one.

* After an answer to a purchase question (price, stock, size, discount, wholesale), one
  message offers something worth a contact (restock notice, size advice, a coupon) and
  asks for a phone or WeChat: at most once per conversation, never when the customer has
  already given a contact or refused one, never during after-sales trouble or anger,
  never inside a form, never while a size question still waits for the measures, and
  only when ``leads.ask_contact.enabled`` is on (xiaoer.yml).
* A question that comes with a contact ("多少钱，电话139…") is thanked instead (once);
  "到货能通知我吗 139…" is confirmed as a restock notice.
* Thanks: in full once per conversation; a further new contact gets a short
  acknowledgement, the same one again a "noted already".

The conversation is read as Rasa's event dicts (the lead capture reads the same stream);
the contact itself is stored by the lead capture (``xiaoer.leads.capture``), not here.
Wording: ``actions/messages.yml`` (``ask_contact_<intent>``, ``contact_thanks``...),
overridden by the merchant's ``leads.ask_contact.wording`` / ``thanks``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xiaoer.core.config import get_settings
from xiaoer.leads.store import get_lead_store

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
RESTOCK_ASK = re.compile(r"到货|补货|有货|上货").pattern + r"|通知我|提醒我"

Event = Mapping[str, Any]


def ask_contact_settings() -> dict[str, Any]:
    """``leads.ask_contact`` of xiaoer.yml."""
    return get_settings().section("leads").get("ask_contact") or {}


def contacts_in(event_or_message: Event) -> list[tuple[str, str]]:
    """(kind, value) of the phone / WeChat entities of a user event or a parsed message."""
    parse = event_or_message.get("parse_data") or event_or_message
    return [
        (str(e["entity"]), str(e["value"]))
        for e in parse.get("entities") or []
        if e.get("entity") in ("phone", "wechat") and e.get("value")
    ]


def _session_user_events(events: Iterable[Event]) -> list[Event]:
    """User events of the current session, oldest first."""
    found: list[Event] = []
    for event in events:
        if event.get("event") == "session_started":
            found = []
        elif event.get("event") == "user":
            found.append(event)
    return found


def _intent(event: Event) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def refused(events: Iterable[Event]) -> bool:
    """The customer declined a contact: said no right after the offer, or said so."""
    offered = False
    for event in events:
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


def upset(events: Iterable[Event]) -> bool:
    """After-sales trouble or anger in the current session."""
    for event in _session_user_events(events):
        if _intent(event) in TROUBLE_INTENTS or ANGER.search(event.get("text") or ""):
            return True
    return False


def contact_known(sender_id: str, events: Iterable[Event]) -> bool:
    """A contact was given in this conversation, or is on record for it."""
    if any(contacts_in(e) for e in events if e.get("event") == "user"):
        return True
    try:
        return bool(get_lead_store().contacts_for(sender_id))
    except Exception:  # noqa: BLE001 - the lead store must not break an answer
        return False


def custom_text(key: str, intent: str | None = None) -> str | None:
    """The merchant's own wording from xiaoer.yml, if any (a string or a list)."""
    conf = ask_contact_settings()
    value = (conf.get("wording") or {}).get(intent) if intent else conf.get(key)
    if isinstance(value, list):
        value = random.choice(value) if value else None
    return str(value) if value else None


def asks_restock_notice(text: str) -> bool:
    """ "到货能通知我吗 139…": the contact is left for a restock notice."""
    return bool(re.search(RESTOCK_ASK, text))


@dataclass(frozen=True)
class AskingState:
    """What the rules read about the conversation at its latest message."""

    sender_id: str
    intent: str | None
    text: str
    contacts: Sequence[tuple[str, str]]  # in the latest message
    events: Sequence[Event]  # Rasa's event dicts, oldest first
    offered: bool = False  # slot contact_offered
    thanked: bool = False  # slot contact_thanked
    in_form: bool = False
    measures_known: bool = False  # slot height_cm (a size question asked for it)


@dataclass(frozen=True)
class Reply:
    """What to say: a message of messages.yml (``message``), or the merchant's own
    ``text``; ``mark``: the slot (``contact_offered`` / ``contact_thanked``) to set;
    ``log``: the event logged with it (None: nothing), with ``fields`` (no contact)."""

    message: str = ""
    text: str | None = None
    mark: str | None = None
    log: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


THANKS = "contact_thanks"
RESTOCK_NOTED = "restock_noted"


def after_answer(state: AskingState, restock_known: bool = False) -> Reply | None:
    """The one 索电 message after a purchase answer, or the thanks for a contact that came
    with the question (None: nothing to add). ``restock_known``: the product and variant
    the contact may be left for are known (the thanks then confirms the restock notice)."""
    if state.contacts:  # "多少钱，电话139…": thank instead of asking
        if restock_known and asks_restock_notice(state.text):
            return thanks(state, RESTOCK_NOTED)
        return None if state.thanked else thanks(state)
    conf = ask_contact_settings()
    if not conf.get("enabled", True):
        return None
    if state.intent not in (conf.get("after_intents") or DEFAULT_OFFER_INTENTS):
        return None
    if state.offered or state.in_form:
        return None
    if state.intent == "ask_size" and not state.measures_known:
        return None  # the answer asked for height and weight: one question at a time
    if refused(state.events) or upset(state.events):
        return None
    if contact_known(state.sender_id, state.events):
        return None
    return Reply(
        message=f"ask_contact_{state.intent}",
        text=custom_text("wording", state.intent),
        mark="contact_offered",
        log="contact_offered",
        fields={"intent": str(state.intent)},
    )


def thanks(state: AskingState, first_key: str = THANKS) -> Reply:
    """Thanks for the contact(s) in the latest message: in full once per conversation (a
    restock notice, ``restock_noted``, is always confirmed with what it is for)."""
    kinds = {"kinds": ",".join(sorted({kind for kind, _ in state.contacts}))}
    if first_key == RESTOCK_NOTED:
        return Reply(first_key, mark="contact_thanked", log="restock_notice", fields=kinds)
    users = [e for e in state.events if e.get("event") == "user"]
    earlier = {c for e in users[:-1] for c in contacts_in(e)}  # the latest one is "now"
    if state.contacts and all(c in earlier for c in state.contacts):
        return Reply(message="contact_already_noted")
    if state.thanked:
        return Reply(message="contact_noted_again")
    text = custom_text("thanks") if first_key == THANKS else None
    return Reply(first_key, text, mark="contact_thanked", log="contact_thanked", fields=kinds)
