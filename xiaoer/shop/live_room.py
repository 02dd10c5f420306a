"""The live room (直播间): link numbers -> products, the product being presented, and
the merchant's fixed answers to live-room words (xiaoer.yml ``live_room``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from xiaoer.core.config import get_settings

# "主播身上那件", "主播手上的", "主播穿的", "现在讲的这个": the product being presented
PRESENTING = re.compile(
    r"主播(?:身上|手上|手里|穿的|穿着|拿的|拿着|正在讲|在讲|讲的|介绍的|试的|展示的)"
    r"|(?:现在|正在|刚刚?才?)(?:讲|介绍|展示|试穿)的(?:这|那)?(?:件|个|款|双)?"
)

# built-in answers, used when xiaoer.yml has none for a topic
DEFAULT_REPLIES: dict[str, list[str]] = {
    "how_to_buy": [
        "亲，点直播间左下角的小黄车🛒，找到对应的链接号（{links}），选好颜色尺码点「立即购买」就拍上啦～“上车”就是下单的意思哦！"
    ],
    "comment_one": ["扣1就是在评论区发“1”，告诉主播您想要～扣完记得点小黄车去拍哦！"],
    "lucky_bag": [
        "福袋在直播间左上角，点开按提示参与，开奖后中奖的宝宝按提示填写收货地址领取就好🎁"
    ],
    "link_where": ["链接都在直播间左下角的小黄车🛒里：{links}。想要哪款直接点对应的链接就能拍～"],
}


@dataclass(frozen=True)
class LiveRoom:
    links: dict[str, str] = field(default_factory=dict)  # "3" -> "P1003"
    presenting: str | None = None
    replies: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, section: dict[str, Any]) -> LiveRoom:
        links = {str(k).strip(): str(v).strip() for k, v in (section.get("links") or {}).items()}
        replies: dict[str, list[str]] = {}
        for topic, value in (section.get("replies") or {}).items():
            variants = [value] if isinstance(value, str) else list(value or [])
            variants = [str(v) for v in variants if str(v).strip()]
            if variants:
                replies[str(topic)] = variants
        presenting = str(section.get("presenting") or "").strip() or None
        return cls(links=links, presenting=presenting, replies=replies)

    def product_for_link(self, link_no: str) -> str | None:
        return self.links.get(str(link_no).strip())

    def links_for_product(self, product_id: str) -> list[str]:
        return [no for no, pid in self.links.items() if pid == product_id]

    def reply_variants(self, topic: str) -> list[str]:
        return self.replies.get(topic) or DEFAULT_REPLIES[topic]


def presenting_named(text: str) -> bool:
    """Whether the message is about the product the host is presenting now."""
    return bool(PRESENTING.search(text or ""))


def live_room() -> LiveRoom:
    return LiveRoom.from_settings(get_settings().section("live_room"))
