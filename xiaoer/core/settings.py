"""The merchant's settings, one precedence rule for all of them: what an admin saved in the
console (table ``console_settings`` of the project database) > ``xiaoer.yml`` > the default here.
Handoff and console settings (``handoff`` / ``console``) and the bot's permissions
(``permissions``: what the bot may do on its own).

Everything here is read at run time (a short cache of a few seconds), so a merchant's new
handoff keyword, working hours or permission takes effect without retraining or restarting.
"""

from __future__ import annotations

import json
import threading
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, Text, select

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.config import get_settings
from xiaoer.core.db import Database, database_for, metadata

console_settings = Table(
    "console_settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value_json", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", Text, nullable=False, server_default=""),
)

PERMISSION_DEFAULTS = {
    "cancel_paid_orders": False,
    "change_address": True,
    "open_after_sales": True,
    "give_coupons": True,
}

DEFAULT_KEYWORDS = ["12315", "投诉", "律师", "消协", "工商", "起诉", "曝光", "报警"]
DEFAULT_INTENT_GROUPS = {
    "售前": [
        "ask_price", "ask_discount", "ask_size", "ask_stock", "product_info", "ask_shipping",
        "ask_invoice", "shipping_time",
    ],
    "售后": [
        "order_status", "urge_shipment", "change_address", "cancel_order", "inform_order_id",
        "return_goods", "refund", "exchange", "return_policy", "quality_issue",
    ],
    "投诉": ["complain"],
}  # fmt: skip
DEFAULT_QUICK_REPLIES = [
    "您好，我是人工客服，请问有什么可以帮您？",
    "请稍等，我马上帮您查询一下～",
    "给您带来不便非常抱歉，我们一定尽快为您处理。",
    "已经为您登记，处理结果会第一时间通知您。",
    "请问还有其他可以帮您的吗？",
]
PERMISSION_KEYS = ("cancel_paid_orders", "change_address", "open_after_sales", "give_coupons")
EDITABLE_KEYS = (
    "working_hours",
    "keywords",
    "groups",
    "intent_groups",
    "default_group",
    "quick_replies",
    "greeting_scripts",
    "permissions",
    "customer_tags",
    "reannounce_after_minutes",
    "minutes_per_case",
    "profile",  # the bot's profile (xiaoer/core/profile.py)
)
CACHE_SECONDS = 3.0


def _hm(value: Any, fallback: str) -> time:
    try:
        hour, minute = str(value or fallback).split(":")
        return time(int(hour), int(minute))
    except ValueError:
        hour, minute = fallback.split(":")
        return time(int(hour), int(minute))


@dataclass(frozen=True)
class HandoffSettings:
    start: time
    end: time
    keywords: list[str]
    groups: list[str]
    intent_groups: dict[str, list[str]]
    default_group: str
    complaint_group: str
    quick_replies: list[str]
    # admin edits of the Douyin greeting scripts: {segment: {period: [variants]}}, the shape
    # of ``douyin.greeting.scripts`` in xiaoer.yml (empty: the file's scripts are in force)
    greeting_scripts: dict[str, dict[str, list[str]]]
    permissions: dict[str, bool]
    reannounce_after_minutes: float
    minutes_per_case: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hours_text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def in_hours(self, now: datetime | None = None) -> bool:
        current = (now or now_beijing()).astimezone(BEIJING).time()
        if self.start == self.end:  # the same start and end: around the clock
            return True
        if self.start < self.end:
            return self.start <= current < self.end
        return current >= self.start or current < self.end  # a night shift past midnight

    def next_start(self, now: datetime | None = None) -> str:
        """When agents are back, in words (今天 09:00 / 明天 09:00)."""
        current = (now or now_beijing()).astimezone(BEIJING)
        today_start = current.replace(
            hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0
        )
        if current < today_start:
            return f"今天 {self.start:%H:%M}"
        tomorrow = today_start + timedelta(days=1)
        return f"明天（{tomorrow:%m月%d日}）{self.start:%H:%M}"

    def group_for(self, intent: str | None, reason: str = "") -> str:
        if reason in {"complaint", "keyword"}:
            return self.complaint_group
        for group, intents in self.intent_groups.items():
            if intent and intent in intents and group in self.groups:
                return group
        return self.default_group

    def matching_keyword(self, text: str) -> str | None:
        lowered = (text or "").lower()
        for keyword in self.keywords:
            if keyword and keyword.lower() in lowered:
                return keyword
        return None


