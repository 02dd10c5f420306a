"""Returns, refunds, exchanges and quality issues: one after-sales form."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import backend, fmt_time, latest_intent, log_event
from actions.forms import OrderFormValidation, backend_stop, first_time, form_reset
from actions.handoff import backend_failed, hand_over
from actions.messages import sandbox_stop, say
from actions.order_access import (
    FOCUS_ORDER_SLOT,
    MAX_FAILURES,
    VERIFY_SLOT,
    accessible_order,
    current_order,
    is_verified,
)
from actions.order_flow import OrderFlowSubmit, unverified_stop
from actions.order_replies import case_id_named, open_case, order_values, say_case
from actions.questions import ask_actions, refused_this_turn
from xiaoer.core.settings import allowed
from xiaoer.shop.backend import BackendError, NotSupportedByBackend, OperationRejected
from xiaoer.shop.models import (
    AfterSaleRequest,
    AfterSaleType,
    Order,
    OrderStatus,
    Product,
    now_beijing,
)
from xiaoer.text.parsing import mask_order_id

REASONS = ("不想要了", "尺码不合适", "质量问题", "发错货", "少件", "其他")
PHOTO_REASONS = {"质量问题", "发错货", "少件"}
NO_REASON_RETURNS = {"不想要了", "尺码不合适"}
ESCAPE_INTENTS = {"deny", "request_human", "complain", "bot_challenge"}
NO_PHOTO = "__none__"
_KEYWORDS = [
    ("发错货", r"发错|错发|不是我(买|拍)的|颜色不对|款式不对|货不对"),
    ("少件", r"少件|少了|缺了|漏发|没有?收到.{0,4}(配件|赠品)|只有一"),
    ("质量问题", r"质量|坏|破|裂|脏|瑕疵|开线|掉色|起球|异味|漏水"),
    ("尺码不合适", r"尺码|码数|大了|小了|偏大|偏小|不合身|穿不下"),
    ("不想要了", r"不想要|不喜欢|拍错|不需要|不要了|七天无理由|7天无理由"),
]
_IMAGE_URL = re.compile(r"https?://\S+", re.IGNORECASE)
INTENT_TYPES = {
    "return_goods": "return_refund",
    "refund": "refund",
    "exchange": "exchange",
    "quality_issue": "quality",
}
TEXT_TYPES = [("换", "exchange"), ("退货", "return_refund"), ("退款", "refund")]
SLOTS = ("as_reason", "as_photo", "wanted_variant", "as_confirmed", "as_type")
RESET = form_reset(*SLOTS, failures=("as_photo", "wanted_variant"))
TYPE_WORDS = {
    "return_refund": "退货退款",
    "refund": "退款",
    "exchange": "换货",
    "quality": "退货退款",
}


def canonical_reason(text: str | None) -> str:
    text = (text or "").strip()
    if text in REASONS:
        return text
    for reason, pattern in _KEYWORDS:
        if re.search(pattern, text):
            return reason
    return f"其他：{text[:30]}" if text else "其他"


def photo_from(tracker: Tracker) -> str | None:
    """An image the customer sent: channel attachments in metadata, or an image URL."""
    metadata = tracker.latest_message.get("metadata") or {}
    for attachment in metadata.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("url"):
            if attachment.get("type", "image") in ("image", "user_local_image"):
                return str(attachment["url"])
    match = _IMAGE_URL.search(tracker.latest_message.get("text") or "")
    return match.group(0) if match else None


def wanted_from(tracker: Tracker) -> tuple[str | None, str | None]:
    color = size = None
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "color":
            color = entity.get("value")
        elif entity.get("entity") == "size":
            size = entity.get("value")
    return color, size


def variant_label(color: str | None, size: str | None) -> str:
    return " ".join(v for v in (color, size) if v)


async def first_product(order: Order) -> Product | None:
    return await backend().get_product(order.items[0].product_id) if order.items else None


def no_insurance(tracker: Tracker, order: Order, reason: str | None = None) -> bool:
    """A no-reason return of a product without return shipping insurance (运费险)."""
    reason = reason if reason is not None else (tracker.get_slot("as_reason") or "")
    if reason not in NO_REASON_RETURNS or tracker.get_slot("as_type") == "exchange":
        return False
    policies = backend().policies()
    return any(not policies.has_return_insurance(i.product_id) for i in order.items)


class ValidateAfterSalesForm(OrderFormValidation):
    # issue 12: an order just looked at starts an after-sales case only once received
    focus_statuses = {OrderStatus.DELIVERED, OrderStatus.COMPLETED}

    def name(self) -> str:
        return "validate_after_sales_form"

    async def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """ "AS20261101 退款怎么样了": the case number names its order."""
        case_id = case_id_named(tracker)
        if case_id and not tracker.get_slot("order_id"):
            try:
                case = await backend().get_after_sale(case_id)
            except BackendError:
                case = None
            # a known buyer reaches only their own cases (another's is not named at all)
            try:
                order = await accessible_order(tracker, case.order_id) if case else None
            except BackendError:
                order = None
            if order is not None:
                return {"order_id": order.order_id}
        return await super().extract_order_id(dispatcher, tracker, domain)

    async def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        """An order with an open case: its progress is read without the phone check (the
        submit action tells it); any new case still needs the check."""
        found = await super().validate_order_id(slot_value, dispatcher, tracker, domain)
        order_id = found.get("order_id")
        if order_id and found.get("flow_blocker") is None and not is_verified(tracker, order_id):
            try:
                cases = await backend().after_sales_for_order(order_id)
            except BackendError:
                cases = []
            if any(c.status not in ("closed", "rejected") for c in cases):
                found.update(flow_blocker="existing_case")
                found.pop(f"{VERIFY_SLOT}_failures", None)
        return found

    async def blocker(self, order: Order, tracker: Tracker) -> str | None:
        cases = await backend().after_sales_for_order(order.order_id)
        if any(c.status not in ("closed", "rejected") for c in cases):
            return "existing_case"
        kind = tracker.get_slot("as_type") or "return_refund"
        if order.status == OrderStatus.UNPAID:
            return "unpaid"
        if order.status == OrderStatus.CANCELLED:
            return "cancelled"
        if order.status == OrderStatus.PAID:
            return None if kind == "refund" else "not_delivered"
        if order.status == OrderStatus.SHIPPED:
            return "not_delivered"
        days = backend().policies().return_days
        if order.delivered_at and now_beijing() - order.delivered_at > timedelta(days=days):
            return "past_window"
        return None

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if not slots or slots == ["order_id"]:
            return slots
        reason = tracker.get_slot("as_reason") or ""
        if reason not in PHOTO_REASONS and "as_photo" in slots:
            slots.remove("as_photo")
        if tracker.get_slot("as_type") != "exchange" and "wanted_variant" in slots:
            slots.remove("wanted_variant")
        elif (
            tracker.get_slot("as_type") == "exchange"
            and not tracker.get_slot("wanted_variant")
            and self.failures(tracker, "wanted_variant") >= MAX_FAILURES
        ):
            return []  # no variant to exchange for: not confirmed, an agent takes the case
        return slots

    # --- custom slot extraction -----------------------------------------------------
    async def get_extraction_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """A photo is kept whenever it comes, also before the form asks for it (rasa-sdk
        extracts only the slots required so far, and the photo is required only once the
        reason is known): a photo sent as the first message ("[图片]", read as a quality
        issue) starts the flow, is acknowledged and is not asked for again."""
        events = await super().get_extraction_events(dispatcher, tracker, domain)
        photo = photo_from(tracker)
        if photo and not any(e.get("name") == "as_photo" for e in events):
            events.append(SlotSet("as_photo", photo))
        asked = tracker.get_slot("requested_slot") == "as_photo"  # the answer: no thanks
        if (
            photo
            and not asked
            and not tracker.get_slot("as_photo")
            and first_time(tracker, "photo")
        ):
            say(dispatcher, "as_photo_received")
        return events

    async def extract_as_type(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("as_type"):
            return {}
        kind = INTENT_TYPES.get(latest_intent(tracker) or "")
        if kind is None and tracker.get_slot("requested_slot") == "as_type":
            text = tracker.latest_message.get("text") or ""
            kind = next((k for word, k in TEXT_TYPES if word in text), None)
        return {"as_type": kind} if kind else {}

    async def extract_as_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        if tracker.get_slot("requested_slot") == "as_reason":
            # "不想要了" reads like a refusal but is one of the reasons offered
            recognised = not canonical_reason(text).startswith("其他")
            if latest_intent(tracker) in ESCAPE_INTENTS and not recognised:
                return {}
            if not recognised and wanted_from(tracker)[1]:
                return {"as_reason": "尺码不合适"}  # "换41的": the size is the reason
            return {"as_reason": text}
        if latest_intent(tracker) in ESCAPE_INTENTS or tracker.get_slot("as_reason"):
            return {}
        reason = canonical_reason(text)
        if latest_intent(tracker) == "quality_issue":
            return {"as_reason": reason if reason in PHOTO_REASONS else "质量问题"}
        if latest_intent(tracker) in INTENT_TYPES and not reason.startswith("其他"):
            return {"as_reason": reason}  # "码数大了想换小一码": said, not asked again
        return {}

    async def extract_as_photo(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        photo = photo_from(tracker)
        if photo:
            return {"as_photo": photo}
        if tracker.get_slot("requested_slot") == "as_photo" and (
            latest_intent(tracker) not in ESCAPE_INTENTS
        ):
            return {"as_photo": NO_PHOTO}
        return {}

    async def extract_wanted_variant(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        requested = tracker.get_slot("requested_slot") == "wanted_variant"
        if not requested and latest_intent(tracker) != "exchange":
            return {}
        if latest_intent(tracker) in ESCAPE_INTENTS:
            return {}
        color, size = wanted_from(tracker)
        if color or size:
            return {"wanted_variant": f"{color or ''}|{size or ''}"}
        return {"wanted_variant": "|"} if requested else {}

    # --- validation -----------------------------------------------------------------
    async def validate_as_reason(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        reason = canonical_reason(str(slot_value or ""))
        result: dict[str, Any] = {"as_reason": reason}
        if reason in NO_REASON_RETURNS and tracker.get_slot("as_type") != "exchange":
            order = await current_order(tracker)
            if order and no_insurance(tracker, order, reason):
                result["flow_blocker"] = "no_insurance"
        return result

    async def validate_as_photo(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if not slot_value or slot_value == NO_PHOTO:
            say(dispatcher, "as_photo_missing")
            return self.fail(tracker, "as_photo")
        return {"as_photo": slot_value}

    async def validate_wanted_variant(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        color, _, size = str(slot_value or "|").partition("|")
        try:
            order = await backend().get_order(tracker.get_slot("order_id") or "")
            product = await first_product(order) if order else None
        except BackendError:
            return backend_stop("wanted_variant")
        if order is None or product is None:
            say(dispatcher, "as_ask_variant")
            return self.fail(tracker, "wanted_variant")
        item = order.items[0]
        color = color or item.color or ""
        size = size or item.size or ""
        if not color and not size:
            say(dispatcher, "as_ask_variant")
            return self.fail(tracker, "wanted_variant")
        options = "、".join(variant_label(v.color, v.size) for v in product.variants)
        if color == item.color and size == item.size:  # "换M码" of the M bought
            say(dispatcher, "as_variant_same", variant=variant_label(color, size), options=options)
            return self.fail(tracker, "wanted_variant")
        variant = next(
            (v for v in product.variants if v.color == color and (v.size or "") == size), None
        )
        if variant is None:
            say(dispatcher, "as_variant_unknown", product_name=product.name, options=options)
            return self.fail(tracker, "wanted_variant")
        if variant.stock <= 0:
            restock = f"（预计{variant.restock_date:%m月%d日}补货）" if variant.restock_date else ""
            alternatives = "、".join(
                variant_label(v.color, v.size) for v in product.variants if v.stock > 0
            )
            say(
                dispatcher,
                "as_variant_out",
                product_name=product.name,
                variant=variant_label(color, size),
                restock=restock,
                alternatives=alternatives,
            )
            return self.fail(tracker, "wanted_variant")
        return {"wanted_variant": f"{color}|{size}"}


def case_type(kind: str, order: Order) -> AfterSaleType:
    if kind == "exchange":
        return AfterSaleType.EXCHANGE
    if kind == "refund" and order.status == OrderStatus.PAID:
        return AfterSaleType.REFUND_ONLY
    return AfterSaleType.RETURN_REFUND


def summary(tracker: Tracker, order: Order) -> dict[str, str]:
    kind = tracker.get_slot("as_type") or "return_refund"
    reason = tracker.get_slot("as_reason") or "其他"
    color, _, size = str(tracker.get_slot("wanted_variant") or "|").partition("|")
    photo = tracker.get_slot("as_photo")
    extra = ""
    if kind == "exchange" and (color or size):
        extra += f"，换成 {variant_label(color, size)}"
    if photo and photo != NO_PHOTO:
        extra += "，已附照片"
    return {
        "type_words": case_type(kind, order).words,
        "reason": reason,
        "extra": extra,
        "variant": variant_label(color, size),
    }


async def ask_as_confirmed(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    order = await current_order(tracker)
    if order is None:  # the backend failed while the form waits: no yes/no buttons here
        say(dispatcher, "backend_error_in_form")
        return []
    say(dispatcher, "as_confirm", **order_values(order), **summary(tracker, order))
    return []


async def ask_wanted_variant(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Which variant to exchange for; not again right after a refusal, which asked it."""
    if not refused_this_turn(tracker, "wanted_variant"):
        say(dispatcher, "as_ask_variant")
    return []


