"""The embedded demo shop: a ShopBackend on the project database.

Its tables (products, variants, orders, ..., the names and columns of release 0.1's
``shop.db``) are declared on the project database's :data:`~xiaoer.core.db.metadata`, so
they live in ``xiaoer.db`` by default and in PostgreSQL at scale, where every action
server sees the same orders. ``backend.sqlite.path`` in xiaoer.yml, when set, puts them in
a SQLite file of their own instead. Changes are single conditional UPDATEs (an order is
cancelled or re-addressed only in a state that allows it) or run with the order's row
locked, so concurrent servers cannot both change the same order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    distinct,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.core.engine import masked_url
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

# --- tables (names and columns of release 0.1's shop.db) -------------------------------------
meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
products = Table(
    "products",
    metadata,
    Column("product_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("price_fen", Integer, nullable=False),  # money in integer fen, exact
    Column("category", Text, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON
    Column("fit_note", Text),
    Column("synonyms", Text, nullable=False),  # JSON list
)
variants = Table(
    "variants",
    metadata,
    # the listing order (release 0.1 used SQLite's rowid, which PostgreSQL does not have)
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Text, ForeignKey("products.product_id"), nullable=False),
    Column("color", Text, nullable=False),
    Column("size", Text),
    Column("stock", Integer, nullable=False),
    Column("restock_at", Text),
    UniqueConstraint("product_id", "color", "size"),
)
size_charts = Table(
    "size_charts",
    metadata,
    Column("product_id", Text, ForeignKey("products.product_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("size", Text, nullable=False),
    Column("height_min", Float, nullable=False),
    Column("height_max", Float, nullable=False),
    Column("weight_min", Float),
    Column("weight_max", Float),
    PrimaryKeyConstraint("product_id", "seq"),
)
product_traits = Table(
    "product_traits",
    metadata,
    Column("product_id", Text, ForeignKey("products.product_id"), nullable=False),
    Column("trait", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("product_id", "trait"),
)
buyers = Table(
    "buyers",
    metadata,
    Column("buyer_id", Text, primary_key=True),
    Column("is_returning", Integer, nullable=False),
)
orders = Table(
    "orders",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("total_fen", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("paid_at", Text),
    Column("shipped_at", Text),
    Column("delivered_at", Text),
    Column("courier", Text),
    Column("tracking_no", Text),
    Column("recipient_name", Text),
    Column("recipient_phone", Text),
    Column("recipient_address", Text),
    Index("orders_by_buyer", "buyer_id", "created_at"),
)
order_items = Table(
    "order_items",
    metadata,
    Column("order_id", Text, ForeignKey("orders.order_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("color", Text),
    Column("size", Text),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_fen", Integer, nullable=False),
    PrimaryKeyConstraint("order_id", "seq"),
)
traces = Table(
    "traces",
    metadata,
    Column("tracking_no", Text, nullable=False),
    Column("time", Text, nullable=False),
    Column("text", Text, nullable=False),
    Index("traces_by_tracking_no", "tracking_no", "time"),
)
after_sales = Table(
    "after_sales",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("case_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_words", Text, nullable=False),
    Column("amount_fen", Integer, nullable=False),
    Column("opened_at", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("expected", Text, nullable=False),
)

# the shop's tables, children first (the order to empty them in)
SHOP_TABLES = (
    order_items, traces, after_sales, orders, buyers, product_traits, size_charts, variants, products
)  # fmt: skip
# orders the bot may still change (cancel, new address)
CHANGEABLE = ("unpaid", "paid")
CLOSED_CASES = ("closed", "refunded", "rejected")


def _fen(amount: str | Decimal) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _insert_ignore(db: Database, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING on ``conn``: whether the row was inserted."""
    if db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return conn.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount == 1


def _seed_traits(conn: Connection) -> None:
    """Yes/no facts of the demo products (machine washable, dishwasher safe...), once."""
    if conn.execute(select(product_traits.c.product_id).limit(1)).first():
        return
    known = set(conn.execute(select(products.c.product_id)).scalars())
    rows = [
        {
            "product_id": p["product_id"],
            "trait": trait,
            "answer": fact["answer"],
            "note": fact.get("note", ""),
        }
        for p in demo_data.PRODUCTS
        if p["product_id"] in known
        for trait, fact in (p.get("traits") or {}).items()
    ]
    if rows:
        conn.execute(product_traits.insert(), rows)


def shop_location(target: Database | str | Path | None) -> str:
    """Where the shop's tables are, for messages (a file, or the database URL without its
    password)."""
    db = database_for(target)
    path = db.sqlite_path
    return str(path) if path else masked_url(db.engine.url)


