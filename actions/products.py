"""Product questions: price, stock, attributes and size chart of a catalogue product."""

from __future__ import annotations

import json

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, latest_intent, shop_facts
from actions.handoff import offer_human
from actions.messages import say, say_with_buttons
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import Product, SizeChart


def stock_text(product: Product) -> tuple[str, str]:
    in_stock: dict[str, list[str]] = {}
    missing: list[str] = []
    for v in product.variants:
        label = v.size or "均码"
        if v.stock > 0:
            in_stock.setdefault(v.color, []).append(label)
        else:
            when = f"预计{v.restock_date:%m月%d日}补货" if v.restock_date else "暂无补货计划"
            missing.append(f"{v.color} {label}暂时缺货（{when}）")
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


class ActionProductQuestion(Action):
    def name(self) -> str:
        return "action_product_question"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = latest_intent(tracker) or "ask_price"
        product_id = tracker.get_slot("product")
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
        except BackendError:
            say(dispatcher, "backend_error")
            return offer_human(dispatcher, tracker, "backend_error")
        values = {"product_name": product.name, **shop_facts()}
        if intent == "ask_stock":
            available, missing = stock_text(product)
            say(dispatcher, "product_stock", in_stock=available, out_of_stock=missing)
        elif intent == "ask_size":
            say(
                dispatcher,
                "product_size",
                size_chart=chart_text(chart, product),
                fit_note=product.fit_note or "",
                **values,
            )
        elif intent == "product_info":
            attributes = "，".join(f"{k}：{v}" for k, v in product.attributes.items())
            colours = "、".join(product.colors)
            say(
                dispatcher,
                "product_info",
                attributes=f"{attributes}，颜色：{colours}，价格 ¥{product.price}",
                **values,
            )
        else:
            say(dispatcher, "product_price", price=f"{product.price}", **values)
        return []
