"""The embedded demo shop: a ShopBackend on a local SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from xiaoer.shop import demo_data
from xiaoer.shop.backend import OperationRejected, ShopBackend
from xiaoer.shop.models import (
    AfterSaleCase,
    AfterSaleRequest,
    AfterSaleType,
    Buyer,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    Recipient,
    Shipment,
    SizeChart,
    SizeRow,
    Trace,
    Variant,
    now_beijing,
)
from xiaoer.shop.policies import ShopPolicies

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  product_id TEXT PRIMARY KEY, name TEXT NOT NULL, price_fen INTEGER NOT NULL,
  category TEXT NOT NULL, attributes TEXT NOT NULL, fit_note TEXT, synonyms TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS variants (
  product_id TEXT NOT NULL REFERENCES products, color TEXT NOT NULL, size TEXT,
  stock INTEGER NOT NULL, restock_at TEXT, UNIQUE (product_id, color, size));
CREATE TABLE IF NOT EXISTS size_charts (
  product_id TEXT NOT NULL REFERENCES products, seq INTEGER NOT NULL, size TEXT NOT NULL,
  height_min REAL NOT NULL, height_max REAL NOT NULL, weight_min REAL, weight_max REAL,
  PRIMARY KEY (product_id, seq));
CREATE TABLE IF NOT EXISTS product_traits (
  product_id TEXT NOT NULL REFERENCES products, trait TEXT NOT NULL, answer TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '', PRIMARY KEY (product_id, trait));
CREATE TABLE IF NOT EXISTS buyers (buyer_id TEXT PRIMARY KEY, is_returning INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  order_id TEXT PRIMARY KEY, buyer_id TEXT NOT NULL, status TEXT NOT NULL,
  total_fen INTEGER NOT NULL, created_at TEXT NOT NULL, paid_at TEXT, shipped_at TEXT,
  delivered_at TEXT, courier TEXT, tracking_no TEXT,
  recipient_name TEXT, recipient_phone TEXT, recipient_address TEXT);
CREATE INDEX IF NOT EXISTS orders_by_buyer ON orders (buyer_id, created_at);
CREATE TABLE IF NOT EXISTS order_items (
  order_id TEXT NOT NULL REFERENCES orders, seq INTEGER NOT NULL, product_id TEXT NOT NULL,
  color TEXT, size TEXT, quantity INTEGER NOT NULL, unit_price_fen INTEGER NOT NULL,
  PRIMARY KEY (order_id, seq));
CREATE TABLE IF NOT EXISTS traces (
  tracking_no TEXT NOT NULL, time TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS after_sales (
  case_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, case_type TEXT NOT NULL,
  status TEXT NOT NULL, status_words TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  opened_at TEXT NOT NULL, reason TEXT NOT NULL, expected TEXT NOT NULL);
"""


def _fen(amount: str | Decimal) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _seed_traits(conn: sqlite3.Connection) -> None:
    """Yes/no facts of the demo products (machine washable, dishwasher safe...), once."""
    if conn.execute("SELECT 1 FROM product_traits LIMIT 1").fetchone():
        return
    known = {r[0] for r in conn.execute("SELECT product_id FROM products")}
    conn.executemany(
        "INSERT INTO product_traits VALUES (?,?,?,?)",
        [
            (p["product_id"], trait, fact["answer"], fact.get("note", ""))
            for p in demo_data.PRODUCTS
            if p["product_id"] in known
            for trait, fact in (p.get("traits") or {}).items()
        ],
    )


