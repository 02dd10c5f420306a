"""What is said about an order or an after-sales case: the status answers (with the
anonymous customer's version, without amounts) and a case's progress."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import backend, fmt_time
from actions.messages import say
from actions.order_access import is_public
from xiaoer.shop.backend import BackendError
from xiaoer.shop.models import AfterSaleCase, Order, OrderStatus
from xiaoer.text.parsing import mask_phone


def order_values(order: Order) -> dict[str, Any]:
    """The placeholders every order message uses."""
    return {
        "order_id": order.order_id,
        "items": order.summary,
        "total": f"{order.total:.2f}",
        "status": order.status.words,
    }


def order_reply(order: Order, within_hours: int) -> tuple[str, dict[str, str]]:
    """The response name and its values for an order's status (shop facts such as the
    shipping promise are added by ``say``)."""
    values = order_values(order)
    shipment = order.shipment
    if shipment:
        latest = shipment.latest_trace
        values.update(
            courier=shipment.courier,
            tracking_no=shipment.tracking_no,
            trace=latest.text if latest else "暂无物流更新",
            trace_time=fmt_time(latest.time) if latest else "",
        )
    if order.status == OrderStatus.UNPAID:
        return "order_unpaid", values
    if order.status == OrderStatus.PAID:
        values["ship_deadline"] = fmt_time(order.ship_deadline(within_hours))
        if order.is_overdue(within_hours):
            return "order_paid_overdue", values
        return "order_paid", values
    if order.status == OrderStatus.SHIPPED:
        return "order_shipped", values
    if order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        values["delivered_at"] = fmt_time(order.delivered_at)
        values.setdefault("courier", "")
        values.setdefault("tracking_no", "")
        return "order_delivered", values
    return "order_cancelled", values


_PHONE_IN_TEXT = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def public_reply(response: str, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The status answer for a customer the channel does not know: no amounts, and any
    phone number a courier's trace may carry is masked (recipient details are never in
    the status answers)."""
    values = {k: v for k, v in values.items() if k != "total"}
    if values.get("trace"):
        values["trace"] = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), values["trace"])
    if response == "order_unpaid":
        response = "order_unpaid_public"
    return response, values


def open_case(cases: list[AfterSaleCase], case_id: str | None = None) -> AfterSaleCase:
    """The case asked about (by its number), else the order's latest open one."""
    named = [c for c in cases if case_id and c.case_id.upper() == str(case_id).upper()]
    still_open = [c for c in cases if c.status not in ("closed", "rejected")]
    return (named or still_open or cases)[-1]


def say_case(dispatcher: CollectingDispatcher, tracker: Tracker, case: AfterSaleCase) -> None:
    """A case's progress; an anonymous customer reads no amount (nor any personal data,
    which a case's answer never holds)."""
    values = {
        "order_id": case.order_id,
        "case_id": case.case_id,
        "type_words": case.case_type.words,
        "status_words": case.status_words,
        "expected": case.expected or "有进展会第一时间通知您",
    }
    if is_public(tracker):
        say(dispatcher, "as_case_status_public", **values)
    else:
        say(dispatcher, "as_existing_case", amount=f"{case.amount:.2f}", **values)


ABOUT_CASE = re.compile(r"退款|退货|售后|换货|退钱|钱.{0,3}(退|到账)")


async def say_case_if_asked(
    dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
) -> bool:
    """ "6938…003 退款到哪了" as an order-status question: the order's open after-sales case
    answers it (a read: no phone check). Whether it was said."""
    if not ABOUT_CASE.search(str(tracker.latest_message.get("text") or "")):
        return False
    try:
        cases = await backend().after_sales_for_order(order.order_id)
    except BackendError:
        return False
    if not any(c.status not in ("closed", "rejected") for c in cases):
        return False
    say_case(dispatcher, tracker, open_case(cases, case_id_named(tracker)))
    return True


def case_id_named(tracker: Tracker, recent: int = 0) -> str | None:
    """An after-sales case number (entity ``case_id``) in the message, or in one of the
    ``recent`` customer messages before it."""
    messages = [tracker.latest_message]
    if recent:
        users = [e.get("parse_data") or {} for e in tracker.events if e.get("event") == "user"]
        messages += list(reversed(users[-recent - 1 :]))
    for message in messages:
        for entity in message.get("entities") or []:
            if entity.get("entity") == "case_id" and entity.get("value"):
                return str(entity["value"]).upper()
    return None
