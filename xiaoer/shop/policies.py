"""The merchant's policies: facts read from the ``shop`` section of xiaoer.yml.

Responses in domain.yml hold the wording; these facts fill their placeholders, so a
merchant who changes a policy changes it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import cached_property
from typing import Any

from xiaoer.shop.models import BEIJING, now_beijing


def _hm(value: str) -> time:
    hour, minute = str(value).split(":")
    return time(int(hour), int(minute))


@dataclass(frozen=True)
class ShopPolicies:
    shop_name: str
    bot_name: str
    service_start: time
    service_end: time
    ship_from: str
    ship_within_hours: int
    same_day_cutoff: time
    couriers: tuple[str, ...]
    express_courier: str
    express_surcharge: int
    surcharge_regions: tuple[str, ...]
    region_surcharge: int
    no_delivery: tuple[str, ...]
    transit_days: str
    return_days: int
    return_condition: str
    return_counted_from: str
    insurance_excluded: tuple[str, ...]
    return_address: str
    return_receiver: str
    return_phone: str
    invoice_ordinary: str
    invoice_ordinary_how: str
    invoice_special: str
    invoice_special_how: str
    coupon_everyone: str
    returning_code: str
    returning_discount: str

    @classmethod
    def from_settings(cls, shop: dict[str, Any]) -> ShopPolicies:
        hours = shop.get("service_hours") or {}
        ship = shop.get("shipping") or {}
        ret = shop.get("returns") or {}
        inv = shop.get("invoice") or {}
        cp = shop.get("coupons") or {}
        return cls(
            shop_name=shop.get("name", "本店"),
            bot_name=shop.get("bot_name", "店小二"),
            service_start=_hm(hours.get("start", "09:00")),
            service_end=_hm(hours.get("end", "22:00")),
            ship_from=ship.get("ship_from", ""),
            ship_within_hours=int(ship.get("ship_within_hours", 48)),
            same_day_cutoff=_hm(ship.get("same_day_cutoff", "16:00")),
            couriers=tuple(ship.get("couriers") or ()),
            express_courier=ship.get("express_courier", ""),
            express_surcharge=int(ship.get("express_surcharge", 0)),
            surcharge_regions=tuple(ship.get("surcharge_regions") or ()),
            region_surcharge=int(ship.get("region_surcharge", 0)),
            no_delivery=tuple(ship.get("no_delivery") or ()),
            transit_days=str(ship.get("transit_days", "2-4")),
            return_days=int(ret.get("no_reason_days", 7)),
            return_condition=ret.get("condition", ""),
            return_counted_from=ret.get("counted_from", "签收"),
            insurance_excluded=tuple(ret.get("insurance_excluded") or ()),
            return_address=ret.get("address", ""),
            return_receiver=ret.get("receiver", ""),
            return_phone=ret.get("receiver_phone", ""),
            invoice_ordinary=inv.get("ordinary", ""),
            invoice_ordinary_how=inv.get("ordinary_how", ""),
            invoice_special=inv.get("special", ""),
            invoice_special_how=inv.get("special_how", ""),
            coupon_everyone=cp.get("everyone", ""),
            returning_code=cp.get("returning_customer_code", ""),
            returning_discount=cp.get("returning_customer_discount", ""),
        )

    # --- derived facts used by several answers -------------------------------------
    @property
    def service_hours(self) -> str:
        return f"{self.service_start:%H:%M}-{self.service_end:%H:%M}"

    def agents_on_duty(self, now: datetime | None = None) -> bool:
        current = (now or now_beijing()).astimezone(BEIJING).time()
        return self.service_start <= current < self.service_end

    def has_return_insurance(self, product_id: str) -> bool:
        return product_id not in self.insurance_excluded

    def ship_promise(self) -> str:
        return (
            f"付款后{self.ship_within_hours}小时内从{self.ship_from}发出，"
            f"{self.same_day_cutoff:%H:%M}前付款当天发货"
        )

    def facts(self) -> dict[str, str]:
        """Placeholders for responses (all strings); a copy the caller may change."""
        return dict(self._facts)

    @cached_property
    def _facts(self) -> dict[str, str]:
        return {
            "shop_name": self.shop_name,
            "bot_name": self.bot_name,
            "service_hours": self.service_hours,
            "ship_from": self.ship_from,
            "ship_within_hours": str(self.ship_within_hours),
            "same_day_cutoff": f"{self.same_day_cutoff:%H:%M}",
            "ship_promise": self.ship_promise(),
            "couriers": "、".join(self.couriers),
            "express_courier": self.express_courier,
            "express_surcharge": str(self.express_surcharge),
            "surcharge_regions": "、".join(self.surcharge_regions),
            "region_surcharge": str(self.region_surcharge),
            "no_delivery": "、".join(self.no_delivery),
            "transit_days": self.transit_days,
            "return_days": str(self.return_days),
            "return_condition": self.return_condition,
            "return_counted_from": self.return_counted_from,
            "return_address": self.return_address,
            "return_receiver": self.return_receiver,
            "return_phone": self.return_phone,
            "invoice_ordinary": self.invoice_ordinary,
            "invoice_ordinary_how": self.invoice_ordinary_how,
            "invoice_special": self.invoice_special,
            "invoice_special_how": self.invoice_special_how,
            "coupon_everyone": self.coupon_everyone,
            "returning_code": self.returning_code,
            "returning_discount": self.returning_discount,
        }
