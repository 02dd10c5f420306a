"""The shop backend interface on the embedded SQLite demo shop."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from xiaoer.core.clock import BEIJING
from xiaoer.core.config import load_settings
from xiaoer.shop.backend import BackendUnavailable, GuardedBackend
from xiaoer.shop.factory import create_backend
from xiaoer.shop.models import OrderStatus
from xiaoer.shop.sqlite_backend import seed_demo_shop

D = datetime(2026, 11, 1, 12, 0, tzinfo=BEIJING)


@pytest.fixture()
def backend(tmp_path):
    path = tmp_path / "shop.db"
    seed_demo_shop(path, now=D)
    settings = dataclasses.replace(load_settings(), sqlite_path=path)
    return create_backend(settings)


async def test_orders_match_the_demo_shop(backend):
    shipped = await backend.get_order("6938271045123400002")
    assert shipped.status == OrderStatus.SHIPPED
    assert shipped.shipment.courier == "顺丰速运"
    assert shipped.shipment.tracking_no == "SF1234567890123"
    assert shipped.shipment.latest_trace.text == "【杭州转运中心】已发出，下一站【广州转运中心】"
    assert shipped.total == Decimal("299.00")
    assert shipped.items[0].label == "男士轻量跑步鞋（黑色 42）×1"

    paid = await backend.get_order("6938271045123400001")
    assert paid.status == OrderStatus.PAID and paid.shipment is None
    assert paid.paid_at == D - timedelta(days=3)
    assert paid.is_overdue(48, now=D)
    assert paid.recipient.name == "张三"

    unpaid = await backend.get_order("6938271045123400004")
    assert unpaid.status == OrderStatus.UNPAID and unpaid.created_at == D - timedelta(hours=1)
    assert (await backend.get_order("6938271045123400003")).status == OrderStatus.DELIVERED
    assert (await backend.get_order("6938271045123400005")).status == OrderStatus.COMPLETED
    latest = (await backend.get_order("6938271045123400006")).shipment.latest_trace
    assert latest.text == "【广州白云区】派送中"
    assert await backend.get_order("1234567890123456") is None


async def test_orders_by_buyer_newest_first(backend):
    orders = await backend.orders_by_buyer("buyer_demo_001")
    assert [o.order_id[-3:] for o in orders] == ["004", "002", "001", "007", "003", "005"]
    assert [o.order_id[-3:] for o in await backend.orders_by_buyer("buyer_demo_002")] == [
        "006",
        "009",
        "008",
    ]
    assert await backend.orders_by_buyer("nobody") == []


async def test_buyers(backend):
    assert (await backend.get_buyer("buyer_demo_001")).returning is True
    assert (await backend.get_buyer("buyer_demo_002")).returning is False
    assert await backend.get_buyer("nobody") is None


async def test_products_variants_and_size_charts(backend):
    products = await backend.list_products()
    assert [p.product_id for p in products] == ["P1001", "P1002", "P1003", "P1004"]
    tee = await backend.get_product("P1001")
    assert tee.price == Decimal("89.00")
    black_m = next(v for v in tee.variants if v.color == "黑色" and v.size == "M")
    assert black_m.stock == 0 and black_m.restock_date == D + timedelta(days=10)
    assert sum(v.stock for v in tee.variants if v.color == "白色") == 150
    assert (await backend.get_product("P1003")).return_insurance is False
    assert (await backend.get_product("P1002")).return_insurance is True
    assert await backend.get_product("P9999") is None

    chart = await backend.get_size_chart("P1001")
    assert [(r.size, r.height_min, r.height_max) for r in chart.rows][2] == ("L", 167, 173)
    assert [r.size for r in (await backend.get_size_chart("P1004")).rows] == [
        "100",
        "110",
        "120",
        "130",
    ]
    assert await backend.get_size_chart("P1003") is None


async def test_after_sales(backend):
    cases = await backend.after_sales_for_order("6938271045123400003")
    assert [c.case_id for c in cases] == ["AS20261101"]
    case = await backend.get_after_sale("AS20261101")
    assert case.amount == Decimal("39.90") and case.status == "refunding"
    assert case.opened_at == D - timedelta(days=2)
    assert await backend.after_sales_for_order("6938271045123400007") == []
    assert await backend.get_after_sale("AS0") is None


async def test_policies_come_from_the_settings_file(backend):
    policies = backend.policies()
    assert policies.shop_name == "小二优选旗舰店"
    assert policies.ship_within_hours == 48
    assert policies.surcharge_regions == ("新疆", "西藏", "青海")
    assert not policies.has_return_insurance("P1003")
    assert policies.agents_on_duty(D.replace(hour=10)) and not policies.agents_on_duty(
        D.replace(hour=23)
    )


def test_seeding_is_idempotent(tmp_path):
    path = tmp_path / "shop.db"
    assert seed_demo_shop(path, now=D) is True
    assert seed_demo_shop(path) is False
    assert seed_demo_shop(path, reset=True) is True


async def test_missing_database_is_reported_as_unavailable(backend):
    backend.inner.path.unlink()
    with pytest.raises(BackendUnavailable):
        await backend.get_order("6938271045123400001")


async def test_slow_backend_times_out(backend):
    class Slow(type(backend.inner)):
        async def get_order(self, order_id):
            await asyncio.sleep(5)

    slow = Slow(backend.inner.path, backend.policies())
    guarded = GuardedBackend(slow, timeout=0.2)
    with pytest.raises(BackendUnavailable):
        await guarded.get_order("6938271045123400001")


def test_unknown_backend_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown shop backend"):
        create_backend(dataclasses.replace(load_settings(), backend_type="nosuch"))
