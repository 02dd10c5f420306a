"""One turn's bot messages as Douyin platform messages, and the customer's number answer.

Douyin private messages have no buttons and few replies per customer message (⚠ about
6, docs/douyin.md), so a turn's texts are merged into as few messages as possible;
buttons and quick replies become numbered lines, answered with a bare number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from xiaoer.douyin.protocol import SCENE_REPLY, image_content, text_content
from xiaoer.douyin.settings import ChannelSettings

MSG_ID_VALID_SECONDS = 24 * 3600 - 300  # an answered msg_id is valid 24 h

_CHOICE = re.compile(
    r"^\s*第?\s*([0-9０-９]{1,2}|[一二三四五六七八九十])\s*(?:个|号|条|项|\.|、)?\s*$"
)
_CN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", 1)}


@dataclass(frozen=True)
class ReplyTarget:
    """Which customer message a reply answers (``scene``: im_replay_msg or enter)."""

    msg_id: str = ""
    conversation_id: str = ""
    scene: str = SCENE_REPLY


@dataclass(frozen=True)
class Part:
    content: dict[str, Any]
    preview: str  # the text the customer reads (for logs, the outbox and echo detection)


def render_parts(
    messages: list[dict[str, Any]], settings: ChannelSettings
) -> tuple[list[Part], list[str]]:
    """Merge one turn's bot messages into platform messages.

    Texts are joined; buttons and quick replies become numbered lines (their payloads
    are returned, in order, for the customer's number answer); an image ends the text
    before it. Custom ``{"douyin": <content>}`` is sent as is (e.g. a lead card)."""
    parts: list[Part] = []
    options: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(line for line in lines if line is not None).strip()
        lines.clear()
        while text:
            chunk, text = text[: settings.max_text_chars], text[settings.max_text_chars :]
            parts.append(Part(text_content(chunk), chunk))

    for message in messages:
        text = message.get("text")
        if text:
            lines.append(str(text))
        choices = message.get("buttons") or message.get("quick_replies") or []
        if choices:
            lines.append(settings.replies["options_hint"])
            for choice in choices:
                options.append(str(choice.get("payload") or choice.get("title") or ""))
                lines.append(f"{len(options)}. {choice.get('title') or choice.get('payload')}")
        custom = message.get("custom")
        if isinstance(custom, dict):
            if isinstance(custom.get("douyin"), dict):
                flush()
                parts.append(Part(dict(custom["douyin"]), f"[{custom['douyin'].get('msg_type')}]"))
            elif custom.get("text"):
                lines.append(str(custom["text"]))
        if message.get("attachment"):
            lines.append(str(message["attachment"]))
        if message.get("image"):
            image = str(message["image"])
            if image.startswith(("https://", "http://")):
                # an image an agent uploaded to the console: Douyin takes images by the
                # media id of its own upload API only, so the customer gets the link
                lines.append(f"[图片] {image}")
            else:
                flush()
                parts.append(Part(image_content(image), f"[图片] {image}"))
    flush()
    return parts, options


def chosen_option(text: str, options: tuple[str, ...]) -> int | None:
    """The 1-based option a bare number answer picks ("2", "２", "第二个"), if any."""
    if not options:
        return None
    match = _CHOICE.match(text or "")
    if not match:
        return None
    raw = match.group(1)
    number = _CN_DIGITS.get(raw) or int(
        raw.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    )
    return number if 1 <= number <= len(options) else None
