"""Greeting scripts for Douyin's proactive moments (a new follower, a customer who opens
the chat), by customer segment and time of day, with several variants each.

Merchants edit the scripts, the day hours and the quiet hours in ``xiaoer.yml``
(section ``douyin``); the defaults below apply to whatever the file leaves out.
Placeholders: ``{nickname}`` (else 亲), ``{shop_name}``, ``{bot_name}``,
``{service_hours}``, ``{coupon}`` (the everyone coupon), ``{returning_code}``.

:func:`greet` is the moment itself: when the settings and the cooldown allow it, the
Douyin service triggers ``EXTERNAL_douyin_greet`` in Rasa (actions/greeting.py picks the
script) and sends what it says.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time as clock
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from xiaoer.douyin.bridge import TurnBridge
    from xiaoer.douyin.protocol import Envelope
    from xiaoer.douyin.replies import ReplyTarget
    from xiaoer.douyin.settings import ChannelSettings
    from xiaoer.douyin.store import Conversation, DouyinStore

logger = logging.getLogger(__name__)

SEGMENTS = ("new_follower", "new_customer", "returning_customer")
PERIODS = ("day", "night")
EVENT_FOLLOW = "new_follow_action"
EVENT_ENTER = "im_enter_direct_msg"
GREET_INTENT = "EXTERNAL_douyin_greet"

DEFAULT_SCRIPTS: dict[str, dict[str, list[str]]] = {
    "new_follower": {
        "day": [
            "{nickname}，感谢关注{shop_name}！我是客服{bot_name}～新粉可用{coupon}优惠，"
            "查订单、问尺码、退换货都可以直接私信我哦😊",
            "欢迎{nickname}关注{shop_name}🎉 我是{bot_name}，有任何商品或订单问题随时私信我，"
            "下单满足条件还能用{coupon}～",
            "谢谢{nickname}的关注！{shop_name}的{bot_name}在线，想了解商品、发货或售后，"
            "直接发消息给我就好～",
        ],
        "night": [
            "{nickname}，感谢关注{shop_name}🌙 我是{bot_name}，夜间也可以帮您查订单、答疑，"
            "人工客服{service_hours}在线～",
            "夜深了还来关注{shop_name}，谢谢{nickname}💕 有问题直接私信{bot_name}，"
            "需要人工的话{service_hours}会尽快回复您。",
        ],
    },
    "new_customer": {
        "day": [
            "{nickname}您好，欢迎来到{shop_name}！我是客服{bot_name}，"
            "商品、尺码、发货和优惠都可以问我，满足条件可用{coupon}～",
            "哈喽{nickname}～{shop_name}的{bot_name}在的！想了解哪款商品呢？"
            "直接发消息给我就好😊",
            "{nickname}您好呀，我是{shop_name}的{bot_name}，查订单、问物流、退换货都能帮您，"
            "请问有什么可以帮您？",
        ],
        "night": [
            "{nickname}晚上好🌙 我是{shop_name}的{bot_name}，夜间也能帮您查订单、解答问题，"
            "人工客服{service_hours}在线～",
            "{nickname}您好，{bot_name}24小时在线～有什么问题直接留言，"
            "需要人工的话{service_hours}会尽快处理哦。",
        ],
    },
    "returning_customer": {
        "day": [
            "{nickname}，欢迎回来！{shop_name}的{bot_name}一直在～老顾客专享{returning_code}"
            "额外优惠，订单和售后问题也可以直接问我😊",
            "又见面啦{nickname}～我是{bot_name}，需要查之前的订单还是看看新品？"
            "老顾客还可以用优惠码{returning_code}哦。",
            "{nickname}您好，感谢一直支持{shop_name}💕 有什么需要{bot_name}帮忙的吗？",
        ],
        "night": [
            "{nickname}晚上好，欢迎回来🌙 {bot_name}在线，订单物流随时可查，"
            "人工客服{service_hours}在线～",
            "{nickname}，这么晚还来看看{shop_name}，谢谢支持💕 有问题直接问{bot_name}，"
            "老顾客优惠码{returning_code}也别忘了用～",
        ],
    },
}

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value: Any, default: str) -> time:
    text = str(value or default).strip()
    match = _HHMM.match(text) or _HHMM.match(default)
    assert match is not None
    return time(int(match.group(1)), int(match.group(2)))


def in_window(moment: time, start: time, end: time) -> bool:
    """Whether ``moment`` is in [start, end); windows may wrap midnight (23:00–08:00)."""
    if start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


@dataclass(frozen=True)
class GreetingSettings:
    scripts: dict[str, dict[str, list[str]]] = field(default_factory=lambda: DEFAULT_SCRIPTS)
    day_start: time = time(9, 0)
    day_end: time = time(22, 0)
    quiet_start: time = time(23, 0)
    quiet_end: time = time(8, 0)
    quiet_events: tuple[str, ...] = (EVENT_FOLLOW,)
    enabled_events: tuple[str, ...] = (EVENT_FOLLOW, EVENT_ENTER)
    cooldown_minutes: float = 30.0

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> GreetingSettings:
        greet = section.get("greeting") if isinstance(section.get("greeting"), dict) else {}
        assert isinstance(greet, dict)
        scripts = {seg: {p: list(v) for p, v in by.items()} for seg, by in DEFAULT_SCRIPTS.items()}
        for segment, by_period in (greet.get("scripts") or {}).items():
            if segment not in SEGMENTS or not isinstance(by_period, dict):
                continue
            for period, variants in by_period.items():
                cleaned = [str(v) for v in variants or [] if str(v).strip()]
                if period in PERIODS and cleaned:
                    scripts[segment][period] = cleaned
        day = greet.get("day_hours") or {}
        quiet = greet.get("quiet_hours") or {}
        return cls(
            scripts=scripts,
            day_start=parse_hhmm(day.get("start"), "09:00"),
            day_end=parse_hhmm(day.get("end"), "22:00"),
            quiet_start=parse_hhmm(quiet.get("start"), "23:00"),
            quiet_end=parse_hhmm(quiet.get("end"), "08:00"),
            quiet_events=tuple(quiet.get("events") or (EVENT_FOLLOW,)),
            enabled_events=tuple(greet.get("events") or (EVENT_FOLLOW, EVENT_ENTER)),
            cooldown_minutes=float(greet.get("cooldown_minutes", 30)),
        )

    def period(self, moment: datetime) -> str:
        return "day" if in_window(moment.time(), self.day_start, self.day_end) else "night"

    def allowed(self, event: str, moment: datetime) -> bool:
        """Whether a greeting for ``event`` may be sent at ``moment`` (Beijing time)."""
        if event not in self.enabled_events:
            return False
        quiet = in_window(moment.time(), self.quiet_start, self.quiet_end)
        return not (quiet and event in self.quiet_events)


def segment_for(event: str, returning: bool) -> str:
    """A returning customer (an earlier completed order) is greeted as such even when
    they just followed; otherwise a follow makes a new follower, anything else a new
    customer."""
    if returning:
        return "returning_customer"
    return "new_follower" if event == EVENT_FOLLOW else "new_customer"


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render_greeting(
    settings: GreetingSettings,
    segment: str,
    period: str,
    values: dict[str, str],
    rng: random.Random | None = None,
) -> str:
    variants = settings.scripts.get(segment, {}).get(period) or DEFAULT_SCRIPTS[segment][period]
    template = (rng or random).choice(variants)
    filled = _Defaults({k: v for k, v in values.items() if v})
    filled.setdefault("nickname", "亲")
    try:
        return template.format_map(filled)
    except (ValueError, IndexError, AttributeError):
        # a broken script saved before placeholders were checked: the default, not silence
        return DEFAULT_SCRIPTS[segment][period][0].format_map(filled)


def greeting_settings() -> GreetingSettings:
    """The greeting settings in force: the scripts an admin saved in the console override
    ``douyin.greeting.scripts`` of xiaoer.yml, which override the defaults (read at run
    time, so an edit applies to the next greeting)."""
    from dataclasses import replace

    from xiaoer.core.config import get_settings
    from xiaoer.core.settings import handoff_settings

    settings = GreetingSettings.from_section(get_settings().section("douyin"))
    scripts = {seg: dict(by) for seg, by in settings.scripts.items()}
    for segment, by_period in handoff_settings().greeting_scripts.items():
        for period, variants in (by_period or {}).items():
            cleaned = [str(v) for v in variants or [] if str(v).strip()]
            if segment in scripts and period in PERIODS and cleaned:
                scripts[segment][period] = cleaned
    return replace(settings, scripts=scripts)


def no_greeting_reason(
    settings: GreetingSettings,
    event: str,
    moment: datetime,
    conv: Conversation,
    now: float | None = None,
) -> str | None:
    """Why ``event`` gets no greeting (None: it gets one), in the words the simulator
    prints in place of a reply: the settings, quiet hours, or a customer who talked or
    was greeted within the cooldown."""
    if event not in settings.enabled_events:
        return "（没有回复：店铺关闭了这类欢迎语）"
    if not settings.allowed(event, moment):
        return "（没有回复：免打扰时段不发欢迎语）"
    now = clock.time() if now is None else now
    minutes = f"{settings.cooldown_minutes:g}"
    cooldown = settings.cooldown_minutes * 60
    if conv.last_greeted_at and now - conv.last_greeted_at < cooldown:
        return f"（{minutes} 分钟内已打过招呼，不再重复）"
    if conv.last_customer_at and now - conv.last_customer_at < cooldown:
        return f"（{minutes} 分钟内刚聊过，不再打招呼）"
    return None


class GreetingService(Protocol):
    """What a greeting needs of the channel's service."""

    store: DouyinStore
    greetings: GreetingSettings | None
    settings: ChannelSettings

    @property
    def bridge(self) -> TurnBridge: ...

    def output(self) -> Any: ...

    async def send(
        self, sender_id: str, messages: list[dict[str, Any]], target: ReplyTarget
    ) -> None: ...


