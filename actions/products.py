"""Product questions: price, stock (per variant), attributes, size advice, recommendations.

Which product (and variant) is asked about comes from ``actions/product_focus.py``, so
that "有没有L" follows the last product discussed.
"""

from __future__ import annotations

import json

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent, shop_facts
from actions.handoff import backend_failed, offer_human
from actions.leads import offer_contact
from actions.messages import render, say, say_with_buttons
from actions.product_focus import (
    asked_variant,
    latest_entity,
    link_product,
    links_text,
    only_product_named,
    pending_question,
    product_in_focus,
    size_in_text,
    variant_words,
)
from xiaoer.shop.attributes import answer_traits
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Product, SizeChart, Variant
from xiaoer.shop.policies import coupon_for_price
from xiaoer.shop.sizing import advise


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
                # one message: the price, with whether the coupon applies to it (the
                # coupon's texts say the product and its price themselves)
                values = {**shop_facts(), "product_name": product.name, "price": f"{product.price}"}
                coupon = coupon_for_price(backend().policies().coupon_everyone, product.price)
                if coupon:
                    key = "coupon_applies" if "after_coupon" in coupon else "coupon_not_reached"
                    text = render(key, None, **values, **coupon)["text"]
                else:
                    text = render("product_price", None, **values)["text"]
                dispatcher.utter_message(text=text)
            color, size = asked_variant(tracker, product)
            restock = {"product_name": product.name, "variant": variant_words(color, size)}
            return events + offer_contact(dispatcher, tracker, restock=restock)
        except BackendError:
            return backend_failed(dispatcher, tracker, "products")

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
