"""What the merchant lets the bot do on its own (``permissions`` in xiaoer.yml)."""

from __future__ import annotations

from xiaoer.config import get_settings

DEFAULTS = {
    "cancel_paid_orders": False,
    "change_address": True,
    "open_after_sales": True,
    "give_coupons": True,
}


def allowed(permission: str) -> bool:
    if permission not in DEFAULTS:
        raise KeyError(f"unknown permission {permission!r}")
    # what an admin saved in the agent console overrides xiaoer.yml (read at run time)
    from xiaoer.handoff.settings import get_settings_store

    saved = get_settings_store().overrides().get("permissions") or {}
    if permission in saved:
        return bool(saved[permission])
    return get_settings().permissions.get(permission, DEFAULTS[permission])