async def greet(service: GreetingService, sender_id: str, envelope: Envelope) -> None:
    """Greet a new follower or a customer who opened the chat (unless quiet hours, the
    settings or a recent conversation say no)."""
    from xiaoer.core.clock import now_beijing
    from xiaoer.douyin.protocol import SCENE_ENTER
    from xiaoer.douyin.replies import ReplyTarget

    store = service.store
    greetings = service.greetings or greeting_settings()
    event = envelope.event
    conv = await asyncio.to_thread(store.conversation, sender_id)
    skipped = no_greeting_reason(greetings, event, now_beijing(), conv)
    if skipped is not None:
        logger.info("douyin: no %s greeting for %s %s", event, sender_id, skipped)
        return
    content = envelope.content
    conversation_id = str(content.get("conversation_short_id") or conv.conversation_short_id)
    scene = SCENE_ENTER if event == EVENT_ENTER else service.settings.follow_scene
    target = ReplyTarget("", conversation_id, scene)
    if conversation_id and conversation_id != conv.conversation_short_id:
        await asyncio.to_thread(
            store.update_conversation, sender_id, conversation_short_id=conversation_id
        )
    metadata = {"buyer_id": sender_id, "nickname": conv.nickname, "douyin_event": event}
    for key in ("ad_id", "creative_id"):
        if content.get(key):
            metadata[key] = str(content[key])
    output = service.output()
    await service.bridge.trigger(sender_id, GREET_INTENT, {"douyin_event": event}, metadata, output)
    messages: list[dict[str, Any]] = getattr(output, "messages", [])
    if messages:
        await asyncio.to_thread(store.update_conversation, sender_id, last_greeted_at=clock.time())
    await service.send(sender_id, messages, target)
