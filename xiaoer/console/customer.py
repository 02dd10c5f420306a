"""The customer panel of a conversation: orders and after-sales cases from the shop
backend, the customer's segment, and the contacts and lead that LEADS captured."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from xiaoer.handoff.store import HandoffRequest
from xiaoer.shop.backend import BackendError
from xiaoer.shop.factory import get_backend
from xiaoer.shop.models import AfterSaleCase, Order
from xiaoer.text.parsing import parse_order_id

logger = logging.getLogger(__name__)
MAX_ORDERS = 5


@dataclass
class CustomerPanel:
    buyer_id: str = ""
    segment: str = ""
    orders: list[Order] = field(default_factory=list)
    cases: dict[str, list[AfterSaleCase]] = field(default_factory=dict)
    contacts: list[dict[str, str]] = field(default_factory=list)
    lead: Any = None
    lead_words: str = ""  # the lead in Chinese: 购买意向 · 热 · 新线索
    errors: list[str] = field(default_factory=list)


def mentioned_order_ids(request: HandoffRequest, events: list[dict[str, Any]]) -> list[str]:
    """Order ids the conversation mentioned (summary slot, then entities, newest first)."""
    found: list[str] = []
    if request.summary.get("order_id"):
        found.append(str(request.summary["order_id"]))
    for event in reversed(events):
        if event.get("event") != "user":
            continue
        for entity in (event.get("parse_data") or {}).get("entities") or []:
            if entity.get("entity") == "order_id":
                parsed = parse_order_id(str(entity.get("value")))
                if parsed:
                    found.append(parsed)
    return list(dict.fromkeys(found))


def buyer_of(request: HandoffRequest, events: list[dict[str, Any]]) -> str:
    if request.summary.get("buyer_id"):
        return str(request.summary["buyer_id"])
    for event in reversed(events):
        if event.get("event") == "user":
            value = (event.get("metadata") or {}).get("buyer_id")
            if value:
                return str(value)
    return ""


async def customer_panel(request: HandoffRequest, events: list[dict[str, Any]]) -> CustomerPanel:
    panel = CustomerPanel(buyer_id=buyer_of(request, events))
    backend = get_backend()
    orders: dict[str, Order] = {}
    try:
        if panel.buyer_id:
            buyer = await backend.get_buyer(panel.buyer_id)
            panel.segment = "老客户（复购）" if buyer and buyer.returning else "新客户"
            for order in await backend.orders_by_buyer(panel.buyer_id, MAX_ORDERS):
                orders[order.order_id] = order
        else:
            panel.segment = "访客（未关联抖音账号）"
        for order_id in mentioned_order_ids(request, events):
            if order_id not in orders and len(orders) < MAX_ORDERS * 2:
                found = await backend.get_order(order_id)
                if found is not None:
                    orders[order_id] = found
        panel.orders = sorted(orders.values(), key=lambda o: o.created_at, reverse=True)
        for order in panel.orders:
            cases = await backend.after_sales_for_order(order.order_id)
            if cases:
                panel.cases[order.order_id] = cases
        if not panel.buyer_id and panel.orders:  # a visitor who named their order
            panel.buyer_id = panel.orders[0].buyer_id
            buyer = await backend.get_buyer(panel.buyer_id)
            segment = "老客户（复购）" if buyer and buyer.returning else "新客户"
            panel.segment = f"{segment}，由订单识别（未关联抖音账号）"
    except BackendError:
        panel.errors.append("店铺系统暂时无法查询订单，请稍后刷新")
    try:
        from xiaoer.leads import CATEGORY_LABELS, SCORE_LABELS, STATUS_LABELS, get_lead_store

        leads = get_lead_store()
        panel.contacts = leads.contacts_for(request.sender_id)
        panel.lead = leads.lead_for(request.sender_id)
        if panel.lead is not None:
            panel.lead_words = " · ".join(
                (
                    CATEGORY_LABELS.get(panel.lead.category, panel.lead.category),
                    SCORE_LABELS.get(panel.lead.score, panel.lead.score),
                    STATUS_LABELS.get(panel.lead.status, panel.lead.status),
                )
            )
    except Exception:  # noqa: BLE001 - the panel shows what it can
        logger.exception("lead lookup failed")
        panel.errors.append("线索信息暂时无法读取")
    return panel