def seed_demo_shop(path: Path, now: datetime | None = None, reset: bool = False) -> bool:
    """Create the demo shop database. Returns False when it was already seeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if reset and path.exists():
        path.unlink()
    with closing(connect(path)) as conn, conn:
        conn.executescript(SCHEMA)
        if conn.execute("SELECT 1 FROM meta WHERE key = 'seeded_at'").fetchone():
            _seed_traits(conn)  # a shop seeded before product traits existed
            return False
        d = (now or now_beijing()).replace(microsecond=0)
        for p in demo_data.PRODUCTS:
            conn.execute(
                "INSERT INTO products VALUES (?,?,?,?,?,?,?)",
                (
                    p["product_id"],
                    p["name"],
                    _fen(p["price"]),
                    p["category"],
                    json.dumps(p["attributes"], ensure_ascii=False),
                    p["fit_note"],
                    json.dumps(p["synonyms"], ensure_ascii=False),
                ),
            )
            for color, size, stock, restock_days in p["variants"]:
                restock = _iso(d + timedelta(days=restock_days)) if restock_days else None
                conn.execute(
                    "INSERT INTO variants VALUES (?,?,?,?,?)",
                    (p["product_id"], color, size, stock, restock),
                )
            for seq, row in enumerate(p["size_chart"]):
                conn.execute(
                    "INSERT INTO size_charts VALUES (?,?,?,?,?,?,?)", (p["product_id"], seq, *row)
                )
        _seed_traits(conn)
        conn.executemany("INSERT INTO buyers VALUES (?,?)", demo_data.BUYERS)
        for o in demo_data.orders(d):
            recipient = (
                demo_data.RECIPIENT
                if o["buyer_id"] == "buyer_demo_001"
                else ("李四", "13900000000", "广东省广州市白云区机场路200号")
            )
            conn.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    o["order_id"],
                    o["buyer_id"],
                    o["status"],
                    _fen(o["total"]),
                    _iso(o["created_at"]),
                    _iso(o.get("paid_at")),
                    _iso(o.get("shipped_at")),
                    _iso(o.get("delivered_at")),
                    o.get("courier"),
                    o.get("tracking_no"),
                    *recipient,
                ),
            )
            for seq, (pid, color, size, qty, price) in enumerate(o["items"]):
                conn.execute(
                    "INSERT INTO order_items VALUES (?,?,?,?,?,?,?)",
                    (o["order_id"], seq, pid, color, size, qty, _fen(price)),
                )
            for when, text in o.get("traces", []):
                conn.execute(
                    "INSERT INTO traces VALUES (?,?,?)", (o["tracking_no"], _iso(when), text)
                )
        for c in demo_data.after_sales(d):
            conn.execute(
                "INSERT INTO after_sales VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    c["case_id"],
                    c["order_id"],
                    c["case_type"],
                    c["status"],
                    c["status_words"],
                    _fen(c["amount"]),
                    _iso(c["opened_at"]),
                    c["reason"],
                    c["expected"],
                ),
            )
        conn.execute("INSERT INTO meta VALUES ('seeded_at', ?)", (_iso(d),))
    return True


class SqliteShopBackend(ShopBackend):
    name = "sqlite"

    def __init__(self, path: Path, policies: ShopPolicies, seed: bool = True) -> None:
        self.path = Path(path)
        self._policies = policies
        if seed and not self.path.exists():
            seed_demo_shop(self.path)

    # every query runs in a worker thread so that a slow disk never blocks the event loop
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            if not self.path.exists():
                raise FileNotFoundError("shop database missing")
            with closing(connect(self.path)) as conn:
                return fn(conn)

        return await asyncio.to_thread(work)

    def policies(self) -> ShopPolicies:
        return self._policies

    # --- orders -------------------------------------------------------------------
    def _order(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Order:
        items = tuple(
            OrderItem(
                r["product_id"],
                r["name"] or r["product_id"],
                r["color"],
                r["size"],
                r["quantity"],
                _yuan(r["unit_price_fen"]),
            )
            for r in conn.execute(
                "SELECT i.*, p.name FROM order_items i LEFT JOIN products p USING (product_id) "
                "WHERE i.order_id = ? ORDER BY i.seq",
                (row["order_id"],),
            )
        )
        shipment = None
        if row["tracking_no"]:
            traces = tuple(
                Trace(datetime.fromisoformat(t["time"]), t["text"])
                for t in conn.execute(
                    "SELECT time, text FROM traces WHERE tracking_no = ? ORDER BY time",
                    (row["tracking_no"],),
                )
            )
            shipment = Shipment(row["courier"], row["tracking_no"], _dt(row["shipped_at"]), traces)
        recipient = None
        if row["recipient_name"]:
            recipient = Recipient(
                row["recipient_name"], row["recipient_phone"], row["recipient_address"]
            )
        return Order(
            order_id=row["order_id"],
            buyer_id=row["buyer_id"],
            status=OrderStatus(row["status"]),
            items=items,
            total=_yuan(row["total_fen"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            paid_at=_dt(row["paid_at"]),
            delivered_at=_dt(row["delivered_at"]),
            shipment=shipment,
            recipient=recipient,
        )

    async def get_order(self, order_id: str) -> Order | None:
        def q(conn: sqlite3.Connection) -> Order | None:
            row = conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            return self._order(conn, row) if row else None

        return await self._run(q)

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        def q(conn: sqlite3.Connection) -> list[Order]:
            rows = conn.execute(
                "SELECT * FROM orders WHERE buyer_id = ? ORDER BY created_at DESC, order_id DESC LIMIT ?",
                (buyer_id, limit),
            ).fetchall()
            return [self._order(conn, r) for r in rows]

        return await self._run(q)

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        def q(conn: sqlite3.Connection) -> Buyer | None:
            row = conn.execute("SELECT * FROM buyers WHERE buyer_id = ?", (buyer_id,)).fetchone()
            return Buyer(row["buyer_id"], bool(row["is_returning"])) if row else None

        return await self._run(q)

    # --- products -----------------------------------------------------------------
    def _product(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Product:
        variants = tuple(
            Variant(v["color"], v["size"], v["stock"], _dt(v["restock_at"]))
            for v in conn.execute(
                "SELECT * FROM variants WHERE product_id = ? ORDER BY rowid", (row["product_id"],)
            )
        )
        return Product(
            product_id=row["product_id"],
            name=row["name"],
            price=_yuan(row["price_fen"]),
            category=row["category"],
            variants=variants,
            attributes=json.loads(row["attributes"]),
            fit_note=row["fit_note"],
            return_insurance=self._policies.has_return_insurance(row["product_id"]),
            synonyms=tuple(json.loads(row["synonyms"])),
            traits={
                t["trait"]: {"answer": t["answer"], "note": t["note"]}
                for t in conn.execute(
                    "SELECT * FROM product_traits WHERE product_id = ?", (row["product_id"],)
                )
            },
        )

    async def get_product(self, product_id: str) -> Product | None:
        def q(conn: sqlite3.Connection) -> Product | None:
            row = conn.execute(
                "SELECT * FROM products WHERE product_id = ?", (product_id,)
            ).fetchone()
            return self._product(conn, row) if row else None

        return await self._run(q)

    async def list_products(self) -> list[Product]:
        def q(conn: sqlite3.Connection) -> list[Product]:
            return [
                self._product(conn, r)
                for r in conn.execute("SELECT * FROM products ORDER BY product_id")
            ]

        return await self._run(q)

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        def q(conn: sqlite3.Connection) -> SizeChart | None:
            rows = conn.execute(
                "SELECT * FROM size_charts WHERE product_id = ? ORDER BY seq", (product_id,)
            ).fetchall()
            if not rows:
                return None
            return SizeChart(
                product_id,
                tuple(
                    SizeRow(
                        r["size"],
                        r["height_min"],
                        r["height_max"],
                        r["weight_min"],
                        r["weight_max"],
                    )
                    for r in rows
                ),
            )

        return await self._run(q)

    # --- after-sales ----------------------------------------------------------------
    @staticmethod
    def _case(row: sqlite3.Row) -> AfterSaleCase:
        return AfterSaleCase(
            case_id=row["case_id"],
            order_id=row["order_id"],
            case_type=AfterSaleType(row["case_type"]),
            status=row["status"],
            status_words=row["status_words"],
            amount=_yuan(row["amount_fen"]),
            opened_at=datetime.fromisoformat(row["opened_at"]),
            reason=row["reason"],
            expected=row["expected"],
        )

    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]:
        def q(conn: sqlite3.Connection) -> list[AfterSaleCase]:
            return [
                self._case(r)
                for r in conn.execute(
                    "SELECT * FROM after_sales WHERE order_id = ? ORDER BY opened_at", (order_id,)
                )
            ]

        return await self._run(q)

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        def q(conn: sqlite3.Connection) -> AfterSaleCase | None:
            row = conn.execute("SELECT * FROM after_sales WHERE case_id = ?", (case_id,)).fetchone()
            return self._case(row) if row else None

        return await self._run(q)

    # --- changes ------------------------------------------------------------------------
    async def cancel_order(self, order_id: str) -> Order:
        def q(conn: sqlite3.Connection) -> Order:
            with conn:
                cur = conn.execute(
                    "UPDATE orders SET status = 'cancelled' WHERE order_id = ? "
                    "AND status IN ('unpaid', 'paid')",
                    (order_id,),
                )
                if cur.rowcount != 1:
                    raise OperationRejected("order cannot be cancelled in its current state")
            row = conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            return self._order(conn, row)

        return await self._run(q)

    async def update_address(self, order_id: str, recipient: Recipient) -> Order:
        def q(conn: sqlite3.Connection) -> Order:
            with conn:
                cur = conn.execute(
                    "UPDATE orders SET recipient_name = ?, recipient_phone = ?, "
                    "recipient_address = ? WHERE order_id = ? AND status IN ('unpaid', 'paid')",
                    (recipient.name, recipient.phone, recipient.address, order_id),
                )
                if cur.rowcount != 1:
                    raise OperationRejected("address can only be changed before shipping")
            row = conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            return self._order(conn, row)

        return await self._run(q)

    async def create_after_sale(self, request: AfterSaleRequest) -> AfterSaleCase:
        def q(conn: sqlite3.Connection) -> AfterSaleCase:
            now = now_beijing().replace(microsecond=0)
            reason = request.reason
            if request.wanted_color or request.wanted_size:
                wanted = " ".join(v for v in (request.wanted_color, request.wanted_size) if v)
                reason = f"{reason}；换成：{wanted}"
            if request.photo_url:
                reason = f"{reason}；照片：{request.photo_url}"
            with conn:
                open_case = conn.execute(
                    "SELECT case_id FROM after_sales WHERE order_id = ? "
                    "AND status NOT IN ('closed', 'refunded', 'rejected')",
                    (request.order_id,),
                ).fetchone()
                if open_case:
                    raise OperationRejected(f"order already has case {open_case['case_id']}")
                count = conn.execute("SELECT COUNT(*) FROM after_sales").fetchone()[0]
                case_id = f"AS{now:%Y%m%d}{count + 1:03d}"
                conn.execute(
                    "INSERT INTO after_sales VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        case_id,
                        request.order_id,
                        request.case_type.value,
                        "applied",
                        "已提交，等待商家审核",
                        _fen(request.amount),
                        _iso(now),
                        reason,
                        "商家会在48小时内审核",
                    ),
                )
            row = conn.execute("SELECT * FROM after_sales WHERE case_id = ?", (case_id,)).fetchone()
            return self._case(row)

        return await self._run(q)

    async def popular_with(self, product_id: str, limit: int = 3) -> list[str]:
        def q(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                """SELECT other.product_id, COUNT(DISTINCT o2.buyer_id) AS buyers
                   FROM order_items mine
                   JOIN orders o1 ON o1.order_id = mine.order_id
                   JOIN orders o2 ON o2.buyer_id = o1.buyer_id
                   JOIN order_items other ON other.order_id = o2.order_id
                   WHERE mine.product_id = ? AND other.product_id != ?
                   GROUP BY other.product_id ORDER BY buyers DESC, other.product_id
                   LIMIT ?""",
                (product_id, product_id, limit),
            ).fetchall()
            return [r["product_id"] for r in rows]

        return await self._run(q)
