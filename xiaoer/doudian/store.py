"""State of the Doudian (抖店) integration: two tables of the project database
(:mod:`xiaoer.core.db`) and the in-process order cache.

* ``doudian_order_changes`` (:class:`OrderChangeLog`): orders changed by push messages.
  The push channel runs in the Rasa server, the backend in the action server: the
  backend checks this table before it trusts a cached order.
* ``doudian_push_seen`` (:class:`PushLedger`): every push message received, keyed by
  ``msg_id``, with its processing state: a message delivered twice is processed once,
  one whose processing failed or was cut short is picked up again later.
* :class:`OrderCache`: a short-lived in-memory cache of orders and of buyers' order lists;
  :func:`invalidate_order` drops an order from every cache of this process.

Constructors take what :func:`xiaoer.core.db.database_for` accepts: nothing (the project
database), a :class:`~xiaoer.core.db.Database`, a URL, or the path of a SQLite file (tests).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, Table, Text, func, select

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.doudian.protocol import PushMessage, as_dict
from xiaoer.shop.models import Order

MAX_ATTEMPTS = 5  # a push message whose processing failed this often is given up
CLAIM_LEASE_SECONDS = 60.0  # a claim older than this was cut short: the message is free again

# --- tables (names and columns of release 0.1, whose files migrate) -------------------------
doudian_order_changes = Table(
    "doudian_order_changes",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("changed_at", Float, nullable=False),  # Unix seconds
)

doudian_push_seen = Table(
    "doudian_push_seen",
    metadata,
    Column("msg_id", Text, primary_key=True),
    Column("tag", Integer, nullable=False),
    Column("order_id", Text),
    Column("data", Text, nullable=False),  # the message's data as JSON
    Column("received_at", Float, nullable=False),  # Unix seconds, as the columns below
    Column("claimed_at", Float),
    Column("processed_at", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Index("doudian_push_unprocessed", "processed_at"),
)


# --- the change log ---------------------------------------------------------------------------
class OrderChangeLog:
    """``doudian_order_changes``: when each order was last changed by a push message."""

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def touch(self, order_id: str, when: float | None = None) -> None:
        values = {"order_id": order_id, "changed_at": time.time() if when is None else when}
        with self.db.begin() as conn:
            self.db.upsert(conn, doudian_order_changes, values, ["order_id"], ["changed_at"])

    def changed_since(self, since: float, order_id: str | None = None) -> bool:
        """Whether ``order_id`` (any order when None) changed after ``since``."""
        t = doudian_order_changes
        query = (
            select(func.max(t.c.changed_at))
            if order_id is None
            else select(t.c.changed_at).where(t.c.order_id == order_id)
        )
        with self.db.connect() as conn:
            changed_at = conn.execute(query).scalar()
        return changed_at is not None and changed_at >= since


# --- the ledger of received push messages -----------------------------------------------------
class PushLedger:
    """``doudian_push_seen``: every push message received, whether it was processed."""

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def record(self, messages: Iterable[PushMessage], now: float | None = None) -> list[str]:
        """Store messages not seen before; returns their ids."""
        now = time.time() if now is None else now
        new = []
        for m in messages:
            inserted = self.db.insert_ignore(
                doudian_push_seen,
                msg_id=m.msg_id,
                tag=m.tag,
                order_id=m.order_id,
                data=json.dumps(m.data, ensure_ascii=False),
                received_at=now,
            )
            if inserted:
                new.append(m.msg_id)
        return new

    def claim(self, msg_id: str, now: float | None = None) -> bool:
        """Take a message for processing: False when it was processed, gave up, or is
        being processed by someone else (a concurrent duplicate delivery)."""
        now = time.time() if now is None else now
        t = doudian_push_seen
        stmt = (
            t.update()
            .where(
                t.c.msg_id == msg_id,
                t.c.processed_at.is_(None),
                t.c.attempts < MAX_ATTEMPTS,
                (t.c.claimed_at.is_(None)) | (t.c.claimed_at < now - CLAIM_LEASE_SECONDS),
            )
            .values(claimed_at=now)
        )
        with self.db.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def done(self, msg_id: str) -> None:
        t = doudian_push_seen
        with self.db.begin() as conn:
            conn.execute(
                t.update().where(t.c.msg_id == msg_id).values(processed_at=time.time(), error=None)
            )

    def failed(self, msg_id: str, error: str) -> None:
        t = doudian_push_seen
        with self.db.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.msg_id == msg_id)
                .values(claimed_at=None, attempts=t.c.attempts + 1, error=error)
            )

    def unprocessed(self, older_than: float = 0.0) -> list[PushMessage]:
        """Messages still to process (received at least ``older_than`` seconds ago)."""
        t = doudian_push_seen
        query = (
            select(t.c.msg_id, t.c.tag, t.c.data)
            .where(
                t.c.processed_at.is_(None),
                t.c.attempts < MAX_ATTEMPTS,
                t.c.received_at <= time.time() - older_than,
            )
            .order_by(t.c.received_at)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [PushMessage(int(tag), msg_id, as_dict(data)) for msg_id, tag, data in rows]

    def state(self, msg_id: str) -> dict[str, Any] | None:
        t = doudian_push_seen
        with self.db.connect() as conn:
            row = conn.execute(select(t).where(t.c.msg_id == msg_id)).first()
        return dict(row._mapping) if row else None

    def count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(doudian_push_seen)).scalar())


# --- the order cache (in memory) --------------------------------------------------------------
_LIVE_CACHES: weakref.WeakSet[OrderCache] = weakref.WeakSet()


class OrderCache:
    """A short-lived in-memory cache of orders and of buyers' order lists."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl_seconds
        self._clock = clock
        self._orders: dict[str, tuple[float, Order]] = {}
        self._lists: dict[tuple[str, int], tuple[float, list[Order]]] = {}
        _LIVE_CACHES.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get_order(self, order_id: str) -> tuple[float, Order] | None:
        hit = self._orders.get(order_id)
        if hit and self._clock() - hit[0] < self.ttl:
            return hit
        self._orders.pop(order_id, None)
        return None

    def put_order(self, order: Order, fetched_at: float) -> None:
        if self.enabled and order.order_id:
            self._orders[order.order_id] = (fetched_at, order)

    def get_list(self, buyer_id: str, limit: int) -> tuple[float, list[Order]] | None:
        hit = self._lists.get((buyer_id, limit))
        if hit and self._clock() - hit[0] < self.ttl:
            return hit
        self._lists.pop((buyer_id, limit), None)
        return None

    def put_list(self, buyer_id: str, limit: int, orders: list[Order], fetched_at: float) -> None:
        if self.enabled:
            self._lists[(buyer_id, limit)] = (fetched_at, list(orders))

    def invalidate(self, order_id: str) -> None:
        self._orders.pop(order_id, None)
        # a changed or new order may belong to any buyer's list: lists are cheap to refetch
        self._lists.clear()

    def clear(self) -> None:
        self._orders.clear()
        self._lists.clear()


def invalidate_order(order_id: str) -> None:
    """Drop ``order_id`` from every order cache of this process (push messages)."""
    for cache in list(_LIVE_CACHES):
        cache.invalidate(order_id)
