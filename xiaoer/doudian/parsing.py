"""Doudian (抖店) answers → the shop's domain model (:mod:`xiaoer.shop.models`).

Orders (``order.orderDetail`` / ``order.searchList``), parcels and their routes
(``logistics.trackNoRouteDetail``) and after-sales cases (``afterSale.List`` /
``afterSale.Detail``). Every field is read under each spelling the public sources use;
what cannot be understood raises :class:`~xiaoer.doudian.protocol.DoudianParseError`
rather than being guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from xiaoer.doudian.protocol import (
    DoudianParseError,
    as_dict,
    as_int,
    as_list,
    as_str_id,
    as_time,
    fen_to_yuan,
    pick,
)
from xiaoer.shop.models import (
    AfterSaleCase,
    AfterSaleType,
    Order,
    OrderItem,
    OrderStatus,
    Recipient,
    Shipment,
    Trace,
)

ORDER_STATUSES: dict[int, OrderStatus] = {
    1: OrderStatus.UNPAID,
    103: OrderStatus.UNPAID,  # partly paid
    105: OrderStatus.PAID,
    2: OrderStatus.PAID,  # preparing
    101: OrderStatus.SHIPPED,  # partly shipped
    3: OrderStatus.SHIPPED,
    4: OrderStatus.CANCELLED,
    5: OrderStatus.COMPLETED,
}
COLOR_SPEC_NAMES = ("颜色", "颜色分类", "颜色类别", "color")
SIZE_SPEC_NAMES = ("尺码", "尺寸", "鞋码", "规格", "size")
SIGNED_WORDS = ("已签收", "签收人", "代签收", "已妥投")
NOT_SIGNED_WORDS = ("待签收", "未签收", "拒签", "拒收")
ENCRYPTED_PREFIXES = ("#", "$", "~")  # Doudian's encrypted receiver fields


def is_signed_for(trace: Trace) -> bool:
    return any(w in trace.text for w in SIGNED_WORDS) and not any(
        w in trace.text for w in NOT_SIGNED_WORDS
    )


def parse_traces(data: Mapping[str, Any]) -> tuple[Trace, ...]:
    """Route nodes of ``logistics.trackNoRouteDetail`` (``route_node_list`` or
    ``route__node_list``, possibly nested in ``track_info``), oldest first."""
    nodes: list[Any] = []
    for holder in (data, as_dict(data.get("track_info")), as_dict(data.get("data"))):
        found = pick(holder, "route_node_list", "route__node_list", "tracks", "track_list")
        if found is not None:
            nodes = as_list(found)
            break
    traces = []
    for node in nodes:
        node = as_dict(node)
        text = str(pick(node, "content", "context", "desc", "description") or "").strip()
        when = as_time(pick(node, "timestamp", "time", "track_time", "update_time"))
        if text and when:
            traces.append(Trace(when, text))
    return tuple(sorted(traces, key=lambda t: t.time))


def _spec_value(specs: Any, names: Sequence[str]) -> str | None:
    for spec in as_list(specs):
        spec = as_dict(spec)
        if str(spec.get("name") or "").strip().lower() in names:
            value = str(spec.get("value") or "").strip()
            return value or None
    return None


def parse_item(raw: Mapping[str, Any]) -> OrderItem:
    quantity = as_int(pick(raw, "item_num", "num", "quantity"), 1) or 1
    unit = pick(raw, "goods_price", "sku_price", "price")
    if unit is not None:
        unit_price = fen_to_yuan(unit)
    else:
        unit_price = (fen_to_yuan(pick(raw, "origin_amount", "order_amount")) / quantity).quantize(
            Decimal("0.01")
        )
    specs = raw.get("spec")
    return OrderItem(
        product_id=as_str_id(pick(raw, "out_product_id", "product_id")),
        product_name=str(pick(raw, "product_name", "name") or ""),
        color=_spec_value(specs, COLOR_SPEC_NAMES),
        size=_spec_value(specs, SIZE_SPEC_NAMES),
        quantity=quantity,
        unit_price=unit_price,
    )


def _plain(value: Any) -> str:
    text = str(value or "").strip()
    return "" if text.startswith(ENCRYPTED_PREFIXES) else text


def _address(addr: Any) -> str:
    if isinstance(addr, str):
        return _plain(addr)
    addr = as_dict(addr)
    parts = []
    for key in ("province", "city", "town", "street"):
        part = addr.get(key)
        parts.append(str(as_dict(part).get("name") or "") if isinstance(part, dict) else "")
    parts.append(_plain(addr.get("detail")))
    return "".join(parts)


def parse_recipient(raw: Mapping[str, Any]) -> Recipient | None:
    name = _plain(raw.get("post_receiver")) or _plain(raw.get("mask_post_receiver"))
    phone = _plain(raw.get("post_tel")) or _plain(raw.get("mask_post_tel"))
    address = _address(raw.get("post_addr")) or _address(raw.get("mask_post_addr"))
    if not (name or phone or address):
        return None
    return Recipient(name, phone, address)


def parse_shipment(raw: Mapping[str, Any]) -> tuple[Shipment, str] | None:
    """The latest parcel of ``logistics_info`` and its courier code (for the route call)."""
    parcels = [as_dict(p) for p in as_list(raw.get("logistics_info"))]
    parcels = [p for p in parcels if as_str_id(p.get("tracking_no"))]
    if not parcels:
        return None
    parcel = max(parcels, key=lambda p: as_int(p.get("ship_time"), 0) or 0)
    code = as_str_id(pick(parcel, "company", "company_code", "logistics_code"))
    shipment = Shipment(
        courier=str(pick(parcel, "company_name", "company") or ""),
        tracking_no=as_str_id(parcel.get("tracking_no")),
        shipped_at=as_time(parcel.get("ship_time")),
    )
    return shipment, code


def parse_order(raw: Mapping[str, Any], traces: Sequence[Trace] = (), buyer_id: str = "") -> Order:
    """A ``shop_order_detail`` (or an entry of ``shop_order_list``) → :class:`Order`.

    ``order_status`` 3 / 101 (shipped) becomes DELIVERED when the answer has a receipt
    time or the latest trace says the parcel was signed for; 5 is COMPLETED.
    """
    order_id = as_str_id(pick(raw, "order_id", "shop_order_id"))
    code = as_int(raw.get("order_status"))
    if code not in ORDER_STATUSES:
        raise DoudianParseError(f"unknown order_status {raw.get('order_status')!r}")
    status = ORDER_STATUSES[code]
    items = tuple(parse_item(as_dict(i)) for i in as_list(raw.get("sku_order_list")))
    total_raw = pick(raw, "order_amount", "pay_amount")
    total = (
        fen_to_yuan(total_raw)
        if total_raw is not None
        else sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
    )
    shipment = None
    found = parse_shipment(raw)
    traces = tuple(sorted(traces, key=lambda t: t.time))
    if found:
        base, _code = found
        shipment = Shipment(base.courier, base.tracking_no, base.shipped_at, traces)
    receipt = as_time(pick(raw, "receipt_time", "sign_time", "logistics_receipt_time"))
    signed = next((t for t in reversed(traces) if is_signed_for(t)), None)
    latest_signed = bool(traces) and signed is traces[-1]
    delivered_at = receipt or (signed.time if signed else None)
    if status == OrderStatus.SHIPPED and (receipt or latest_signed):
        status = OrderStatus.DELIVERED
    if status not in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        delivered_at = None
    created = as_time(raw.get("create_time"))
    if created is None:
        raise DoudianParseError("order without create_time")
    return Order(
        order_id=order_id,
        buyer_id=raw_buyer(raw) or buyer_id,
        status=status,
        items=items,
        total=total,
        created_at=created,
        paid_at=as_time(raw.get("pay_time")) if status != OrderStatus.UNPAID else None,
        delivered_at=delivered_at,
        shipment=shipment,
        recipient=parse_recipient(raw),
    )


AFTER_SALE_TYPES = {
    0: AfterSaleType.RETURN_REFUND,
    1: AfterSaleType.REFUND_ONLY,
    2: AfterSaleType.REFUND_ONLY,  # refund before shipping
    3: AfterSaleType.EXCHANGE,
}
# after_sale_status → (machine status, what the customer reads)
AFTER_SALE_STATUSES: dict[int, tuple[str, str]] = {
    6: ("applied", "售后申请已提交，等待商家处理"),
    7: ("awaiting_return", "商家已同意退货，请按退货地址寄回商品"),
    11: ("return_shipped", "退货已寄出，等待商家收货"),
    12: ("success", "售后成功"),
    27: ("rejected", "商家已拒绝售后申请"),
    28: ("failed", "售后失败"),
    29: ("return_refused", "商家拒绝收货"),
    51: ("cancelled", "售后已取消"),
    53: ("completed", "售后已完成"),
}
FINAL_AFTER_SALE_STATUSES = (27, 28, 29, 51)
REFUND_STATUSES: dict[int, tuple[str, str, str]] = {
    2: ("refunding", "退款处理中", "预计1-3个工作日内退回原支付账户"),
    3: ("refunded", "退款成功", "已原路退回，到账时间以支付渠道为准"),
    4: ("refund_failed", "退款失败，请联系人工客服处理", ""),
}


def after_sale_state(after_sale_status: Any, refund_status: Any) -> tuple[str, str, str]:
    """(machine status, status words, expected) of an after-sales case.

    A closing status (rejected, failed, return refused, cancelled) wins; otherwise a
    refund in progress / done / failed says most; otherwise the after-sale status.
    """
    status = as_int(after_sale_status)
    refund = as_int(refund_status)
    if status not in FINAL_AFTER_SALE_STATUSES and refund in REFUND_STATUSES:
        return REFUND_STATUSES[refund]
    if status in AFTER_SALE_STATUSES:
        machine, words = AFTER_SALE_STATUSES[status]
        return machine, words, ""
    return "unknown", "售后处理中", ""


def parse_after_sale(
    info: Mapping[str, Any], order_info: Mapping[str, Any] | None = None
) -> AfterSaleCase:
    """A case from ``afterSale.List`` (``aftersale_*`` fields) or ``afterSale.Detail``
    (``after_sale_*`` fields): both spellings are read everywhere."""
    order_info = order_info or {}
    case_type = as_int(pick(info, "after_sale_type", "aftersale_type"), 0)
    machine, words, expected = after_sale_state(
        pick(info, "after_sale_status", "aftersale_status"), info.get("refund_status")
    )
    opened = as_time(pick(info, "apply_time", "create_time"))
    if opened is None:
        raise DoudianParseError("after-sales case without apply_time")
    return AfterSaleCase(
        case_id=as_str_id(pick(info, "after_sale_id", "aftersale_id")),
        order_id=as_str_id(
            pick(order_info, "shop_order_id", "order_id")
            or pick(info, "shop_order_id", "order_id", "related_order_id")
        ),
        case_type=AFTER_SALE_TYPES.get(case_type or 0, AfterSaleType.RETURN_REFUND),
        status=machine,
        status_words=words,
        amount=fen_to_yuan(pick(info, "refund_amount", "apply_amount", "amount")),
        opened_at=opened,
        reason=str(pick(info, "reason", "reason_text", "after_sale_reason", "apply_reason") or ""),
        expected=expected,
    )


def raw_buyer(raw: Mapping[str, Any]) -> str:
    """The buyer's open id of a raw order (empty when the answer does not say)."""
    return as_str_id(pick(raw, "open_id", "doudian_open_id", "buyer_open_id"))
