"""The merchant's policies: facts read from the ``shop`` section of xiaoer.yml.

Responses in domain.yml hold the wording; these facts fill their placeholders, so a
merchant who changes a policy changes it in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from functools import cached_property
from typing import Any

from xiaoer.core.clock import BEIJING, now_beijing


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


# --- shipping questions: one sentence per question --------------------------------------
# Which shipping question(s) a message asks, by keywords; the answer to each is one
# message of actions/messages.yml (``ship_<topic>``) filled with the facts above.
SHIPPING_TOPICS: dict[str, re.Pattern[str]] = {
    "free": re.compile(r"包邮|免邮|运费|邮费|快递费|免运费|加钱|补钱|补差价"),
    "express": re.compile(r"顺丰|(?<![a-z])sf(?![0-9])|加急快递", re.I),
    "couriers": re.compile(
        r"(?:什么|啥|哪个|哪家|哪种|默认|发的)快递|快递是哪|中通|圆通|韵达|申通|极兔|邮政|ems|京东快递|德邦",
        re.I,
    ),
    "from": re.compile(
        r"(?:从|在)?(?:哪里|哪儿|哪)(?:发货|发的|发出|寄|发)|发货地|哪个仓|仓库在哪"
    ),
    "when": re.compile(
        r"(?:什么时候|啥时候|几时|多久|几天|多长时间|几小时)(?:能|可以)?(?:发|寄)"
        r"|当天(?:能|可以)?发|今天(?:能|可以)?发|明天(?:能|可以)?发|发货时间|几点(?:之|以)?前"
        r"|(?:能|可以)?发出吗|48小时"
    ),
    "transit": re.compile(
        r"(?:几天|多久|多长时间|什么时候|啥时候|几号)(?:能|可以|才能)?(?:到|收到|送到|送达|到货|到手)"
        r"|送达|物流(?:要|一般)?(?:走)?几天|时效|(?:要|得|需要)(?:几天|多久)(?!.?[发寄])"
    ),
}


def shipping_topics(text: str) -> list[str]:
    """The shipping questions asked in ``text``, in a fixed order (see SHIPPING_TOPICS)."""
    return [topic for topic, pattern in SHIPPING_TOPICS.items() if pattern.search(text)]


def shipping_answers(
    policies: ShopPolicies, text: str, now: datetime | None = None
) -> list[tuple[str, dict[str, str]]]:
    """(message key, values) for every shipping question in ``text``; empty when none is
    recognised (the caller then gives the general shipping answer)."""
    from xiaoer.shop.regions import find_region

    answers: list[tuple[str, dict[str, str]]] = []
    topics = shipping_topics(text)
    region = find_region(text)
    no_delivery = False
    if region:
        group, word = region
        values = {"region": word}
        if group in policies.no_delivery:
            answers.append(("ship_no_delivery", values))
            no_delivery = True
        elif group in policies.surcharge_regions:
            answers.append(("ship_region_surcharge", values))
        else:
            answers.append(("ship_free_region", values))
    if "free" in topics and not region:
        answers.append(("ship_free", {}))
    if no_delivery:
        return answers
    if "express" in topics:
        answers.append(("ship_express", {}))
    elif "couriers" in topics:
        answers.append(("ship_couriers", {}))
    if "from" in topics:
        answers.append(("ship_from", {}))
    if "when" in topics:
        current = (now or now_beijing()).astimezone(BEIJING)
        today = current.time() < policies.same_day_cutoff
        answers.append(
            (
                "ship_when_today" if today else "ship_when_tomorrow",
                {"now_time": f"{current:%H:%M}"},
            )
        )
    if "transit" in topics:
        answers.append(("ship_transit", {}))
    return answers


# --- coupons: only where they apply -------------------------------------------------------
_THRESHOLD_COUPON = re.compile(r"满\s*(\d+(?:\.\d+)?)\s*减\s*(\d+(?:\.\d+)?)")


def coupon_for_price(coupon: str, price: Decimal) -> dict[str, str] | None:
    """For a "满199减20" coupon and one item's price: the values of the answer
    (threshold, off, missing amount or price after the coupon); None when the coupon
    is not a threshold coupon."""
    m = _THRESHOLD_COUPON.search(coupon or "")
    if not m:
        return None
    threshold, off = Decimal(m.group(1)), Decimal(m.group(2))
    values = {"coupon": coupon, "threshold": f"{threshold:g}", "off": f"{off:g}"}
    if price >= threshold:
        values["after_coupon"] = f"{(price - off).quantize(Decimal('0.01'))}"
    else:
        values["missing"] = f"{(threshold - price).quantize(Decimal('0.01'))}"
    return values
