"""Lead capture from Rasa's event stream (``xiaoer.worker.events`` calls ``handle_event``).

Every customer message (a ``user`` event) is recorded; its contacts come from the NLU
entities ``phone`` / ``wechat`` (``ContactExtractor``), from ``find_contacts`` on the
text (for messages that bypassed NLU, e.g. button payloads) and from a Douyin lead card
(message metadata ``lead_card``: the card's ``card_data`` ``[{label, value}]``). New or
changed leads are assigned round-robin and queued for the CRM webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from xiaoer.core.clock import BEIJING
from xiaoer.core.senders import is_sandbox
from xiaoer.leads.assign import assign_lead
from xiaoer.leads.crm import get_crm_outbox
from xiaoer.leads.store import CapturedContact, CaptureResult, get_lead_store
from xiaoer.text.contacts import find_contacts

log = logging.getLogger(__name__)

_NAME_LABELS = ("姓名", "名字", "称呼", "昵称", "联系人")
_WECHAT_LABELS = ("微信", "vx", "wx", "wechat")


def _card_fields(card: Any) -> Iterator[tuple[str, str]]:
    """(label, value) pairs of a lead card in any of the shapes seen."""
    if isinstance(card, list):
        for item in card:
            yield from _card_fields(item)
    elif isinstance(card, dict):
        if "label" in card and "value" in card:
            yield str(card.get("label") or ""), str(card.get("value") or "")
            return
        for key, value in card.items():
            if isinstance(value, dict | list):
                yield from _card_fields(value)
            elif key not in ("card_id", "id", "type") and value not in (None, ""):
                yield str(key), str(value)


def contacts_from_card(card: Any) -> tuple[list[CapturedContact], str]:
    contacts: list[CapturedContact] = []
    name = ""
    for label, value in _card_fields(card):
        low = label.lower()
        if any(k in label for k in _NAME_LABELS) and not name:
            name = value.strip()[:40]
            continue
        found = find_contacts(value)
        phones = [c.value for c in found if c.kind == "phone"]
        if any(k in low for k in _WECHAT_LABELS):
            ident = value.strip()
            if phones:
                contacts += [CapturedContact("wechat", p, "lead_card") for p in phones]
            elif 6 <= len(ident) <= 20 and ident[:1].isalpha() and ident.isascii():
                contacts.append(CapturedContact("wechat", ident, "lead_card"))
            continue
        contacts += [CapturedContact("phone", p, "lead_card") for p in phones]
        contacts += [
            CapturedContact("wechat", c.value, "lead_card") for c in found if c.kind == "wechat"
        ]
    return contacts, name


def contacts_from_event(event: dict[str, Any]) -> list[CapturedContact]:
    text = event.get("text") or ""
    entities = (event.get("parse_data") or {}).get("entities") or []
    found = [
        CapturedContact(str(e["entity"]), str(e["value"]))
        for e in entities
        if e.get("entity") in ("phone", "wechat") and e.get("value")
    ]
    if not text.startswith("/"):
        found += [CapturedContact(c.kind, c.value) for c in find_contacts(text)]
    return found


# forms whose answers are someone else's details (the new recipient of an order): a phone
# typed there is not the customer's contact, must not make a lead nor merge customers
RECIPIENT_FORMS = frozenset({"address_form"})
RECIPIENT_INTENTS = frozenset({"change_address"})


def _form_key(sender_id: str) -> str:
    return f"form:{sender_id}"


def handle_event(event: dict[str, Any]) -> CaptureResult | None:
    """Record a ``user`` event; the active form is followed (``active_loop`` events) so that
    recipient details of an address change are not taken for the customer's contacts;
    other events are ignored."""
    sender_id = event.get("sender_id")
    if not sender_id:
        return None
    if event.get("event") == "active_loop":
        name = str(event.get("name") or "")
        get_lead_store().kv_set(_form_key(str(sender_id)), name if name in RECIPIENT_FORMS else "")
        return None
    if event.get("event") != "user":
        return None
    if is_sandbox(str(event["sender_id"])):
        return None  # the merchant's test chat: never a lead
    metadata = event.get("metadata") or {}
    contacts = contacts_from_event(event)
    intent_name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
    if intent_name in RECIPIENT_INTENTS or get_lead_store().kv_get(_form_key(str(sender_id))):
        contacts = []  # a new recipient's phone, not the customer's
    name = str(metadata.get("nickname") or metadata.get("nick_name") or "")[:40]
    card = metadata.get("lead_card")
    if card:
        card_contacts, card_name = contacts_from_card(card)
        contacts += card_contacts
        name = card_name or name
    timestamp = event.get("timestamp")
    at = datetime.fromtimestamp(float(timestamp), BEIJING) if timestamp else None
    intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
    store = get_lead_store()
    result = store.record_message(
        str(event["sender_id"]),
        text=event.get("text") or "",
        intent=intent,
        message_id=str(event.get("message_id") or ""),
        at=at,
        contacts=contacts,
        open_id=str(metadata.get("buyer_id") or "") or None,
        channel=str(event.get("input_channel") or ""),
        name=name,
        lead_card=bool(card),
    )
    if result.lead is None or not result.changed:
        return result
    lead = result.lead
    if lead.assignee_id is None:
        try:
            lead = assign_lead(store, lead)
        except Exception:  # noqa: BLE001 - the agent service must not stop capture
            log.exception("lead %s: assignment failed", lead.id)
    get_crm_outbox().enqueue(lead, result.created)
    log.info(
        "lead %s %s (category %s, score %s)",
        lead.id, "created" if result.created else "updated", lead.category, lead.score,
    )  # fmt: skip
    return CaptureResult(lead, result.created, result.changed, result.new_contacts)
