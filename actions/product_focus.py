"""Which product, colour and size a conversation is about.

The product comes from the message (entity; a live-room link number ``link_no``; "主播身上
那件" = the product being presented, xiaoer.yml ``live_room``), from the product card the
customer came from (``metadata.product_id``), or from the product in focus (slots
``focus_product`` / ``product``). Shared by the product answers, the FAQ, the live room,
the follow-ups and the thanks for a restock notice.
"""

from __future__ import annotations

import re

from rasa_sdk import Tracker

from actions.common import backend
from xiaoer.shop.backend import BackendError
from xiaoer.shop.live_room import live_room, presenting_named
from xiaoer.shop.models import Product
from xiaoer.text.parsing import bare_size


def latest_entity(tracker: Tracker, name: str) -> str | None:
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == name:
            return str(entity.get("value"))
    return None


def link_product(tracker: Tracker) -> tuple[str | None, str | None]:
    """(link number asked about, its product id) from the live-room mapping."""
    link_no = latest_entity(tracker, "link_no")
    if link_no:
        return link_no, live_room().product_for_link(link_no)
    return None, None


def product_in_focus(tracker: Tracker) -> str | None:
    metadata = tracker.latest_message.get("metadata") or {}
    link_no, linked = link_product(tracker)
    presenting = (
        live_room().presenting
        if presenting_named(tracker.latest_message.get("text") or "")
        else None
    )
    return (
        linked
        or latest_entity(tracker, "product")
        or presenting
        or (str(metadata["product_id"]) if metadata.get("product_id") else None)
        or tracker.get_slot("focus_product")
        or tracker.get_slot("product")
    )


def size_in_text(text: str, product: Product) -> str | None:
    """One of ``product``'s sizes written in ``text`` as a bare number or letter size."""
    text = text.upper()
    for s in sorted(product.sizes, key=len, reverse=True):
        if re.search(rf"(?<![0-9A-Z]){re.escape(s.upper())}(?![0-9A-Z])", text):
            return s
    return None


def earlier_color(tracker: Tracker, product: Product, recent: int = 4) -> str | None:
    """The colour of this product asked about in the latest few customer messages before
    this one ("跑鞋 白色44有吗" → "那43呢" is white 43)."""
    users = [e for e in tracker.events if e.get("event") == "user"][:-1]
    for event in reversed(users[-recent:]):
        for entity in (event.get("parse_data") or {}).get("entities") or []:
            if entity.get("entity") == "color" and entity.get("value") in product.colors:
                return str(entity["value"])
    return None


def asked_variant(tracker: Tracker, product: Product) -> tuple[str | None, str | None]:
    """Colour and size asked about. A bare number ("蓝色110有吗") or letter size ("有没有L")
    counts when it is one of this product's sizes; a bare size as a follow-up ("那43呢")
    keeps the colour asked about just before."""
    text = tracker.latest_message.get("text") or ""
    color, size = latest_entity(tracker, "color"), latest_entity(tracker, "size")
    if size is None:
        size = size_in_text(text, product)
    if color is None and size is not None and bare_size(text):
        color = earlier_color(tracker, product)
    return color, size


_BUTTON_INTENT = re.compile(r"^/(\w+)\{\"product\"")
_PRODUCT_ONLY_FILLER = re.compile(r"[\s\W_]|的|吧|啊|呀|哦|那个|这个|这款|那款|就|要|选")


def pending_question(tracker: Tracker) -> str | None:
    """The product question of the bot's "which product?" buttons, when that was the bot's
    latest message ("一米七 一百二十斤 穿哪个码" → buttons → "T恤": still the size)."""
    seen_user = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return None
            seen_user = True
        elif kind == "bot" and seen_user:
            buttons = (event.get("data") or {}).get("buttons") or []
            intents = {
                m.group(1)
                for b in buttons
                if (m := _BUTTON_INTENT.match(str(b.get("payload") or "")))
            }
            return intents.pop() if len(intents) == 1 else None
    return None


def only_product_named(tracker: Tracker) -> bool:
    """The message is a product name and nothing else ("T恤", "就T恤吧")."""
    text = tracker.latest_message.get("text") or ""
    spans = [
        (int(e.get("start", 0)), int(e.get("end", 0)))
        for e in tracker.latest_message.get("entities") or []
        if e.get("entity") == "product"
    ]
    if not spans:
        return False
    rest = "".join(c for i, c in enumerate(text) if not any(s <= i < e for s, e in spans))
    return not _PRODUCT_ONLY_FILLER.sub("", rest)


async def links_text() -> str:
    """ "1号 纯棉短袖T恤、2号 男士轻量跑步鞋…" from the live-room mapping."""
    parts = []
    for no, product_id in sorted(
        live_room().links.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0
    ):
        product = await backend().get_product(product_id)
        if product is not None:
            parts.append(f"{no}号 {product.name}")
    return "、".join(parts) or "以直播间小黄车里的为准"


def variant_words(color: str | None, size: str | None) -> str:
    """ " 黑色 M" (with a leading space) or ""."""
    words = " ".join(x for x in (color, size) if x)
    return f" {words}" if words else ""


async def restock_subject(tracker: Tracker) -> dict[str, str] | None:
    """The product (in focus) and the variant last asked about, for a restock notice."""
    product_id = product_in_focus(tracker)
    try:
        product = await backend().get_product(product_id) if product_id else None
    except BackendError:
        return None
    if product is None:
        return None
    color = size = None
    users = [e for e in tracker.events if e.get("event") == "user"][:-1]
    for event in reversed(users[-4:]):
        parse = event.get("parse_data") or {}
        for entity in parse.get("entities") or []:
            if entity.get("entity") == "color" and color is None:
                color = str(entity.get("value"))
            if entity.get("entity") == "size" and size is None:
                size = str(entity.get("value"))
        size = size or size_in_text(str(event.get("text") or ""), product)
        if color or size:
            break
    return {"product_name": product.name, "variant": variant_words(color, size)}
