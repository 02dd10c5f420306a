"""The one interface through which actions reach the shop's order and after-sales data."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from xiaoer.shop.models import (
    AfterSaleCase,
    AfterSaleRequest,
    Buyer,
    Order,
    Product,
    Recipient,
    SizeChart,
)
from xiaoer.shop.policies import ShopPolicies

logger = logging.getLogger(__name__)
T = TypeVar("T")


class BackendError(Exception):
    """The shop backend could not answer (the customer gets a polite message)."""


class BackendUnavailable(BackendError):
    """The backend is down, too slow or answered garbage."""


class NotSupportedByBackend(BackendError):
    """This backend cannot do that (e.g. the Doudian API cannot cancel an order for a
    buyer): the action records the request and hands it to an agent."""


class OperationRejected(BackendError):
    """The shop system refused the change (e.g. the order shipped in the meantime)."""


class ShopBackend(abc.ABC):
    """Orders, products, size charts, policies and after-sales cases of one shop."""

    name = "abstract"

    @abc.abstractmethod
    async def get_order(self, order_id: str) -> Order | None: ...

    @abc.abstractmethod
    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        """The buyer's orders, newest first."""

    @abc.abstractmethod
    async def get_buyer(self, buyer_id: str) -> Buyer | None: ...

    @abc.abstractmethod
    async def get_product(self, product_id: str) -> Product | None: ...

    @abc.abstractmethod
    async def list_products(self) -> list[Product]: ...

    @abc.abstractmethod
    async def get_size_chart(self, product_id: str) -> SizeChart | None: ...

    @abc.abstractmethod
    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]: ...

    @abc.abstractmethod
    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None: ...

    @abc.abstractmethod
    def policies(self) -> ShopPolicies:
        """The merchant's policies (from xiaoer.yml: the single source of truth)."""

    # --- changes (may raise NotSupportedByBackend or OperationRejected) --------------
    async def cancel_order(self, order_id: str) -> Order:
        """Cancel an order that has not shipped; returns the updated order."""
        raise NotSupportedByBackend("cancel_order")

    async def update_address(self, order_id: str, recipient: Recipient) -> Order:
        """Change recipient, phone and address of an order that has not shipped."""
        raise NotSupportedByBackend("update_address")

    async def create_after_sale(self, request: AfterSaleRequest) -> AfterSaleCase:
        """Open an after-sales case; returns it with its case number."""
        raise NotSupportedByBackend("create_after_sale")

    async def popular_with(self, product_id: str, limit: int = 3) -> list[str]:
        """Products most often bought by buyers of ``product_id`` (for recommendations)."""
        return []


class GuardedBackend(ShopBackend):
    """Wraps a backend: every call gets a timeout; every failure becomes BackendError.

    Logs carry the method name and the error class only, never arguments (they can
    hold buyer ids or order ids).
    """

    def __init__(self, inner: ShopBackend, timeout: float) -> None:
        self.inner = inner
        self.timeout = timeout
        self.name = inner.name

    async def _call(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(fn(), timeout=self.timeout)
        except BackendError as exc:
            logger.warning("shop backend %s.%s failed: %s", self.name, method, type(exc).__name__)
            raise
        except asyncio.TimeoutError as exc:
            logger.warning(
                "shop backend %s.%s timed out after %.1fs", self.name, method, self.timeout
            )
            raise BackendUnavailable(f"{method} timed out") from exc
        except Exception as exc:  # noqa: BLE001 - any failure of a backend is reported the same way
            logger.warning("shop backend %s.%s failed: %s", self.name, method, type(exc).__name__)
            raise BackendUnavailable(f"{method} failed: {type(exc).__name__}") from exc

    async def get_order(self, order_id: str) -> Order | None:
        return await self._call("get_order", lambda: self.inner.get_order(order_id))

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        return await self._call(
            "orders_by_buyer", lambda: self.inner.orders_by_buyer(buyer_id, limit)
        )

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        return await self._call("get_buyer", lambda: self.inner.get_buyer(buyer_id))

    async def get_product(self, product_id: str) -> Product | None:
        return await self._call("get_product", lambda: self.inner.get_product(product_id))

    async def list_products(self) -> list[Product]:
        return await self._call("list_products", self.inner.list_products)

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        return await self._call("get_size_chart", lambda: self.inner.get_size_chart(product_id))

    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]:
        return await self._call(
            "after_sales_for_order", lambda: self.inner.after_sales_for_order(order_id)
        )

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        return await self._call("get_after_sale", lambda: self.inner.get_after_sale(case_id))

    def policies(self) -> ShopPolicies:
        return self.inner.policies()

    async def cancel_order(self, order_id: str) -> Order:
        return await self._call("cancel_order", lambda: self.inner.cancel_order(order_id))

    async def update_address(self, order_id: str, recipient: Recipient) -> Order:
        return await self._call(
            "update_address", lambda: self.inner.update_address(order_id, recipient)
        )

    async def create_after_sale(self, request: AfterSaleRequest) -> AfterSaleCase:
        return await self._call("create_after_sale", lambda: self.inner.create_after_sale(request))

    async def popular_with(self, product_id: str, limit: int = 3) -> list[str]:
        return await self._call("popular_with", lambda: self.inner.popular_with(product_id, limit))


class ReadOnlyRefused(BackendError):
    """A change was asked of a read-only backend (the console's test chat)."""


class ReadOnlyBackend(ShopBackend):
    """Wraps a backend for the console's test chat (a sandboxed sender): every read goes
    to the shop, every change is refused with :class:`ReadOnlyRefused` before it reaches
    it. The flows stop before the change and say it is a test (actions/common.py
    ``sandbox_stop``); this wrapper makes sure a flow that forgot cannot write."""

    def __init__(self, inner: ShopBackend) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_order(self, order_id: str) -> Order | None:
        return await self.inner.get_order(order_id)

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        return await self.inner.orders_by_buyer(buyer_id, limit)

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        return await self.inner.get_buyer(buyer_id)

    async def get_product(self, product_id: str) -> Product | None:
        return await self.inner.get_product(product_id)

    async def list_products(self) -> list[Product]:
        return await self.inner.list_products()

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        return await self.inner.get_size_chart(product_id)

    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]:
        return await self.inner.after_sales_for_order(order_id)

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        return await self.inner.get_after_sale(case_id)

    def policies(self) -> ShopPolicies:
        return self.inner.policies()

    async def popular_with(self, product_id: str, limit: int = 3) -> list[str]:
        return await self.inner.popular_with(product_id, limit)

    async def cancel_order(self, order_id: str) -> Order:
        raise ReadOnlyRefused("cancel_order")

    async def update_address(self, order_id: str, recipient: Recipient) -> Order:
        raise ReadOnlyRefused("update_address")

    async def create_after_sale(self, request: AfterSaleRequest) -> AfterSaleCase:
        raise ReadOnlyRefused("create_after_sale")