def seed_demo_shop(
    target: Database | str | Path | None = None, now: datetime | None = None, reset: bool = False
) -> bool:
    """Seed the demo shop (spec: demo-shop.md) into ``target`` (what ``database_for``
    accepts: None is the project database). Returns False when it was already seeded.

    Seeding is one transaction that first claims ``meta.seeded_at``: of two processes
    seeding at once, one seeds and the other finds it done. ``reset`` empties the shop's
    tables first (only them: the project database's other tables are kept)."""
    db = database_for(target)
    with db.begin() as conn:
        if reset:
            for table in SHOP_TABLES:
                conn.execute(table.delete())
            conn.execute(meta.delete().where(meta.c.key == "seeded_at"))
        d = (now or now_beijing()).replace(microsecond=0)
        if not _insert_ignore(db, conn, meta, {"key": "seeded_at", "value": _iso(d)}):
            _seed_traits(conn)  # a shop seeded before product traits existed
            _number_variants(db, conn)
            return False
        for p in demo_data.PRODUCTS:
            conn.execute(
                products.insert().values(
                    product_id=p["product_id"],
                    name=p["name"],
                    price_fen=_fen(p["price"]),
                    category=p["category"],
                    attributes=json.dumps(p["attributes"], ensure_ascii=False),
                    fit_note=p["fit_note"],
                    synonyms=json.dumps(p["synonyms"], ensure_ascii=False),
                )
            )
            for color, size, stock, restock_days in p["variants"]:
                restock = _iso(d + timedelta(days=restock_days)) if restock_days else None
                conn.execute(
                    variants.insert().values(
                        product_id=p["product_id"],
                        color=color,
                        size=size,
                        stock=stock,
                        restock_at=restock,
                    )
                )
            for seq, (size, h_min, h_max, w_min, w_max) in enumerate(p["size_chart"]):
                conn.execute(
                    size_charts.insert().values(
                        product_id=p["product_id"],
                        seq=seq,
                        size=size,
                        height_min=h_min,
                        height_max=h_max,
                        weight_min=w_min,
                        weight_max=w_max,
                    )
                )
        _seed_traits(conn)
        conn.execute(
            buyers.insert(),
            [{"buyer_id": b, "is_returning": int(r)} for b, r in demo_data.BUYERS],
        )
        for o in demo_data.orders(d):
            name, phone, address = (
                demo_data.RECIPIENT
                if o["buyer_id"] == "buyer_demo_001"
                else ("李四", "13900000000", "广东省广州市白云区机场路200号")
            )
            conn.execute(
                orders.insert().values(
                    order_id=o["order_id"],
                    buyer_id=o["buyer_id"],
                    status=o["status"],
                    total_fen=_fen(o["total"]),
                    created_at=_iso(o["created_at"]),
                    paid_at=_iso(o.get("paid_at")),
                    shipped_at=_iso(o.get("shipped_at")),
                    delivered_at=_iso(o.get("delivered_at")),
                    courier=o.get("courier"),
                    tracking_no=o.get("tracking_no"),
                    recipient_name=name,
                    recipient_phone=phone,
                    recipient_address=address,
                )
            )
            for seq, (pid, color, size, qty, price) in enumerate(o["items"]):
                conn.execute(
                    order_items.insert().values(
                        order_id=o["order_id"],
                        seq=seq,
                        product_id=pid,
                        color=color,
                        size=size,
                        quantity=qty,
                        unit_price_fen=_fen(price),
                    )
                )
            for when, text in o.get("traces", []):
                conn.execute(
                    traces.insert().values(tracking_no=o["tracking_no"], time=_iso(when), text=text)
                )
        for c in demo_data.after_sales(d):
            conn.execute(
                after_sales.insert().values(
                    case_id=c["case_id"],
                    order_id=c["order_id"],
                    case_type=c["case_type"],
                    status=c["status"],
                    status_words=c["status_words"],
                    amount_fen=_fen(c["amount"]),
                    opened_at=_iso(c["opened_at"]),
                    reason=c["reason"],
                    expected=c["expected"],
                )
            )
        _number_variants(db, conn)
    return True


def _number_variants(db: Database, conn: Connection) -> None:
    """A ``shop.db`` of release 0.1 used in place (``backend.sqlite.path``) gets the
    ``variants.id`` column from the migration as a plain column, empty: number its rows in
    their listing order (SQLite's rowid), as every other database has them."""
    if db.dialect == "sqlite":
        conn.execute(
            variants.update().where(variants.c.id.is_(None)).values(id=literal_column("rowid"))
        )


