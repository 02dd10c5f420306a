"""Product questions: price, stock (per variant), attributes, size advice, recommendations.

The product comes from the message (entity; a live-room link number ``link_no``; "主播身上
那件" = the product being presented, xiaoer.yml ``live_room``), from the product card the
customer came from (``metadata.product_id``), or from the product in focus (slots
``focus_product`` / ``product``), so that "有没有L" follows the last product discussed.
"""

from __future__ import annotations

import json
import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent, shop_facts
from actions.handoff import offer_human
from actions.leads import offer_contact
from actions.messages import render, say, say_with_buttons
from xiaoer.shop.attributes import answer_traits
from xiaoer.shop.backend import BackendError
from xiaoer.shop.live_room import live_room, presenting_named
from xiaoer.shop.models import Product, SizeChart, Variant
from xiaoer.shop.policies import coupon_for_price
from xiaoer.shop.sizing import advise
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


def label(v: Variant) -> str:
    return " ".join(x for x in (v.color, v.size) if x)


def restock_words(variants: list[Variant]) -> str:
    dates = [v.restock_date for v in variants if v.restock_date]
    return f"预计{min(dates):%m月%d日}补货" if dates else "暂无补货计划"


def stock_text(product: Product) -> tuple[str, str]:
    """(variants in stock by colour, variants out of stock with their restock date);
    a variant with stock 0 is never listed as available."""
    in_stock: dict[str, list[str]] = {}
    missing: list[str] = []
    for v in product.variants:
        size = v.size or "均码"
        if v.stock > 0:
            in_stock.setdefault(v.color, []).append(size)
        else:
            missing.append(f"{v.color} {size}暂时缺货（{restock_words([v])}）")
    available = "；".join(f"{c} {'/'.join(sizes)}" for c, sizes in in_stock.items()) or "暂时都缺货"
    return available, "；".join(missing)


def chart_text(chart: SizeChart | None, product: Product) -> str:
    if chart is None:
        return "、".join(product.sizes) or "均码"
    parts = []
    for row in chart.rows:
        text = f"{row.size}码 身高{row.height_min:g}-{row.height_max:g}cm"
        if row.weight_min is not None and row.weight_max is not None:
            text += f" 体重{row.weight_min:g}-{row.weight_max:g}kg"
        parts.append(text)
    return "；".join(parts)


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


async def product_by_variant(tracker: Tracker) -> Product | None:
    """The one product that has the colour and size asked about ("黑色M什么时候补货"),
    None when no product or several have it."""
    color = latest_entity(tracker, "color")
    if not color:
        return None
    text = tracker.latest_message.get("text") or ""
    matches = []
    for product in await backend().list_products():
        size = latest_entity(tracker, "size") or size_in_text(text, product)
        if size and any(v.color == color and v.size == size for v in product.variants):
            matches.append(product)
    return matches[0] if len(matches) == 1 else None


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


async def recommendation(product: Product, color: str | None, size: str | None) -> str | None:
    """An in-stock alternative to an out-of-stock variant: the same size in another colour
    of the same product, else the same colour in another size, else a product of the same
    category (never another category: no adult T-shirt for a child's raincoat)."""
    others = [v for v in product.variants if v.stock > 0 and (v.color, v.size) != (color, size)]
    same_size = [v for v in others if size and v.size == size]
    if same_size:
        colors = "、".join(v.color for v in same_size)
        return f"{product.name} {colors} {size}（有货）"
    same_color = [v for v in others if color and v.color == color]
    if same_color and not size:
        return f"{product.name} {label(same_color[0])}（有货）"
    for other in await backend().list_products():
        if other.product_id == product.product_id or other.category != product.category:
            continue
        fitting = [v for v in other.variants if v.stock > 0 and (not size or v.size == size)]
        if fitting:
            return f"同类的{other.name} {label(fitting[0])} ¥{other.price}（有货）"
    return None


