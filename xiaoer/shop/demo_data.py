"""The demo shop's records (../shared/spec/demo-shop.md), relative to the seeding time D."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

RECIPIENT = ("张三", "13800000000", "广东省广州市天河区体育西路100号")

# "traits" (an addition to the spec's records): yes/no facts for attribute questions,
# xiaoer/shop/attributes.py; a trait not listed is answered "not sure, I'll ask".
PRODUCTS: list[dict[str, Any]] = [
    {
        "product_id": "P1001",
        "name": "纯棉短袖T恤",
        "price": "89.00",
        "category": "服装",
        "attributes": {"面料": "100%棉", "洗涤": "可机洗", "版型": "常规款，略偏小"},
        "fit_note": "版型略偏小，两个尺码之间建议选大一码",
        "traits": {
            "pure_cotton": {"answer": "yes", "note": "面料是100%棉"},
            "machine_washable": {"answer": "yes", "note": "可以机洗，建议翻面冷水洗"},
            "waterproof": {"answer": "no", "note": "纯棉面料，不防水"},
        },
        "synonyms": ["T恤", "短袖", "短袖T恤", "纯棉T恤", "体恤", "半袖"],
        "variants": [
            *[("白色", s, 30, None) for s in ("S", "M", "L", "XL", "XXL")],
            ("黑色", "M", 0, 10),
            ("黑色", "L", 12, None),
            ("黑色", "XL", 12, None),
            ("灰色", "L", 8, None),
            ("灰色", "XL", 8, None),
        ],
        "size_chart": [
            ("S", 155, 160, 40, 50),
            ("M", 160, 167, 50, 57.5),
            ("L", 167, 173, 57.5, 65),
            ("XL", 173, 178, 65, 75),
            ("XXL", 178, 185, 75, 85),
        ],
    },
    {
        "product_id": "P1002",
        "name": "男士轻量跑步鞋",
        "price": "299.00",
        "category": "鞋靴",
        "attributes": {"鞋面": "透气网面", "鞋底": "橡胶底", "尺码": "标准码，按平时尺码选"},
        "fit_note": "尺码标准，按平时穿的码数选即可",
        "traits": {
            "breathable": {"answer": "yes", "note": "透气网面鞋面"},
            "waterproof": {"answer": "no", "note": "网面透气款，不防水"},
        },
        "synonyms": ["跑步鞋", "跑鞋", "运动鞋", "鞋子"],
        "variants": [
            *[("黑色", str(s), 10, None) for s in range(39, 45)],
            *[("白色", str(s), 5, None) for s in range(40, 44)],
        ],
        "size_chart": [],
    },
    {
        "product_id": "P1003",
        "name": "陶瓷马克杯",
        "price": "39.90",
        "category": "家居",
        "attributes": {"材质": "陶瓷", "容量": "350ml", "清洗": "可用洗碗机"},
        "traits": {
            "dishwasher_safe": {"answer": "yes", "note": "陶瓷材质，可以放洗碗机清洗"},
        },
        "fit_note": None,
        "synonyms": ["马克杯", "杯子", "陶瓷杯", "水杯"],
        "variants": [("白色", None, 200, None)],
        "size_chart": [],
    },
    {
        "product_id": "P1004",
        "name": "儿童防水雨衣",
        "price": "69.00",
        "category": "童装",
        "attributes": {"面料": "防水PU", "适合年龄": "3-8岁"},
        "fit_note": "按孩子身高选码",
        "traits": {
            "waterproof": {"answer": "yes", "note": "防水PU面料"},
            "pure_cotton": {"answer": "no", "note": "面料是防水PU"},
        },
        "synonyms": ["雨衣", "儿童雨衣", "雨披"],
        "variants": [
            *[("黄色", s, 20, None) for s in ("100", "110", "120", "130")],
            ("蓝色", "110", 0, None),
            ("蓝色", "120", 0, None),
        ],
        "size_chart": [
            ("100", 90, 100, None, None),
            ("110", 100, 110, None, None),
            ("120", 110, 120, None, None),
            ("130", 120, 130, None, None),
        ],
    },
]

BUYERS = [("buyer_demo_001", True), ("buyer_demo_002", False)]


def orders(d: datetime) -> list[dict[str, Any]]:
    """Orders with every time relative to the seeding moment ``d``."""
    days = lambda n: d - timedelta(days=n)  # noqa: E731
    return [
        {
            "order_id": "6938271045123400001",
            "buyer_id": "buyer_demo_001",
            "status": "paid",
            "items": [("P1001", "白色", "L", 1, "89.00")],
            "total": "89.00",
            "created_at": days(3),
            "paid_at": days(3),
        },
        {
            "order_id": "6938271045123400002",
            "buyer_id": "buyer_demo_001",
            "status": "shipped",
            "items": [("P1002", "黑色", "42", 1, "299.00")],
            "total": "299.00",
            "created_at": days(3),
            "paid_at": days(3),
            "shipped_at": days(2),
            "courier": "顺丰速运",
            "tracking_no": "SF1234567890123",
            "traces": [
                (days(2), "【杭州余杭营业部】已揽收"),
                (days(1.6), "【杭州转运中心】已到达"),
                (days(1), "【杭州转运中心】已发出，下一站【广州转运中心】"),
            ],
        },
        {
            "order_id": "6938271045123400003",
            "buyer_id": "buyer_demo_001",
            "status": "delivered",
            "items": [("P1003", "白色", None, 2, "39.90")],
            "total": "79.80",
            "created_at": days(7),
            "paid_at": days(7),
            "shipped_at": days(6),
            "delivered_at": days(3),
            "courier": "中通快递",
            "tracking_no": "75312345678901",
            "traces": [
                (days(6), "【杭州】已揽收"),
                (days(4), "【广州天河区】派送中"),
                (days(3), "【广州天河区】已签收，签收人：本人"),
            ],
        },
        {
            "order_id": "6938271045123400004",
            "buyer_id": "buyer_demo_001",
            "status": "unpaid",
            "items": [("P1004", "黄色", "110", 1, "69.00")],
            "total": "69.00",
            "created_at": d - timedelta(hours=1),
        },
        {
            "order_id": "6938271045123400005",
            "buyer_id": "buyer_demo_001",
            "status": "completed",
            "items": [("P1001", "黑色", "XL", 1, "89.00")],
            "total": "89.00",
            "created_at": days(45),
            "paid_at": days(45),
            "shipped_at": days(44),
            "delivered_at": days(40),
            "courier": "圆通速递",
            "tracking_no": "YT1111222233334",
            "traces": [
                (days(44), "【杭州】已揽收"),
                (days(40), "【广州天河区】已签收，签收人：本人"),
            ],
        },
        {
            "order_id": "6938271045123400006",
            "buyer_id": "buyer_demo_002",
            "status": "shipped",
            "items": [("P1001", "灰色", "XL", 1, "89.00")],
            "total": "89.00",
            "created_at": days(2),
            "paid_at": days(2),
            "shipped_at": days(1),
            "courier": "圆通速递",
            "tracking_no": "YT9876543210987",
            "traces": [
                (days(1), "【杭州】已揽收"),
                (d - timedelta(hours=2), "【广州白云区】派送中"),
            ],
        },
        {
            "order_id": "6938271045123400007",
            "buyer_id": "buyer_demo_001",
            "status": "delivered",
            "items": [("P1002", "白色", "41", 1, "299.00")],
            "total": "299.00",
            "created_at": days(5),
            "paid_at": days(5),
            "shipped_at": days(4),
            "delivered_at": days(2),
            "courier": "中通快递",
            "tracking_no": "75300000000007",
            "traces": [
                (days(4), "【杭州】已揽收"),
                (days(2), "【广州天河区】已签收，签收人：本人"),
            ],
        },
        # extra records (not in the spec's list) so that every after-sales path has an order
        {
            "order_id": "6938271045123400008",
            "buyer_id": "buyer_demo_002",
            "status": "delivered",
            "items": [("P1003", "白色", None, 1, "39.90")],
            "total": "39.90",
            "created_at": days(4),
            "paid_at": days(4),
            "shipped_at": days(3),
            "delivered_at": days(1),
            "courier": "圆通速递",
            "tracking_no": "YT5555666677778",
            "traces": [
                (days(3), "【杭州】已揽收"),
                (days(1), "【广州白云区】已签收，签收人：本人"),
            ],
        },
        {
            "order_id": "6938271045123400009",
            "buyer_id": "buyer_demo_002",
            "status": "delivered",
            "items": [("P1001", "白色", "M", 1, "89.00")],
            "total": "89.00",
            "created_at": days(4),
            "paid_at": days(4),
            "shipped_at": days(3),
            "delivered_at": days(1),
            "courier": "中通快递",
            "tracking_no": "75300000000009",
            "traces": [
                (days(3), "【杭州】已揽收"),
                (days(1), "【广州白云区】已签收，签收人：本人"),
            ],
        },
    ]


def after_sales(d: datetime) -> list[dict[str, Any]]:
    return [
        {
            "case_id": "AS20261101",
            "order_id": "6938271045123400003",
            "case_type": "return_refund",
            "status": "refunding",
            "status_words": f"退款处理中：退货已于{(d - timedelta(days=1)):%m月%d日}入库",
            "amount": "39.90",
            "opened_at": d - timedelta(days=2),
            "reason": "质量问题：一个杯子有裂痕",
            "expected": "预计1-3个工作日内退回原支付账户",
        }
    ]