class SqliteShopBackend(ShopBackend):
    """The demo shop on the project database (the class keeps its historical name).

    ``target`` is what :func:`~xiaoer.core.db.database_for` accepts: None (the project
    database), a SQLite file path (``backend.sqlite.path``, tests) or a database URL."""

    name = "sqlite"

    def __init__(
        self, target: Database | str | Path | None, policies: ShopPolicies, seed: bool = True
    ) -> None:
        self.db = database_for(target)
        # a SQLite file that disappears is reported as unavailable, not re-created empty
        self.path: Path | None = self.db.sqlite_path
        self._policies = policies
        if seed:
            seed_demo_shop(self.db)  # once: a seeded shop is left as it is

    # every query runs in a worker thread so that a slow disk never blocks the event loop
    async def _run(self, fn: Callable[[Connection], T], write: bool = False) -> T:
        def work() -> T:
            if self.path is not None and not self.path.exists():
                raise FileNotFoundError("shop database missing")
            with self.db.begin() if write else self.db.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(work)

    def policies(self) -> ShopPolicies:
        return self._policies

    # --- orders -------------------------------------------------------------------
    def _order(self, conn: Connection, row: Mapping[str, Any]) -> Order:
        i, p = order_items, products
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
                select(i, p.c.name)
                .select_from(i.outerjoin(p, p.c.product_id == i.c.product_id))
                .where(i.c.order_id == row["order_id"])
                .order_by(i.c.seq)
            ).mappings()
        )
        shipment = None
        if row["tracking_no"]:
            found = tuple(
                Trace(datetime.fromisoformat(t.time), t.text)
                for t in conn.execute(
                    select(traces.c.time, traces.c.text)
                    .where(traces.c.tracking_no == row["tracking_no"])
                    .order_by(traces.c.time)
                )
            )
            shipment = Shipment(row["courier"], row["tracking_no"], _dt(row["shipped_at"]), found)
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

    def _load_order(self, conn: Connection, order_id: str) -> Order | None:
        row = conn.execute(select(orders).where(orders.c.order_id == order_id)).mappings().first()
        return self._order(conn, row) if row else None

    async def get_order(self, order_id: str) -> Order | None:
        return await self._run(lambda conn: self._load_order(conn, order_id))

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        def q(conn: Connection) -> list[Order]:
            rows = conn.execute(
                select(orders)
                .where(orders.c.buyer_id == buyer_id)
                .order_by(orders.c.created_at.desc(), orders.c.order_id.desc())
                .limit(limit)
            ).mappings()
            return [self._order(conn, r) for r in rows.all()]

        return await self._run(q)

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        def q(conn: Connection) -> Buyer | None:
            row = conn.execute(select(buyers).where(buyers.c.buyer_id == buyer_id)).first()
            return Buyer(row.buyer_id, bool(row.is_returning)) if row else None

        return await self._run(q)

    # --- products -----------------------------------------------------------------
    def _product(self, conn: Connection, row: Mapping[str, Any]) -> Product:
        product_id = row["product_id"]
        found = tuple(
            Variant(v.color, v.size, v.stock, _dt(v.restock_at))
            for v in conn.execute(
                select(variants).where(variants.c.product_id == product_id).order_by(variants.c.id)
            )
        )
        return Product(
            product_id=product_id,
            name=row["name"],
            price=_yuan(row["price_fen"]),
            category=row["category"],
            variants=found,
            attributes=json.loads(row["attributes"]),
            fit_note=row["fit_note"],
            return_insurance=self._policies.has_return_insurance(product_id),
            synonyms=tuple(json.loads(row["synonyms"])),
            traits={
                t.trait: {"answer": t.answer, "note": t.note}
                for t in conn.execute(
                    select(product_traits)
                    .where(product_traits.c.product_id == product_id)
                    .order_by(product_traits.c.trait)
                )
            },
        )

    async def get_product(self, product_id: str) -> Product | None:
        def q(conn: Connection) -> Product | None:
            row = (
                conn.execute(select(products).where(products.c.product_id == product_id))
                .mappings()
                .first()
            )
            return self._product(conn, row) if row else None

        return await self._run(q)

    async def list_products(self) -> list[Product]:
        def q(conn: Connection) -> list[Product]:
            rows = conn.execute(select(products).order_by(products.c.product_id)).mappings()
            return [self._product(conn, r) for r in rows.all()]

        return await self._run(q)

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        def q(conn: Connection) -> SizeChart | None:
            rows = conn.execute(
                select(size_charts)
                .where(size_charts.c.product_id == product_id)
                .order_by(size_charts.c.seq)
            ).all()
            if not rows:
                return None
            return SizeChart(
                product_id,
                tuple(
                    SizeRow(r.size, r.height_min, r.height_max, r.weight_min, r.weight_max)
                    for r in rows
                ),
            )

        return await self._run(q)

    # --- after-sales ----------------------------------------------------------------
    @staticmethod
    def _case(row: Mapping[str, Any]) -> AfterSaleCase:
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
        def q(conn: Connection) -> list[AfterSaleCase]:
            rows = conn.execute(
                select(after_sales)
                .where(after_sales.c.order_id == order_id)
                .order_by(after_sales.c.opened_at, after_sales.c.case_id)
            ).mappings()
            return [self._case(r) for r in rows]

        return await self._run(q)

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        def q(conn: Connection) -> AfterSaleCase | None:
            row = (
                conn.execute(select(after_sales).where(after_sales.c.case_id == case_id))
                .mappings()
                .first()
            )
            return self._case(row) if row else None

        return await self._run(q)

    # --- changes ------------------------------------------------------------------------
    def _change(
        self, conn: Connection, order_id: str, values: dict[str, Any], refusal: str
    ) -> Order:
        """One conditional UPDATE: the order changes only while it is unpaid or paid (of two
        servers changing it at once, the second sees the first's result)."""
        changed = conn.execute(
            orders.update()
            .where(orders.c.order_id == order_id, orders.c.status.in_(CHANGEABLE))
            .values(**values)
        )
        if changed.rowcount != 1:
            raise OperationRejected(refusal)
        order = self._load_order(conn, order_id)
        assert order is not None
        return order

    async def cancel_order(self, order_id: str) -> Order:
        return await self._run(
            lambda conn: self._change(
                conn,
                order_id,
                {"status": "cancelled"},
                "order cannot be cancelled in its current state",
            ),
            write=True,
        )

    async def update_address(self, order_id: str, recipient: Recipient) -> Order:
        values = {
            "recipient_name": recipient.name,
            "recipient_phone": recipient.phone,
            "recipient_address": recipient.address,
        }
        return await self._run(
            lambda conn: self._change(
                conn, order_id, values, "address can only be changed before shipping"
            ),
            write=True,
        )

    async def create_after_sale(self, request: AfterSaleRequest) -> AfterSaleCase:
        def q(conn: Connection) -> AfterSaleCase:
            now = now_beijing().replace(microsecond=0)
            reason = request.reason
            if request.wanted_color or request.wanted_size:
                wanted = " ".join(v for v in (request.wanted_color, request.wanted_size) if v)
                reason = f"{reason}；换成：{wanted}"
            if request.photo_url:
                reason = f"{reason}；照片：{request.photo_url}"
            # the order's row locked (PostgreSQL; SQLite's write transaction is exclusive):
            # two requests for one order cannot both find "no open case"
            conn.execute(
                select(orders.c.order_id)
                .where(orders.c.order_id == request.order_id)
                .with_for_update()
            )
            open_case = conn.execute(
                select(after_sales.c.case_id).where(
                    after_sales.c.order_id == request.order_id,
                    after_sales.c.status.not_in(CLOSED_CASES),
                )
            ).scalar()
            if open_case:
                raise OperationRejected(f"order already has case {open_case}")
            count = conn.execute(select(func.count()).select_from(after_sales)).scalar_one()
            values = {
                "order_id": request.order_id,
                "case_type": request.case_type.value,
                "status": "applied",
                "status_words": "已提交，等待商家审核",
                "amount_fen": _fen(request.amount),
                "opened_at": _iso(now),
                "reason": reason,
                "expected": "商家会在48小时内审核",
            }
            # the next free number (a case opened meanwhile for another order takes one)
            for n in range(count + 1, count + 1000):
                case_id = f"AS{now:%Y%m%d}{n:03d}"
                if _insert_ignore(self.db, conn, after_sales, {"case_id": case_id, **values}):
                    break
            else:
                raise OperationRejected("no free after-sales case number")
            row = (
                conn.execute(select(after_sales).where(after_sales.c.case_id == case_id))
                .mappings()
                .one()
            )
            return self._case(row)

        return await self._run(q, write=True)

    async def popular_with(self, product_id: str, limit: int = 3) -> list[str]:
        mine, other = order_items.alias("mine"), order_items.alias("other")
        o1, o2 = orders.alias("o1"), orders.alias("o2")
        bought = func.count(distinct(o2.c.buyer_id))
        query = (
            select(other.c.product_id)
            .select_from(
                mine.join(o1, o1.c.order_id == mine.c.order_id)
                .join(o2, o2.c.buyer_id == o1.c.buyer_id)
                .join(other, other.c.order_id == o2.c.order_id)
            )
            .where(mine.c.product_id == product_id, other.c.product_id != product_id)
            .group_by(other.c.product_id)
            .order_by(bought.desc(), other.c.product_id)
            .limit(limit)
        )
        return await self._run(lambda conn: list(conn.execute(query).scalars()))