class ActionProductQuestion(Action):
    def name(self) -> str:
        return "action_product_question"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker) or "ask_price"
        pending = pending_question(tracker)
        if pending and only_product_named(tracker):
            intent = pending  # the product picked for the question asked before
        link_no, linked = link_product(tracker)
        product_id = product_in_focus(tracker)
        try:
            if link_no and not linked:
                say(dispatcher, "live_link_unknown", link_no=link_no, links=await links_text())
                return []
            product = await backend().get_product(product_id) if product_id else None
            if product is None and not link_no:
                product = await product_by_variant(tracker)
            if product is None:
                products = await backend().list_products()
                buttons = [
                    {
                        "title": p.name,
                        "payload": f"/{intent}" + json.dumps({"product": p.product_id}),
                    }
                    for p in products
                ]
                say_with_buttons(dispatcher, "which_product", buttons)
                return []
            events: list[EventType] = [
                SlotSet("product", product.product_id),
                SlotSet("focus_product", product.product_id),
            ]
            if link_no:
                say(dispatcher, "live_link_is", link_no=link_no, product_name=product.name)
            if intent == "ask_stock":
                if not await self.stock(dispatcher, tracker, product):
                    return events  # in stock: no restock alert to offer
            elif intent == "ask_size":
                chart = await backend().get_size_chart(product.product_id)
                await self.size(dispatcher, tracker, product, chart)
            elif intent == "product_info":
                answers = answer_traits(product.traits, tracker.latest_message.get("text") or "")
                if answers:
                    return events + self.attributes(dispatcher, tracker, product, answers)
                attributes = "，".join(f"{k}：{v}" for k, v in product.attributes.items())
                say(
                    dispatcher,
                    "product_info",
                    product_name=product.name,
                    attributes=f"{attributes}，颜色：{'、'.join(product.colors)}，价格 ¥{product.price}",
                )
            else:
                # one message: the price, then whether the coupon applies to it
                values = {**shop_facts(), "product_name": product.name, "price": f"{product.price}"}
                text = render("product_price", None, **values)["text"]
                coupon = coupon_for_price(backend().policies().coupon_everyone, product.price)
                if coupon:
                    key = "coupon_applies" if "after_coupon" in coupon else "coupon_not_reached"
                    text += render(key, None, **values, **coupon)["text"]
                dispatcher.utter_message(text=text)
            color, size = asked_variant(tracker, product)
            restock = {"product_name": product.name, "variant": variant_words(color, size)}
            return events + offer_contact(dispatcher, tracker, restock=restock)
        except BackendError:
            say(dispatcher, "backend_error")
            return offer_human(dispatcher, tracker, "backend_error")

    @staticmethod
    def attributes(
        dispatcher: CollectingDispatcher, tracker: Tracker, product: Product, answers: list
    ) -> list[EventType]:
        """Yes/no from the catalogue; "not sure, I'll ask a colleague" + a human otherwise."""
        unknown = []
        for a in answers:
            if a.answer in ("yes", "no"):  # attribute_yes / attribute_no
                say(
                    dispatcher,
                    f"attribute_{a.answer}",
                    product_name=product.name,
                    label=a.label,
                    note=a.note,
                )
            else:
                unknown.append(a.label)
        if not unknown:
            return []
        say(dispatcher, "attribute_unknown", product_name=product.name, label="、".join(unknown))
        return offer_human(dispatcher, tracker, "attribute_unknown")

    async def stock(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, product: Product
    ) -> bool:
        """Tell the stock; True when what was asked is (partly) out of stock."""
        color, size = asked_variant(tracker, product)
        if not color and not size:
            listed, missing = stock_text(product)
            say(
                dispatcher,
                "product_stock",
                product_name=product.name,
                in_stock=listed,
                out_of_stock=missing,
            )
            return bool(missing)
        matches = [
            v
            for v in product.variants
            if (not color or v.color == color) and (not size or v.size == size)
        ]
        asked = " ".join(x for x in (color, size) if x)
        if not matches:
            options = "、".join(label(v) for v in product.variants if v.stock > 0)
            say(
                dispatcher,
                "stock_variant_unknown",
                product_name=product.name,
                variant=asked,
                options=options,
            )
            return False
        available = [v for v in matches if v.stock > 0]
        out = [v for v in matches if v.stock <= 0]
        if available and not out:
            say(dispatcher, "stock_variant_in", product_name=product.name, variant=asked)
            return False
        if available:  # "黑色有吗": L/XL yes, M no
            say(
                dispatcher,
                "stock_variant_partly",
                product_name=product.name,
                variant=asked,
                in_stock="、".join(label(v) for v in available),
                out_of_stock="、".join(f"{label(v)}（{restock_words([v])}）" for v in out),
            )
            return True
        say(
            dispatcher,
            "stock_variant_out",
            product_name=product.name,
            variant=asked,
            restock="，" + restock_words(out),
        )
        suggestion = await recommendation(product, color, size)
        if suggestion:
            say(dispatcher, "recommend", suggestion=suggestion)
        return True

    async def size(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        product: Product,
        chart: SizeChart | None,
    ) -> None:
        fit_note = product.fit_note or ""
        if chart is None:
            if product.sizes:
                say(
                    dispatcher,
                    "size_true_to_size",
                    product_name=product.name,
                    fit_note=fit_note,
                    sizes="/".join(product.sizes),
                )
            else:
                say(dispatcher, "size_none", product_name=product.name)
            return
        height = tracker.get_slot("height_cm")
        weight = tracker.get_slot("weight_kg")
        if height is None:
            say(
                dispatcher,
                "size_need_measures",
                product_name=product.name,
                size_chart=chart_text(chart, product),
                fit_note=fit_note,
            )
            return
        advice = advise(chart, float(height), float(weight) if weight is not None else None)
        if advice.size is None:
            size_range = f"{chart.rows[0].size}-{chart.rows[-1].size}"
            say(dispatcher, "size_out_of_range", product_name=product.name, size_range=size_range)
            return
        weight_text = f"、体重{float(weight):g}kg" if weight is not None else ""
        say(
            dispatcher,
            "size_advice",
            height=f"{float(height):g}",
            weight_text=weight_text,
            product_name=product.name,
            size=advice.size,
            fit_note=fit_note,
        )
        variants = [v for v in product.variants if v.size == advice.size]
        if variants and all(v.stock <= 0 for v in variants):
            suggestion = await recommendation(product, None, advice.size)
            if suggestion:
                say(dispatcher, "recommend", suggestion=suggestion)
        elif variants:
            colors = "、".join(v.color for v in variants if v.stock > 0)
            say(dispatcher, "recommend", suggestion=f"{advice.size} 码现有 {colors}")


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