ASKS = ask_actions(
    __name__,
    {
        "action_ask_as_type": "as_ask_type",
        "action_ask_as_reason": "as_ask_reason",
        "action_ask_as_photo": "as_ask_photo",
        "action_ask_wanted_variant": ask_wanted_variant,
        "action_ask_as_confirmed": ask_as_confirmed,
    },
)
ActionAskAsConfirmed = ASKS["action_ask_as_confirmed"]


class ActionSubmitAfterSales(OrderFlowSubmit):
    reset = RESET
    changes = True
    reads = frozenset({"existing_case"})  # a case's progress is a read: no phone check
    replies = {
        "unpaid": ("as_unpaid", None),
        "cancelled": ("as_cancelled", None),
        "not_delivered": ("as_not_delivered", None),
        "past_window": ("as_past_window", "after_sales_past_window"),
        "no_insurance": ("as_no_insurance", "after_sales_no_insurance"),
    }

    def name(self) -> str:
        return "action_submit_after_sales"

    async def check(self, order: Order, tracker: Tracker) -> tuple[str | None, dict[str, Any]]:
        product = await first_product(order)
        blocker = await ValidateAfterSalesForm().blocker(order, tracker)
        if blocker is None and no_insurance(tracker, order):
            blocker = "no_insurance"
        values = {
            "delivered_at": fmt_time(order.delivered_at),
            "product_name": product.name if product else "该商品",
        }
        return blocker, values

    async def submit(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order: Order,
        blocker: str | None,
    ) -> list[EventType]:
        order_id = order.order_id
        if blocker == "existing_case":
            try:
                cases = await backend().after_sales_for_order(order_id)
            except BackendError:
                return RESET + backend_failed(dispatcher, tracker)
            if cases:
                say_case(dispatcher, tracker, open_case(cases, case_id_named(tracker, recent=3)))
                return RESET + [SlotSet(FOCUS_ORDER_SLOT, order_id)]
            unverified = unverified_stop(dispatcher, tracker, order_id, RESET)  # closed since
            if unverified is not None:
                return unverified
        values = order_values(order)
        info = summary(tracker, order)
        details = (
            f"订单 {order.order_id}（{order.summary}）申请{info['type_words']}，"
            f"原因：{info['reason']}{info['extra']}"
        )
        photo = tracker.get_slot("as_photo")
        if photo and photo != NO_PHOTO:
            details += f"，照片：{photo}"
        if tracker.get_slot("as_confirmed") is not True:
            if tracker.get_slot("as_confirmed") is None:  # a detail failed twice
                return RESET + hand_over(dispatcher, tracker, "after_sales", "售后信息", details)
            say(dispatcher, "as_kept")
            return RESET
        if not allowed("open_after_sales"):
            return RESET + hand_over(dispatcher, tracker, "after_sales", "售后信息", details)
        color, _, size = str(tracker.get_slot("wanted_variant") or "|").partition("|")
        kind = case_type(tracker.get_slot("as_type") or "return_refund", order)
        request = AfterSaleRequest(
            order_id=order.order_id,
            case_type=kind,
            reason=info["reason"],
            amount=order.total,
            photo_url=photo if photo and photo != NO_PHOTO else None,
            wanted_color=color or None,
            wanted_size=size or None,
        )
        if sandbox_stop(
            dispatcher, tracker, "sandbox_after_sales", type_words=kind.words, **values
        ):
            return RESET
        try:
            case = await backend(tracker).create_after_sale(request)
        except NotSupportedByBackend:
            say(dispatcher, "as_submit_in_app")
            return RESET + hand_over(dispatcher, tracker, "after_sales", "售后信息", details)
        except OperationRejected:
            return RESET + hand_over(dispatcher, tracker, "after_sales", "售后信息", details)
        except BackendError:
            return RESET + backend_failed(dispatcher, tracker)
        log_event("after_sale_opened", tracker, order=mask_order_id(order_id), case=case.case_id)
        key = {
            AfterSaleType.EXCHANGE: "as_created_exchange",
            AfterSaleType.REFUND_ONLY: "as_created_refund",
        }.get(kind, "as_created_return")
        say(
            dispatcher,
            key,
            case_id=case.case_id,
            amount=f"{case.amount:.2f}",
            type_words=kind.words,
            variant=info["variant"],
            **values,
        )
        return RESET