class SettingsStore:
    """Admin overrides of the handoff/console settings, one JSON value per key.

    Read through a short cache shared by every store of the same database in the process,
    so a save here is seen at once by the rest of the process (other processes within
    :data:`CACHE_SECONDS`)."""

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def overrides(self, fresh: bool = False) -> dict[str, Any]:
        with _cache_lock:
            cached = _cache.get(self.db.url)
            if not fresh and cached and _time.monotonic() - cached[0] < CACHE_SECONDS:
                return dict(cached[1])
            with self.db.connect() as conn:
                rows = conn.execute(
                    select(console_settings.c.key, console_settings.c.value_json)
                ).all()
            values = {k: json.loads(v) for k, v in rows}
            _cache[self.db.url] = (_time.monotonic(), values)
            return dict(values)

    def save(self, key: str, value: Any, by: str = "") -> None:
        if key not in EDITABLE_KEYS:
            raise KeyError(key)
        row = {
            "key": key,
            "value_json": json.dumps(value, ensure_ascii=False),
            "updated_at": now_beijing().isoformat(timespec="seconds"),
            "updated_by": by,
        }
        with self.db.begin() as conn:
            self.db.upsert(
                conn,
                console_settings,
                row,
                key=["key"],
                update=["value_json", "updated_at", "updated_by"],
            )
        with _cache_lock:
            _cache.pop(self.db.url, None)

    def settings(self) -> HandoffSettings:
        return build_settings(self.overrides())


# the overrides last read, per database URL: (monotonic time, values)
_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def build_settings(overrides: dict[str, Any]) -> HandoffSettings:
    config = get_settings()
    section = config.section("handoff")
    merged: dict[str, Any] = {**section, **overrides}
    shop_hours = (config.shop.get("service_hours") or {}) if config.shop else {}
    hours = merged.get("working_hours") or shop_hours or {}
    groups = [str(g) for g in (merged.get("groups") or list(DEFAULT_INTENT_GROUPS))]
    intent_groups = merged.get("intent_groups") or DEFAULT_INTENT_GROUPS
    saved_permissions = merged.get("permissions") or {}
    permissions = {
        k: bool(saved_permissions.get(k, config.permissions.get(k, PERMISSION_DEFAULTS[k])))
        for k in PERMISSION_KEYS
    }
    default_group = str(merged.get("default_group") or (groups[0] if groups else "售前"))
    complaint_group = str(
        merged.get("complaint_group") or ("投诉" if "投诉" in groups else default_group)
    )
    return HandoffSettings(
        start=_hm(hours.get("start"), "09:00"),
        end=_hm(hours.get("end"), "22:00"),
        keywords=[
            str(k).strip() for k in (merged.get("keywords") or DEFAULT_KEYWORDS) if str(k).strip()
        ],
        groups=groups,
        intent_groups={str(g): [str(i) for i in v] for g, v in intent_groups.items()},
        default_group=default_group,
        complaint_group=complaint_group,
        quick_replies=[str(q) for q in (merged.get("quick_replies") or DEFAULT_QUICK_REPLIES)],
        greeting_scripts={
            str(seg): {str(p): [str(v) for v in vs or []] for p, vs in by.items()}
            for seg, by in (merged.get("greeting_scripts") or {}).items()
            if isinstance(by, dict)
        },
        permissions=permissions,
        reannounce_after_minutes=float(merged.get("reannounce_after_minutes") or 5),
        minutes_per_case=float(merged.get("minutes_per_case") or 3),
        extra={k: v for k, v in merged.items() if k not in EDITABLE_KEYS},
    )


def get_settings_store() -> SettingsStore:
    """The store of the project database (cheap: the database is cached per process)."""
    return SettingsStore()


def handoff_settings() -> HandoffSettings:
    """The settings in force now (xiaoer.yml + admin overrides)."""
    return get_settings_store().settings()


def allowed(permission: str) -> bool:
    """May the bot do this on its own? (console > xiaoer.yml > default, read at run time)"""
    if permission not in PERMISSION_DEFAULTS:
        raise KeyError(f"unknown permission {permission!r}")
    return bool(handoff_settings().permissions[permission])
