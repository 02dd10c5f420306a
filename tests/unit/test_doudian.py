"""The Doudian (抖店) open-API client and backend, against the local fake."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from xiaoer.core.clock import BEIJING
from xiaoer.core.config import load_settings
from xiaoer.doudian.backend import DoudianShopBackend
from xiaoer.doudian.client import DoudianClient, DoudianConfig
from xiaoer.doudian.fake import FakeDoudian, running_fake_doudian
from xiaoer.doudian.parsing import after_sale_state, parse_after_sale, parse_order, parse_traces
from xiaoer.doudian.protocol import (
    DoudianApiError,
    DoudianConfigError,
    DoudianParseError,
    DoudianUnavailable,
    as_bool,
    as_int,
    as_str_id,
    as_time,
    encode_params,
    fen_to_yuan,
    format_timestamp,
    parse_envelope,
    parse_timestamp,
    sign,
)
from xiaoer.doudian.store import OrderChangeLog, invalidate_order
from xiaoer.shop.backend import (
    BackendUnavailable,
    GuardedBackend,
    NotSupportedByBackend,
)
from xiaoer.shop.models import AfterSaleRequest, AfterSaleType, OrderStatus, Recipient
from xiaoer.shop.policies import ShopPolicies
from xiaoer.shop.sqlite_backend import SqliteShopBackend, seed_demo_shop

D = datetime(2026, 11, 1, 12, 0, tzinfo=BEIJING)
SHIPPED = "6938271045123400002"
DELIVERED = "6938271045123400003"
UNPAID = "6938271045123400004"


# --- fixtures -----------------------------------------------------------------------
@pytest.fixture()
def fake():
    with running_fake_doudian(now=D) as server:
        yield server


def make_config(fake: FakeDoudian, **overrides) -> DoudianConfig:
    values = dict(
        base_url=fake.base_url,
        app_key=fake.app_key,
        app_secret=fake.app_secret,
        access_token=fake.access_token,
        timeout_seconds=1.0,
        retries=2,
        backoff_seconds=0.01,
    )
    values.update(overrides)
    return DoudianConfig(**values)


@pytest.fixture()
async def make_backend(fake, tmp_path):
    made: list[DoudianShopBackend] = []
    policies = ShopPolicies.from_settings(load_settings().shop)
    shop_db = tmp_path / "shop.db"
    seed_demo_shop(shop_db, now=D)

    def build(**overrides) -> DoudianShopBackend:
        backend = DoudianShopBackend(
            make_config(fake, **overrides),
            policies,
            SqliteShopBackend(shop_db, policies),
            OrderChangeLog(tmp_path / "xiaoer.db"),
        )
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()


@pytest.fixture()
def backend(make_backend):
    return make_backend()


# --- signing ------------------------------------------------------------------------
def test_param_json_is_sorted_compact_utf8_and_not_html_escaped():
    params = {"size": 10, "b": {"z": 1, "a": "<黑色&白色>"}, "a": [3, 1]}
    assert encode_params(params) == '{"a":[3,1],"b":{"a":"<黑色&白色>","z":1},"size":10}'


def test_signature_vectors_both_methods_and_both_timestamp_formats():
    key, secret, method = "app_key_123", "app_secret_123", "order.orderDetail"
    param_json = '{"shop_order_id":"6938271045123400002"}'
    for timestamp in ("1700000000", "2023-11-15 06:13:20"):
        text = (
            secret
            + "app_key"
            + key
            + "method"
            + method
            + "param_json"
            + param_json
            + "timestamp"
            + timestamp
            + "v"
            + "2"
            + secret
        ).encode()
        expected_hmac = hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()
        expected_md5 = hashlib.md5(text).hexdigest()
        assert sign(key, secret, method, param_json, timestamp) == expected_hmac
        assert sign(key, secret, method, param_json, timestamp, "md5") == expected_md5
    # the same vectors written out, so that a change of the formula cannot go unnoticed
    assert (
        sign(key, secret, method, param_json, "1700000000")
        == "419b3d0d34db8b7909e3e5a0ee21ac2cd575263e5f73fdb95d2730afcaa30bb8"
    )
    assert sign(key, secret, method, param_json, "1700000000", "md5") == (
        "fe8254ff50da79b7eecb1a7668f3d08a"
    )
    assert sign(key, secret, method, param_json, "2023-11-15 06:13:20", "md5") == (
        "3115eebb0d87b15dee938c5cc1313866"
    )
    with pytest.raises(DoudianConfigError):
        sign(key, secret, method, param_json, "1700000000", "sha1")


def test_timestamp_formats():
    assert format_timestamp(1700000000.9, "unix") == "1700000000"
    # 2023-11-14 22:13:20 UTC is 2023-11-15 06:13:20 in Beijing
    assert format_timestamp(1700000000, "datetime") == "2023-11-15 06:13:20"
    assert parse_timestamp("2023-11-15 06:13:20") == 1700000000
    assert parse_timestamp("1700000000") == 1700000000
    assert parse_timestamp("yesterday") is None
    with pytest.raises(DoudianConfigError):
        format_timestamp(0, "iso")


def test_signed_query_carries_every_field(fake):
    client = DoudianClient(
        make_config(fake, sign_method="md5", timestamp_format="datetime"),
        clock=lambda: 1700000000,
    )
    query = dict(client.signed_query("order.orderDetail", '{"shop_order_id":"1"}'))
    assert query["app_key"] == fake.app_key and query["method"] == "order.orderDetail"
    assert query["timestamp"] == "2023-11-15 06:13:20" and query["v"] == "2"
    assert query["sign_method"] == "md5" and query["access_token"] == fake.access_token
    assert query["sign"] == sign(
        fake.app_key,
        fake.app_secret,
        "order.orderDetail",
        '{"shop_order_id":"1"}',
        "2023-11-15 06:13:20",
        "md5",
    )


@pytest.mark.parametrize("sign_method", ["hmac-sha256", "md5"])
@pytest.mark.parametrize("timestamp_format", ["unix", "datetime"])
async def test_the_fake_accepts_both_sign_methods_and_timestamp_formats(
    make_backend, fake, sign_method, timestamp_format
):
    backend = make_backend(sign_method=sign_method, timestamp_format=timestamp_format)
    order = await backend.get_order(SHIPPED)
    assert order is not None and order.status == OrderStatus.SHIPPED
    assert {c.sign_method for c in fake.calls} == {sign_method}


# --- bad credentials ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"app_secret": "wrong"}, "40003"),
        ({"app_key": "wrong"}, "30001"),
        ({"access_token": "expired"}, "30002"),
    ],
)
async def test_bad_credentials_are_rejected_and_not_retried(make_backend, fake, override, code):
    backend = make_backend(**override)
    with pytest.raises(DoudianApiError) as caught:
        await backend.get_order(SHIPPED)
    assert caught.value.code == code
    assert len(fake.calls) == 1


async def test_a_stale_timestamp_is_rejected(fake):
    for fmt in ("unix", "datetime"):
        client = DoudianClient(
            make_config(fake, timestamp_format=fmt), clock=lambda: time.time() - 600
        )
        with pytest.raises(DoudianApiError) as caught:
            await client.call("order.orderDetail", {"shop_order_id": SHIPPED})
        await client.aclose()
        assert caught.value.code == "40004"
    # four minutes of clock skew are tolerated
    client = DoudianClient(make_config(fake), clock=lambda: time.time() + 240)
    assert await client.call("order.orderDetail", {"shop_order_id": SHIPPED})
    await client.aclose()


async def test_the_fake_checks_param_json_and_accepts_it_as_a_form_field(fake):
    client = DoudianClient(make_config(fake))
    param_json = '{"shop_order_id":"6938271045123400002"}'
    async with aiohttp.ClientSession() as session:
        url = fake.base_url + "/order/orderDetail"
        query = client.signed_query("order.orderDetail", param_json)
        async with session.post(url, params=query, data={"param_json": param_json}) as resp:
            assert parse_envelope(await resp.json()).ok
        unsorted = '{"shop_order_id": "6938271045123400002"}'  # a space: not compact
        query = client.signed_query("order.orderDetail", unsorted)
        async with session.post(url, params=query, data=unsorted.encode()) as resp:
            assert parse_envelope(await resp.json()).code == "40002"
        query = client.signed_query("order.orderDetail", param_json)
        async with session.post(fake.base_url + "/order/searchList", params=query) as resp:
            assert parse_envelope(await resp.json()).code == "40002"  # path ≠ method


# --- every backend method on the demo shop ------------------------------------------------
async def test_orders_match_the_demo_shop(backend):
    shipped = await backend.get_order(SHIPPED)
    assert shipped.status == OrderStatus.SHIPPED and shipped.buyer_id == "buyer_demo_001"
    assert shipped.shipment.courier == "顺丰速运"
    assert shipped.shipment.tracking_no == "SF1234567890123"
    assert shipped.shipment.latest_trace.text == "【杭州转运中心】已发出，下一站【广州转运中心】"
    assert shipped.shipment.latest_trace.time == D - timedelta(days=1)
    assert shipped.shipment.shipped_at == D - timedelta(days=2)
    assert shipped.total == Decimal("299.00")
    assert shipped.items[0].label == "男士轻量跑步鞋（黑色 42）×1"
    assert shipped.items[0].product_id == "P1002"
    assert shipped.recipient == Recipient("张三", "13800000000", "广东省广州市天河区体育西路100号")

    paid = await backend.get_order("6938271045123400001")
    assert paid.status == OrderStatus.PAID and paid.shipment is None
    assert paid.paid_at == D - timedelta(days=3)
    assert paid.is_overdue(48, now=D)

    unpaid = await backend.get_order(UNPAID)
    assert unpaid.status == OrderStatus.UNPAID and unpaid.paid_at is None
    assert unpaid.created_at == D - timedelta(hours=1)
    assert unpaid.total == Decimal("69.00")

    delivered = await backend.get_order(DELIVERED)  # status 3 + a signed-for trace
    assert delivered.order_id == DELIVERED  # the answer wraps it in literal quotes
    assert delivered.status == OrderStatus.DELIVERED
    assert delivered.delivered_at == D - timedelta(days=3)
    assert delivered.total == Decimal("79.80") and delivered.items[0].quantity == 2
    assert delivered.items[0].label == "陶瓷马克杯（白色）×2"

    completed = await backend.get_order("6938271045123400005")
    assert completed.status == OrderStatus.COMPLETED
    assert completed.delivered_at == D - timedelta(days=40)

    other = await backend.get_order("6938271045123400006")
    assert other.buyer_id == "buyer_demo_002" and other.status == OrderStatus.SHIPPED
    assert other.shipment.latest_trace.text == "【广州白云区】派送中"

    receipt = await backend.get_order("6938271045123400007")  # status 3 + receipt_time
    assert receipt.status == OrderStatus.DELIVERED
    assert receipt.delivered_at == D - timedelta(days=2)

    assert await backend.get_order("1234567890123456") is None
    assert await backend.get_order("") is None


async def test_orders_by_buyer_newest_first(backend, fake):
    orders = await backend.orders_by_buyer("buyer_demo_001")
    assert [o.order_id[-3:] for o in orders] == ["004", "002", "001", "007", "003", "005"]
    assert [o.status for o in orders][:3] == [
        OrderStatus.UNPAID,
        OrderStatus.SHIPPED,
        OrderStatus.PAID,
    ]
    assert all(o.buyer_id == "buyer_demo_001" for o in orders)
    theirs = [o.order_id[-3:] for o in await backend.orders_by_buyer("buyer_demo_002")]
    assert theirs[0] == "006" and sorted(theirs) == ["006", "008", "009"]
    assert await backend.orders_by_buyer("nobody") == []
    assert len(await backend.orders_by_buyer("buyer_demo_001", limit=2)) == 2
    search = fake.calls_of("order.searchList")[0]
    assert search.params["open_id"] == "buyer_demo_001"


async def test_orders_by_buyer_pages_through_has_more_strings(make_backend, fake):
    backend = make_backend(page_size=2)
    orders = await backend.orders_by_buyer("buyer_demo_001", limit=10)
    assert len(orders) == 6
    assert [c.params["page"] for c in fake.calls_of("order.searchList")] == [0, 1, 2]


async def test_a_buyer_never_sees_someone_elses_orders(tmp_path):
    # a shop whose search ignores the buyer parameter: the answers' open ids decide
    with running_fake_doudian(now=D, buyer_param="buyer_open_id") as fake:
        policies = ShopPolicies.from_settings(load_settings().shop)
        backend = DoudianShopBackend(
            make_config(fake), policies, SqliteShopBackend(tmp_path / "shop.db", policies)
        )
        orders = await backend.orders_by_buyer("buyer_demo_002")
        assert sorted(o.order_id[-3:] for o in orders) == ["006", "008", "009"]
        assert (await backend.get_buyer("buyer_demo_002")).returning is False
        await backend.aclose()


async def test_buyers_returning_when_they_have_a_completed_order(backend):
    assert (await backend.get_buyer("buyer_demo_001")).returning is True
    assert (await backend.get_buyer("buyer_demo_002")).returning is False
    assert await backend.get_buyer("nobody") is None


async def test_products_and_size_charts_come_from_the_local_catalogue(backend):
    assert [p.product_id for p in await backend.list_products()] == [
        "P1001",
        "P1002",
        "P1003",
        "P1004",
    ]
    tee = await backend.get_product("P1001")
    assert tee.price == Decimal("89.00") and "白色" in tee.colors
    assert (await backend.get_product("P1003")).return_insurance is False
    chart = await backend.get_size_chart("P1001")
    assert [(r.size, r.height_min, r.height_max) for r in chart.rows][2] == ("L", 167, 173)
    assert await backend.get_size_chart("P1003") is None
    assert backend.policies().shop_name == "小二优选旗舰店"


async def test_after_sales(backend, fake):
    cases = await backend.after_sales_for_order(DELIVERED)
    assert [c.case_id for c in cases] == ["AS20261101"]
    case = cases[0]
    assert case.order_id == DELIVERED and case.case_type == AfterSaleType.RETURN_REFUND
    assert case.amount == Decimal("39.90") and case.status == "refunding"
    assert case.status_words.startswith("退款处理中")
    assert case.opened_at == D - timedelta(days=2)
    assert case.reason == "质量问题：一个杯子有裂痕"
    assert fake.calls_of("afterSale.List")[0].params["order_id"] == DELIVERED

    detail = await backend.get_after_sale("AS20261101")
    assert detail == case
    assert fake.calls_of("afterSale.Detail")[0].params == {"after_sale_id": "AS20261101"}
    assert await backend.after_sales_for_order("6938271045123400007") == []
    assert await backend.get_after_sale("AS0") is None


async def test_changes_are_not_possible_for_a_buyer(backend):
    with pytest.raises(NotSupportedByBackend):
        await backend.cancel_order(UNPAID)
    with pytest.raises(NotSupportedByBackend):
        await backend.update_address(UNPAID, Recipient("张三", "13800000000", "北京"))
    request = AfterSaleRequest(
        "6938271045123400007", AfterSaleType.RETURN_REFUND, "不想要了", Decimal("299.00")
    )
    with pytest.raises(NotSupportedByBackend):
        await backend.create_after_sale(request)


# --- answer shapes ------------------------------------------------------------------
def test_envelopes_in_every_shape():
    ok = parse_envelope({"code": 10000, "msg": "success", "data": {"a": 1}})
    assert ok.ok and ok.data == {"a": 1}
    assert parse_envelope({"code": "10000", "err_no": 0, "message": "success"}).ok
    assert parse_envelope({"err_no": 0, "message": "success", "data": '{"a": 2}'}).data == {"a": 2}
    err = parse_envelope(
        {"code": 50002, "msg": "业务处理失败", "sub_code": "isv.x", "sub_msg": "订单不存在"}
    )
    assert not err.ok and err.code == "50002" and err.sub_msg == "订单不存在"
    old = parse_envelope({"err_no": 30002, "message": "access_token已过期"})
    assert not old.ok and old.code == "30002" and old.msg == "access_token已过期"
    assert not parse_envelope({"code": "10000", "err_no": 7, "message": "boom"}).ok
    assert parse_envelope({"data": {}}) is None
    assert parse_envelope(["not", "a", "dict"]) is None


def test_defensive_values():
    assert as_str_id('"6938271045123400003"') == "6938271045123400003"
    assert as_str_id(6938271045123400003) == "6938271045123400003"
    assert as_str_id(" '\"AS1\"' ") == "AS1"
    assert as_int("10000") == 10000 and as_int('"3"') == 3 and as_int("x", 0) == 0
    assert as_bool("true") and as_bool("1") and as_bool(1) and not as_bool("false")
    assert not as_bool(None) and not as_bool("0")
    assert fen_to_yuan("3990") == Decimal("39.90") and fen_to_yuan(8900) == Decimal("89.00")
    assert as_time(0) is None and as_time("") is None
    assert as_time("1700000000") == as_time(1700000000) == as_time(1700000000000)
    assert as_time("2023-11-15 06:13:20") == as_time(1700000000)


def test_both_route_list_spellings():
    node = {"content": "【杭州】已揽收", "timestamp": "1700000000"}
    later = {"content": "【广州】派送中", "timestamp": 1700003600}
    for key in ("route_node_list", "route__node_list"):
        traces = parse_traces({key: [later, node]})
        assert [t.text for t in traces] == ["【杭州】已揽收", "【广州】派送中"]
    nested = parse_traces(
        {"track_info": {"route_node_list": [{"content": "x", "time": "2023-11-15 06:13:20"}]}}
    )
    assert nested[0].time == as_time(1700000000)
    assert parse_traces({}) == ()


def _raw_order(status, **extra):
    raw = {
        "order_id": "1",
        "order_status": status,
        "create_time": 1700000000,
        "pay_time": 1700000100,
        "order_amount": "8900",
        "sku_order_list": [
            {
                "product_name": "纯棉短袖T恤",
                "out_product_id": "P1001",
                "item_num": "1",
                "origin_amount": 8900,
                "spec": [{"name": "颜色", "value": "白色"}, {"name": "尺码", "value": "L"}],
            }
        ],
    }
    raw.update(extra)
    return raw


def test_order_status_mapping():
    expected = {
        1: OrderStatus.UNPAID,
        105: OrderStatus.PAID,
        2: OrderStatus.PAID,
        101: OrderStatus.SHIPPED,
        3: OrderStatus.SHIPPED,
        4: OrderStatus.CANCELLED,
        5: OrderStatus.COMPLETED,
    }
    for code, status in expected.items():
        assert parse_order(_raw_order(code)).status == status
        assert parse_order(_raw_order(str(code))).status == status
    order = parse_order(_raw_order(2))
    assert order.items[0].unit_price == Decimal("89.00") and order.items[0].size == "L"
    with pytest.raises(DoudianParseError):
        parse_order(_raw_order(999))
    # shipped + a receipt time → delivered; a signed-for route → delivered
    assert parse_order(_raw_order(3, receipt_time=1700009999)).status == OrderStatus.DELIVERED
    parcel = [{"tracking_no": "T1", "company": "zhongtong", "company_name": "中通快递"}]
    signed = parse_traces(
        {"route_node_list": [{"content": "已签收，签收人：本人", "timestamp": 2e9}]}
    )
    pending = parse_traces({"route_node_list": [{"content": "派送中，待签收", "timestamp": 2e9}]})
    assert (
        parse_order(_raw_order(101, logistics_info=parcel), signed).status == OrderStatus.DELIVERED
    )
    assert parse_order(_raw_order(3, logistics_info=parcel), pending).status == OrderStatus.SHIPPED
    # encrypted receiver fields fall back to the masked ones
    masked = parse_order(
        _raw_order(
            2,
            post_receiver="#Fn3u#abc#",
            post_tel="$abc$",
            mask_post_receiver="张*",
            mask_post_tel="138****0000",
            mask_post_addr={"province": {"name": "广东省"}, "detail": "体育****"},
        )
    )
    assert masked.recipient == Recipient("张*", "138****0000", "广东省体育****")


def test_after_sale_mapping():
    assert after_sale_state(6, 1)[:2] == ("applied", "售后申请已提交，等待商家处理")
    assert after_sale_state("12", "2") == (
        "refunding",
        "退款处理中",
        "预计1-3个工作日内退回原支付账户",
    )
    assert after_sale_state(12, 3)[:2] == ("refunded", "退款成功")
    assert after_sale_state(27, 2)[:2] == ("rejected", "商家已拒绝售后申请")
    assert after_sale_state(51, 0)[:2] == ("cancelled", "售后已取消")
    assert after_sale_state(7, 0)[0] == "awaiting_return"
    assert after_sale_state(999, None)[0] == "unknown"
    listed = parse_after_sale(
        {"aftersale_id": 1, "aftersale_type": "1", "aftersale_status": 6, "apply_time": 1},
        {"shop_order_id": 42},
    )
    assert (listed.case_id, listed.order_id, listed.case_type) == (
        "1",
        "42",
        AfterSaleType.REFUND_ONLY,
    )
    exchange = parse_after_sale({"after_sale_id": "2", "after_sale_type": 3, "apply_time": 1})
    assert exchange.case_type == AfterSaleType.EXCHANGE


# --- faults -------------------------------------------------------------------------
async def test_a_slow_answer_becomes_unavailable_through_the_guard(backend, fake):
    fake.inject("order.orderDetail", delay=2)
    guarded = GuardedBackend(backend, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await guarded.get_order(SHIPPED)
    assert time.monotonic() - started < 1.5


async def test_a_timeout_is_retried_then_unavailable(make_backend, fake, caplog):
    backend = make_backend(timeout_seconds=0.2, retries=1)
    fake.inject("order.orderDetail", delay=1)
    with caplog.at_level(logging.WARNING, logger="xiaoer.doudian.client"):
        with pytest.raises(DoudianUnavailable) as caught:
            await backend.get_order(SHIPPED)
    assert caught.value.attempts == 2 and "timeout" in caught.value.reason
    assert "attempt=1/2" in caplog.text and "giving up" in caplog.text


@pytest.mark.parametrize("status", [500, 502])
async def test_5xx_is_retried_then_unavailable(backend, fake, status):
    fake.inject("order.orderDetail", status=status)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.get_order(SHIPPED)
    assert isinstance(caught.value, DoudianUnavailable)
    assert len(fake.calls_of("order.orderDetail")) == 3  # 1 + retries=2


async def test_one_5xx_then_success_is_retried_and_succeeds(backend, fake):
    fake.inject("order.orderDetail", status=502, times=1)
    order = await backend.get_order(SHIPPED)
    assert order.status == OrderStatus.SHIPPED
    assert [c.outcome for c in fake.calls_of("order.orderDetail")] == ["http 502", "ok"]


async def test_4xx_is_not_retried(backend, fake):
    fake.inject("order.orderDetail", status=404)
    with pytest.raises(DoudianApiError) as caught:
        await backend.get_order(SHIPPED)
    assert caught.value.http_status == 404
    assert len(fake.calls_of("order.orderDetail")) == 1


async def test_a_business_error_is_raised_not_retried(backend, fake):
    fake.inject(
        "afterSale.Detail", error_code=50002, sub_code="isv.business-failed:1", sub_msg="系统繁忙"
    )
    with pytest.raises(DoudianApiError) as caught:
        await backend.get_after_sale("AS20261101")
    assert caught.value.code == "50002" and caught.value.sub_msg == "系统繁忙"
    assert not caught.value.is_not_found
    assert len(fake.calls_of("afterSale.Detail")) == 1
    # through the guard, it is a BackendError like any other
    with pytest.raises(DoudianApiError):
        await GuardedBackend(backend, timeout=2).get_after_sale("AS20261101")


async def test_a_broken_route_still_tells_the_order(backend, fake):
    fake.inject("logistics.trackNoRouteDetail", status=500)
    order = await backend.get_order(SHIPPED)
    assert order.status == OrderStatus.SHIPPED
    assert order.shipment.tracking_no == "SF1234567890123" and order.shipment.traces == ()


async def test_faults_through_the_admin_endpoint(backend, fake):
    async with aiohttp.ClientSession() as session:
        body = {"method": "order.orderDetail", "error_code": 50002, "sub_msg": "x"}
        async with session.post(fake.base_url + "/__fake__/faults", json=body) as resp:
            assert resp.status == 200
        with pytest.raises(DoudianApiError):
            await backend.get_order(SHIPPED)
        async with session.delete(fake.base_url + "/__fake__/faults") as resp:
            assert resp.status == 200
        assert (await backend.get_order(SHIPPED)).status == OrderStatus.SHIPPED
        async with session.get(fake.base_url + "/__fake__/calls") as resp:
            assert [c["outcome"] for c in await resp.json()][:1] == ["error 50002"]


async def test_unreachable_doudian_is_unavailable(tmp_path):
    config = DoudianConfig(
        "http://127.0.0.1:9", "k", "s", "t", timeout_seconds=0.5, retries=1, backoff_seconds=0
    )
    client = DoudianClient(config)
    with pytest.raises(DoudianUnavailable) as caught:
        await client.call("order.orderDetail", {"shop_order_id": "1"})
    await client.aclose()
    assert "connection error" in caught.value.reason


# --- logs ---------------------------------------------------------------------------
async def test_no_secret_token_phone_or_parameter_in_logs(make_backend, fake, caplog):
    backend = make_backend(sign_method="md5")
    caplog.set_level(logging.DEBUG)
    await backend.get_order(SHIPPED)
    await backend.orders_by_buyer("buyer_demo_001")
    fake.inject("order.orderDetail", status=500, times=1)
    await backend.get_order(UNPAID)
    fake.inject("afterSale.Detail", error_code=50002)
    with pytest.raises(DoudianApiError):
        await backend.get_after_sale("AS20261101")
    text = caplog.text + repr(backend) + repr(backend.config) + repr(backend.client)
    assert "order.orderDetail" in caplog.text and "code=10000" in caplog.text
    for secret in (fake.app_secret, fake.access_token, "13800000000", SHIPPED, "buyer_demo_001"):
        assert secret not in text
    signatures = [c.sign for c in fake.calls]
    assert len(signatures) >= 5 and all(s and s not in text for s in signatures)


# --- cache --------------------------------------------------------------------------
async def test_orders_are_cached_briefly_and_invalidated_by_changes(backend, fake, tmp_path):
    await backend.get_order(UNPAID)
    await backend.get_order(UNPAID)
    assert len(fake.calls_of("order.orderDetail")) == 1
    fake.update_order(UNPAID, order_status=4)
    assert (await backend.get_order(UNPAID)).status == OrderStatus.UNPAID  # still cached

    invalidate_order(UNPAID)  # a push message in this process
    assert (await backend.get_order(UNPAID)).status == OrderStatus.CANCELLED
    assert len(fake.calls_of("order.orderDetail")) == 2

    fake.update_order(UNPAID, order_status=1)
    OrderChangeLog(tmp_path / "xiaoer.db").touch(UNPAID)  # a push in another process
    assert (await backend.get_order(UNPAID)).status == OrderStatus.UNPAID
    assert len(fake.calls_of("order.orderDetail")) == 3

    await backend.orders_by_buyer("buyer_demo_002")
    await backend.orders_by_buyer("buyer_demo_002")
    assert len(fake.calls_of("order.searchList")) == 1
    OrderChangeLog(tmp_path / "xiaoer.db").touch("6938271045123400006")
    await backend.orders_by_buyer("buyer_demo_002")
    assert len(fake.calls_of("order.searchList")) == 2


async def test_the_cache_can_be_switched_off(make_backend, fake):
    backend = make_backend(cache_ttl_seconds=0)
    await backend.get_order(UNPAID)
    await backend.get_order(UNPAID)
    assert len(fake.calls_of("order.orderDetail")) == 2


# --- settings -----------------------------------------------------------------------
async def test_from_settings_reads_secrets_from_the_environment(fake, tmp_path, monkeypatch):
    base = load_settings()
    # the base URL of xiaoer.yml, overridden from the environment (as for the fake)
    section = dict(base.doudian, base_url="http://127.0.0.1:9", timestamp_format="datetime")
    monkeypatch.setenv("XIAOER_DOUDIAN_BASE_URL", fake.base_url)
    settings = dataclasses.replace(
        base,
        backend_type="doudian",
        doudian=section,
        data_dir=tmp_path,
        sqlite_path=tmp_path / "shop.db",
    )
    policies = ShopPolicies.from_settings(settings.shop)
    for name in ("XIAOER_DOUDIAN_APP_KEY", "XIAOER_DOUDIAN_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DoudianConfigError, match="XIAOER_DOUDIAN_APP_KEY"):
        DoudianShopBackend.from_settings(settings, policies)

    monkeypatch.setenv("XIAOER_DOUDIAN_APP_KEY", fake.app_key)
    monkeypatch.setenv("XIAOER_DOUDIAN_APP_SECRET", fake.app_secret)
    monkeypatch.setenv("XIAOER_DOUDIAN_ACCESS_TOKEN", fake.access_token)
    inner = DoudianShopBackend.from_settings(settings, policies)
    assert inner.config.sign_method == "hmac-sha256" and inner.config.retries == 2
    assert inner.config.timeout_seconds == 2.5
    assert (tmp_path / "shop.db").exists()  # the local catalogue, seeded
    guarded = GuardedBackend(inner, settings.backend_timeout)
    assert (await guarded.get_order(UNPAID)).status == OrderStatus.UNPAID
    assert (await guarded.get_product("P1002")).name == "男士轻量跑步鞋"
    await inner.aclose()

    bad = dataclasses.replace(settings, doudian=dict(section, sign_method="sha1"))
    with pytest.raises(DoudianConfigError, match="sign_method"):
        DoudianShopBackend.from_settings(bad, policies)


def test_the_fake_serves_the_demo_records_relative_to_its_start():
    fake = FakeDoudian()
    assert abs((fake.d - datetime.now(BEIJING)).total_seconds()) < 5
    assert fake.orders[SHIPPED]["logistics_info"][0]["tracking_no"] == "SF1234567890123"
    assert json.loads(json.dumps(fake.after_sales["AS20261101"]))["refund_amount"] == 3990


async def test_an_order_with_an_unknown_status_is_not_guessed(backend, fake):
    fake.update_order("6938271045123400001", order_status=999)
    with pytest.raises(BackendUnavailable):
        await backend.get_order("6938271045123400001")
    orders = await backend.orders_by_buyer("buyer_demo_001")
    assert [o.order_id[-3:] for o in orders] == ["004", "002", "007", "003", "005"]
