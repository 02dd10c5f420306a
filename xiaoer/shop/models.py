"""The shop's domain model, shared by every backend (SQLite demo shop, Doudian API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from xiaoer.core.clock import BEIJING, now_beijing  # noqa: F401  (the backends' clock)


class OrderStatus(str, Enum):
    UNPAID = "unpaid"
    PAID = "paid"  # paid, waiting to be shipped
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def words(self) -> str:
        return ORDER_STATUS_WORDS[self]


ORDER_STATUS_WORDS = {
    OrderStatus.UNPAID: "待支付",
    OrderStatus.PAID: "待发货",
    OrderStatus.SHIPPED: "已发货",
    OrderStatus.DELIVERED: "已签收",
    OrderStatus.COMPLETED: "已完成",
    OrderStatus.CANCELLED: "已取消",
}


@dataclass(frozen=True)
class Trace:
    time: datetime
    text: str


@dataclass(frozen=True)
class Shipment:
    courier: str
    tracking_no: str
    shipped_at: datetime | None = None
    traces: tuple[Trace, ...] = ()

    @property
    def latest_trace(self) -> Trace | None:
        return max(self.traces, key=lambda t: t.time) if self.traces else None


@dataclass(frozen=True)
class Recipient:
    name: str
    phone: str
    address: str


@dataclass(frozen=True)
class OrderItem:
    product_id: str
    product_name: str
    color: str | None
    size: str | None
    quantity: int
    unit_price: Decimal

    @property
    def label(self) -> str:
        variant = " ".join(v for v in (self.color, self.size) if v)
        return (
            f"{self.product_name}（{variant}）×{self.quantity}"
            if variant
            else (f"{self.product_name} ×{self.quantity}")
        )


@dataclass(frozen=True)
class Order:
    order_id: str
    buyer_id: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    total: Decimal
    created_at: datetime
    paid_at: datetime | None = None
    delivered_at: datetime | None = None
    shipment: Shipment | None = None
    recipient: Recipient | None = None

    @property
    def summary(self) -> str:
        return "、".join(item.label for item in self.items)

    def ship_deadline(self, within_hours: int) -> datetime | None:
        return self.paid_at + timedelta(hours=within_hours) if self.paid_at else None

    def is_overdue(self, within_hours: int, now: datetime | None = None) -> bool:
        deadline = self.ship_deadline(within_hours)
        return bool(
            self.status == OrderStatus.PAID and deadline and (now or now_beijing()) > deadline
        )


@dataclass(frozen=True)
class Variant:
    color: str
    size: str | None
    stock: int
    restock_date: datetime | None = None


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    price: Decimal
    category: str
    variants: tuple[Variant, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    fit_note: str | None = None
    return_insurance: bool = True
    synonyms: tuple[str, ...] = ()
    # yes/no facts for attribute questions: {trait: {"answer": yes|no|unknown, "note": ...}}
    # (xiaoer/shop/attributes.py); a trait not listed is unknown
    traits: dict[str, Any] = field(default_factory=dict)

    @property
    def colors(self) -> list[str]:
        return list(dict.fromkeys(v.color for v in self.variants))

    @property
    def sizes(self) -> list[str]:
        return list(dict.fromkeys(v.size for v in self.variants if v.size))


@dataclass(frozen=True)
class SizeRow:
    size: str
    height_min: float
    height_max: float
    weight_min: float | None = None
    weight_max: float | None = None


@dataclass(frozen=True)
class SizeChart:
    product_id: str
    rows: tuple[SizeRow, ...]


class AfterSaleType(str, Enum):
    RETURN_REFUND = "return_refund"
    REFUND_ONLY = "refund_only"
    EXCHANGE = "exchange"

    @property
    def words(self) -> str:
        return {"return_refund": "退货退款", "refund_only": "仅退款", "exchange": "换货"}[
            self.value
        ]


@dataclass(frozen=True)
class AfterSaleCase:
    case_id: str
    order_id: str
    case_type: AfterSaleType
    status: str  # machine status, e.g. "refunding"
    status_words: str  # what the customer reads
    amount: Decimal
    opened_at: datetime
    reason: str = ""
    expected: str = ""  # e.g. "1-3个工作日内退回原支付账户"


@dataclass(frozen=True)
class AfterSaleRequest:
    """What the customer asked for, collected by the after-sales form."""

    order_id: str
    case_type: AfterSaleType
    reason: str
    amount: Decimal
    photo_url: str | None = None
    wanted_color: str | None = None  # exchange: the variant wanted
    wanted_size: str | None = None


@dataclass(frozen=True)
class Buyer:
    buyer_id: str
    returning: bool
