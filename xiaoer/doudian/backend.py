"""``DoudianShopBackend``: the shop backend (:mod:`xiaoer.shop.backend`) on the Doudian
(抖店) open API.

Orders and after-sales come from the API (:mod:`xiaoer.doudian.client`, read by
:mod:`xiaoer.doudian.parsing`), briefly cached (:class:`~xiaoer.doudian.store.OrderCache`)
unless a push message changed the order since (:class:`~xiaoer.doudian.store.OrderChangeLog`);
products and size charts come from a local catalogue (the SQLite demo shop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from xiaoer.core.config import Settings
from xiaoer.core.db import Database
from xiaoer.doudian.client import DoudianClient, DoudianConfig
from xiaoer.doudian.parsing import (
    parse_after_sale,
    parse_order,
    parse_shipment,
    parse_traces,
    raw_buyer,
)
from xiaoer.doudian.protocol import (
    DoudianApiError,
    DoudianParseError,
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str_id,
    pick,
)
from xiaoer.doudian.store import OrderCache, OrderChangeLog
from xiaoer.shop.backend import BackendError, ShopBackend
from xiaoer.shop.models import AfterSaleCase, Buyer, Order, Product, SizeChart, Trace
from xiaoer.shop.policies import ShopPolicies
from xiaoer.shop.sqlite_backend import SqliteShopBackend

logger = logging.getLogger(__name__)


class DoudianShopBackend(ShopBackend):
    """Orders and after-sales from the Doudian open API; products and size charts from a
    local catalogue (the API has neither variants' stock nor size charts for buyers).

    Changes (cancel, change address, open an after-sales case) are the buyer's own
    actions on the platform: they keep the base class behaviour (NotSupportedByBackend),
    so that the actions record the request and hand it to an agent.
    """

    name = "doudian"
    MAX_PAGES = 10

    def __init__(
        self,
        config: DoudianConfig,
        policies: ShopPolicies,
        catalogue: ShopBackend,
        change_log: OrderChangeLog | None = None,
        client: DoudianClient | None = None,
    ) -> None:
        self.config = config
        self.client = client or DoudianClient(config)
        self.catalogue = catalogue
        self.change_log = change_log
        self.cache = OrderCache(config.cache_ttl_seconds)
        self._policies = policies

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        policies: ShopPolicies,
        db: Database | str | Path | None = None,
        **kwargs: Any,
    ) -> DoudianShopBackend:
        """From the ``backend.doudian`` section; the change log in ``db`` (default: the
        project database)."""
        config = DoudianConfig.from_settings(settings.doudian)
        # the local catalogue: the demo shop's tables (seeded if empty)
        catalogue = SqliteShopBackend(settings.sqlite_path, policies)
        return cls(config, policies, catalogue, OrderChangeLog(db), **kwargs)

    def __repr__(self) -> str:
        return f"DoudianShopBackend(base_url={self.config.base_url!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    def policies(self) -> ShopPolicies:
        return self._policies

    # --- cache helpers ----------------------------------------------------------------
    async def _still_fresh(self, fetched_at: float, order_id: str | None) -> bool:
        if self.change_log is None:
            return True
        log = self.change_log
        try:
            changed = await asyncio.to_thread(log.changed_since, fetched_at, order_id)
        except SQLAlchemyError:
            return False
        return not changed

    # --- orders -----------------------------------------------------------------------
    async def _traces(self, raw: Mapping[str, Any]) -> tuple[Trace, ...]:
        found = parse_shipment(raw)
        if not found:
            return ()
        shipment, company = found
        try:
            data = await self.client.call(
                "logistics.trackNoRouteDetail",
                {"logistics_code": company, "track_no": shipment.tracking_no},
            )
        except BackendError as exc:
            # the order is still worth telling without its route
            logger.warning("doudian route unavailable: %s", type(exc).__name__)
            return ()
        return parse_traces(data)

    async def _order_from(self, raw: Mapping[str, Any], buyer_id: str = "") -> Order:
        code = as_int(raw.get("order_status"))
        needs_route = code in (3, 101, 5) and parse_shipment(raw) is not None
        traces = await self._traces(raw) if needs_route else ()
        return parse_order(raw, traces, buyer_id)

    async def get_order(self, order_id: str) -> Order | None:
        order_id = as_str_id(order_id)
        if not order_id:
            return None
        hit = self.cache.get_order(order_id) if self.cache.enabled else None
        if hit and await self._still_fresh(hit[0], order_id):
            return hit[1]
        fetched_at = time.time()
        try:
            data = await self.client.call("order.orderDetail", {"shop_order_id": order_id})
        except DoudianApiError as exc:
            if exc.is_not_found:
                return None
            raise
        raw = as_dict(pick(data, "shop_order_detail", "order_detail", "order"))
        if not raw:
            return None
        order = await self._order_from(raw)
        self.cache.put_order(order, fetched_at)
        return order

    async def _search(
        self, buyer_id: str, want: int, stop: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Raw ``shop_order_list`` entries of a buyer, newest first, up to ``want``."""
        found: list[dict[str, Any]] = []
        size = min(self.config.page_size, max(want, 1))
        for page in range(self.MAX_PAGES):
            data = await self.client.call(
                "order.searchList",
                {
                    self.config.buyer_search_param: buyer_id,
                    "order_asc": False,
                    "order_by": "create_time",
                    "page": page,
                    "size": size,
                },
            )
            batch = [as_dict(o) for o in as_list(pick(data, "shop_order_list", "list"))]
            found.extend(batch)
            if stop and any(stop(o) for o in batch):
                break
            total = as_int(data.get("total"))
            more = data.get("has_more")
            if not batch or len(found) >= want:
                break
            if more is not None and not as_bool(more):
                break
            if more is None and (total is None or len(found) >= total or len(batch) < size):
                break
        return found

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        if not buyer_id:
            return []
        hit = self.cache.get_list(buyer_id, limit) if self.cache.enabled else None
        if hit and await self._still_fresh(hit[0], None):
            return hit[1]
        fetched_at = time.time()
        raws = await self._search(buyer_id, limit)
        gate = asyncio.Semaphore(4)

        async def one(raw: dict[str, Any]) -> Order | None:
            async with gate:
                try:
                    return await self._order_from(raw, buyer_id)
                except DoudianParseError as exc:  # one odd order must not hide the others
                    logger.warning("doudian order skipped: %s", exc)
                    return None

        orders = [o for o in await asyncio.gather(*(one(r) for r in raws)) if o is not None]
        # never show a buyer someone else's order, even if the search ignored the buyer
        orders = [o for o in orders if o.buyer_id == buyer_id]
        orders.sort(key=lambda o: (o.created_at, o.order_id), reverse=True)
        orders = orders[:limit]
        self.cache.put_list(buyer_id, limit, orders, fetched_at)
        for order in orders:
            self.cache.put_order(order, fetched_at)
        return orders

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        """Returning = at least one completed (status 5) order; None when the buyer has
        no order in this shop (like the SQLite shop's unknown buyer)."""
        if not buyer_id:
            return None
        raws = await self._search(buyer_id, 100, stop=lambda o: as_int(o.get("order_status")) == 5)
        raws = [o for o in raws if raw_buyer(o) in (buyer_id, "")]
        if not raws:
            return None
        return Buyer(buyer_id, any(as_int(o.get("order_status")) == 5 for o in raws))

    # --- products: the local catalogue -------------------------------------------------
    async def get_product(self, product_id: str) -> Product | None:
        return await self.catalogue.get_product(product_id)

    async def list_products(self) -> list[Product]:
        return await self.catalogue.list_products()

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        return await self.catalogue.get_size_chart(product_id)

    # --- after-sales ------------------------------------------------------------------
    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]:
        order_id = as_str_id(order_id)
        if not order_id:
            return []
        cases: list[AfterSaleCase] = []
        for page in range(self.MAX_PAGES):
            try:
                data = await self.client.call(
                    "afterSale.List", {"order_id": order_id, "page": page, "size": 20}
                )
            except DoudianApiError as exc:
                if exc.is_not_found:
                    return []
                raise
            items = [as_dict(i) for i in as_list(pick(data, "items", "list"))]
            for item in items:
                info = as_dict(pick(item, "aftersale_info", "after_sale_info")) or item
                cases.append(parse_after_sale(info, as_dict(item.get("order_info"))))
            if not items or not as_bool(data.get("has_more")):
                break
        cases = [c for c in cases if c.order_id in (order_id, "")]
        return sorted(_unique_cases(cases), key=lambda c: c.opened_at)

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        case_id = as_str_id(case_id)
        if not case_id:
            return None
        try:
            data = await self.client.call("afterSale.Detail", {"after_sale_id": case_id})
        except DoudianApiError as exc:
            if exc.is_not_found:
                return None
            raise
        process = as_dict(data.get("process_info"))
        info = as_dict(pick(process, "after_sale_info", "aftersale_info")) or as_dict(
            pick(data, "after_sale_info", "aftersale_info")
        )
        if not info:
            return None
        return parse_after_sale(info, as_dict(data.get("order_info")))


def _unique_cases(cases: Iterable[AfterSaleCase]) -> list[AfterSaleCase]:
    seen: dict[str, AfterSaleCase] = {}
    for case in cases:
        seen.setdefault(case.case_id, case)
    return list(seen.values())
