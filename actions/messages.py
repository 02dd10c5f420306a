"""Messages of custom actions, read from actions/messages.yml (with variations)."""

from __future__ import annotations

import logging
import random
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from xiaoer.learning.variants import METADATA_KEY

logger = logging.getLogger(__name__)

MESSAGES_FILE = Path(__file__).with_name("messages.yml")


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, list[dict[str, Any]]]:
    raw = yaml.safe_load(MESSAGES_FILE.read_text(encoding="utf-8"))["messages"]
    return {key: list(variants) for key, variants in raw.items()}


def placeholders(key: str) -> set[str]:
    names: set[str] = set()
    for variant in catalogue()[key]:
        names.update(f for _, f, _, _ in string.Formatter().parse(variant["text"]) if f)
    return names


def render(key: str, rng: random.Random | None = None, **values: Any) -> dict[str, Any]:
    """One variation of message ``key`` with its placeholders filled. Variations limited
    to a segment or a time of day (``segment`` / ``daypart``, chosen by the reply-variant
    bandit with the tracker, see :func:`say`) are left out here."""
    variations = catalogue()[key]
    plain = [v for v in variations if not v.get("segment") and not v.get("daypart")]
    variant = (rng or random).choice(plain or variations)
    message: dict[str, Any] = {"text": variant["text"].format_map(_Missing(values))}
    if variant.get("buttons"):
        message["buttons"] = [dict(b) for b in variant["buttons"]]
    return message


def _with_facts(values: dict[str, Any]) -> dict[str, Any]:
    """Shop facts (name, hours, policies) are available to every message."""
    from actions.common import shop_facts

    return {**shop_facts(), **values}


def say(
    dispatcher: CollectingDispatcher, key: str, tracker: Tracker | None = None, **values: Any
) -> None:
    """Send one variation of message ``key``. With the ``tracker``, a response whose
    variants are chosen by their outcomes (xiaoer/learning/variants.py) is chosen by the
    bandit, and the bot message carries the choice (``xiaoer_variant``) for the learning
    follower to attribute the customer's reaction."""
    chosen = choose_variant(key, tracker) if tracker is not None else None
    if chosen is None:
        dispatcher.utter_message(**render(key, **_with_facts(values)))
        return
    variant, tag = chosen
    message: dict[str, Any] = {"text": variant.text.format_map(_Missing(_with_facts(values)))}
    if variant.buttons:
        message["buttons"] = [dict(b) for b in variant.buttons]
    dispatcher.utter_message(**message, **{METADATA_KEY: tag})


def choose_variant(key: str, tracker: Tracker) -> tuple[Any, dict[str, str]] | None:
    """The bandit's variant of ``key`` for this customer (None: a plain random variation,
    e.g. a response that is not chosen by outcomes, or the learning store unavailable)."""
    from xiaoer.learning.variants import RESPONSES, choose

    if key not in RESPONSES:
        return None
    try:
        return choose(key, catalogue()[key], str(tracker.sender_id))
    except Exception:  # noqa: BLE001 - the reply must go out whatever the statistics do
        logger.exception("variant choice for %s failed: a random variation instead", key)
        return None


def say_with_buttons(
    dispatcher: CollectingDispatcher, key: str, buttons: list[dict[str, str]], **values: Any
) -> None:
    """Send message ``key`` with extra buttons after its own."""
    message = render(key, **_with_facts(values))
    message["buttons"] = message.get("buttons", []) + buttons
    dispatcher.utter_message(**message)


def sandbox_stop(
    dispatcher: CollectingDispatcher, tracker: Tracker, key: str, **values: Any
) -> bool:
    """In the console's test chat, a flow stops before it changes the shop: message ``key``
    says what would be submitted and that nothing was (True: stopped, the caller submits
    nothing)."""
    from actions.common import log_event
    from xiaoer.core.senders import is_sandbox

    if not is_sandbox(tracker.sender_id):
        return False
    say(dispatcher, key, **values)
    log_event("sandbox_not_submitted", tracker, what=key)
    return True
