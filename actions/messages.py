"""Messages of custom actions, read from actions/messages.yml (with variations)."""

from __future__ import annotations

import random
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk.executor import CollectingDispatcher

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
    """One variation of message ``key`` with its placeholders filled."""
    variant = (rng or random).choice(catalogue()[key])
    message: dict[str, Any] = {"text": variant["text"].format_map(_Missing(values))}
    if variant.get("buttons"):
        message["buttons"] = [dict(b) for b in variant["buttons"]]
    return message


def _with_facts(values: dict[str, Any]) -> dict[str, Any]:
    """Shop facts (name, hours, policies) are available to every message."""
    from actions.common import shop_facts

    return {**shop_facts(), **values}


def say(dispatcher: CollectingDispatcher, key: str, **values: Any) -> None:
    """Send one variation of message ``key``."""
    dispatcher.utter_message(**render(key, **_with_facts(values)))


def say_with_buttons(
    dispatcher: CollectingDispatcher, key: str, buttons: list[dict[str, str]], **values: Any
) -> None:
    """Send message ``key`` with extra buttons after its own."""
    message = render(key, **_with_facts(values))
    message["buttons"] = message.get("buttons", []) + buttons
    dispatcher.utter_message(**message)
