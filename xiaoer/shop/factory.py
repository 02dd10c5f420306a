"""Which shop backend this process uses: the one named by ``backend.type`` in xiaoer.yml.

The interface (``xiaoer.shop.backend``) knows no implementation; this module picks one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from xiaoer.core.config import Settings, get_settings
from xiaoer.shop.backend import GuardedBackend, ShopBackend
from xiaoer.shop.policies import ShopPolicies


def create_backend(settings: Settings, **kwargs: Any) -> ShopBackend:
    """Build the backend named in the settings (``backend.type`` in xiaoer.yml)."""
    policies = ShopPolicies.from_settings(settings.shop)
    if settings.backend_type == "sqlite":
        from xiaoer.shop.sqlite_backend import SqliteShopBackend

        inner: ShopBackend = SqliteShopBackend(settings.sqlite_path, policies, **kwargs)
    elif settings.backend_type == "doudian":
        from xiaoer.doudian.backend import DoudianShopBackend

        inner = DoudianShopBackend.from_settings(settings, policies)
    else:
        raise ValueError(
            f"unknown shop backend {settings.backend_type!r} (expected: sqlite or doudian)"
        )
    return GuardedBackend(inner, settings.backend_timeout)


@lru_cache(maxsize=1)
def get_backend() -> ShopBackend:
    """The process-wide backend, built from xiaoer.yml on first use."""
    return create_backend(get_settings())
