"""Product questions: price, stock (per variant), attributes, size advice, recommendations.

The product comes from the message (entity), from the product card the customer came
from (``metadata.product_id``), or from the last product discussed (slot ``product``).
"""

from __future__ import annotations

import json

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent
from actions.handoff import offer_human
from actions.leads import offer_contact
from actions.messages import say, say_with_buttons
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Product, SizeChart, Variant
from xiaoer.shop.sizing import advise


def latest_entity(tracker: Tracker, name: str) -> str | None:
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == name:
            return str(entity.get("value"))
    return None


def product_in_focus(tracker: Tracker) -> str | None:
    metadata = tracker.latest_message.get("metadata") or {}
    return (
        latest_entity(tracker, "product")
        or (str(metadata["product_id"]) if metadata.get("product_id") else None)
        or tracker.get_slot("product")
    )


def label(v: Variant) -> str:
    return " ".join(x for x in (v.color, v.size) if x)


def stock_text(product: Product) -> tuple[str, str]:
    in_stock: dict[str, list[str]] = {}
    missing: list[str] = []
    for v in product.variants:
        size = v.size or "均码"
        if v.stock > 0:
            in_stock.setdefault(v.color, []).append(size)
        else:
            when = f"预计{v.restock_date:%m月%d日}补货" if v.restock_date else "暂无补货计划"
            missing.append(f"{v.color} {size}暂时缺货（{when}）")
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


async def recommendation(product: Product, color: str | None, size: str | None) -> str | None:
    """An in-stock variant close to what was asked, else a product bought by the same buyers."""
    same = [v for v in product.variants if v.stock > 0 and (v.color, v.size) != (color, size)]
    close = [v for v in same if size and v.size == size] or [
        v for v in same if color and v.color == color
    ]
    if close:
        return f"{product.name} {label(close[0])}（有货）"
    for other_id in await backend().popular_with(product.product_id):
        other = await backend().get_product(other_id)
        if other and any(v.stock > 0 for v in other.variants):
            return f"{other.name} ¥{other.price}（买过这款的顾客也喜欢）"
    return None


class ActionProductQuestion(Action):
    def name(self) -> str:
        return "action_product_question"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker) or "ask_price"
        product_id = product_in_focus(tracker)
        try:
            product = await backend().get_product(product_id) if product_id else None
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
            chart = await backend().get_size_chart(product.product_id)
            events: list[EventType] = [SlotSet("product", product.product_id)]
            if intent == "ask_stock":
                await self.stock(dispatcher, tracker, product)
            elif intent == "ask_size":
                await self.size(dispatcher, tracker, product, chart)
            elif intent == "product_info":
                attributes = "，".join(f"{k}：{v}" for k, v in product.attributes.items())
                say(
                    dispatcher,
                    "product_info",
                    product_name=product.name,
                    attributes=f"{attributes}，颜色：{'、'.join(product.colors)}，价格 ¥{product.price}",
                )
            else:
                say(
                    dispatcher,
                    "product_price",
                    product_name=product.name,
                    price=f"{product.price}",
                )
            return events + offer_contact(dispatcher, tracker)
        except BackendError:
            say(dispatcher, "backend_error")
            return offer_human(dispatcher, tracker, "backend_error")

    async def stock(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, product: Product
    ) -> None:
        color, size = latest_entity(tracker, "color"), latest_entity(tracker, "size")
        if not color and not size:
            available, missing = stock_text(product)
            say(
                dispatcher,
                "product_stock",
                product_name=product.name,
                in_stock=available,
                out_of_stock=missing,
            )
            return
        matches = [
            v
            for v in product.variants
            if (not color or v.color == color) and (not size or v.size == size)
        ]
        asked = " ".join(x for x in (color, size) if x)
        if not matches:
            options = "、".join(label(v) for v in product.variants)
            say(
                dispatcher,
                "stock_variant_unknown",
                product_name=product.name,
                variant=asked,
                options=options,
            )
        elif any(v.stock > 0 for v in matches):
            say(dispatcher, "stock_variant_in", product_name=product.name, variant=asked)
            return
        else:
            dates = [v.restock_date for v in matches if v.restock_date]
            restock = f"，预计{min(dates):%m月%d日}补货" if dates else "，暂无补货计划"
            say(
                dispatcher,
                "stock_variant_out",
                product_name=product.name,
                variant=asked,
                restock=restock,
            )
        suggestion = await recommendation(product, color, size)
        if suggestion:
            say(dispatcher, "recommend", suggestion=suggestion)

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
