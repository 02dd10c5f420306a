"""索电 (asking for a contact) and the one-time thanks for a contact: Rasa's side.

The rules (when to ask, when to thank and how) are ``xiaoer/leads/asking.py``'s; these
helpers read the tracker, call them and say the reply.

* ``offer_contact``: called after an answer to a purchase question (price, stock, size,
  discount; wholesale has its own action): one 索电 message when allowed, or the thanks
  for a contact that came with the question.
* ``action_thank_contact`` (rule on ``provide_contact``; also used by the fallback and
  the wholesale answer when a message carries a contact): thanks once (slot
  ``contact_thanked``). The contact itself is stored by the lead capture
  (``xiaoer.leads.capture``, from the event stream), not here.
* ``action_wholesale``: wholesale / cooperation questions: hands the customer to the
  wholesale advisers by asking for a contact (or thanks, when one came with the message).
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import latest_intent, log_event
from actions.messages import say
from actions.product_focus import restock_subject
from xiaoer.leads.asking import (
    RESTOCK_NOTED,
    THANKS,
    AskingState,
    Reply,
    after_answer,
    asks_restock_notice,
    contacts_in,
    thanks,
)


def asking_state(tracker: Tracker) -> AskingState:
    """The conversation as the asking rules read it."""
    return AskingState(
        sender_id=tracker.sender_id,
        intent=latest_intent(tracker),
        text=str(tracker.latest_message.get("text") or ""),
        contacts=contacts_in(tracker.latest_message),
        events=tracker.events,
        offered=bool(tracker.get_slot("contact_offered")),
        thanked=bool(tracker.get_slot("contact_thanked")),
        in_form=bool((tracker.active_loop or {}).get("name")),
        measures_known=tracker.get_slot("height_cm") is not None,
    )


def reply(
    dispatcher: CollectingDispatcher, tracker: Tracker, found: Reply | None, **values: str
) -> list[EventType]:
    """Say ``found`` and return its slot event."""
    if found is None:
        return []
    if found.text:
        dispatcher.utter_message(text=found.text)
    else:
        say(dispatcher, found.message, tracker=tracker, **values)
    if found.log:
        log_event(found.log, tracker, **found.fields)
    return [SlotSet(found.mark, True)] if found.mark else []


def offer_contact(
    dispatcher: CollectingDispatcher, tracker: Tracker, restock: dict[str, str] | None = None
) -> list[EventType]:
    """One 索电 message after a purchase answer, when allowed (see xiaoer/leads/asking.py).

    ``restock``: the product and variant (``product_name``, ``variant``) a contact in the
    message is left for, so that the thanks confirms the restock notice."""
    found = after_answer(asking_state(tracker), restock_known=bool(restock))
    if found is not None and found.message == RESTOCK_NOTED:
        return reply(dispatcher, tracker, found, **(restock or {}))
    return reply(dispatcher, tracker, found)


def thank_contact(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    first_key: str = THANKS,
    **values: str,
) -> list[EventType]:
    """Thanks for the contact(s) in the latest message (see xiaoer/leads/asking.py)."""
    return reply(dispatcher, tracker, thanks(asking_state(tracker), first_key), **values)


class ActionThankContact(Action):
    def name(self) -> str:
        return "action_thank_contact"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if not contacts_in(tracker.latest_message):
            say(dispatcher, "contact_not_found")
            return []
        if asks_restock_notice(str(tracker.latest_message.get("text") or "")):
            subject = await restock_subject(tracker)
            if subject is not None:
                return thank_contact(dispatcher, tracker, RESTOCK_NOTED, **subject)
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
