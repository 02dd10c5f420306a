"""Placeholders in texts a merchant edits (greetings, quick replies): checked on save, so a
stray ``{`` or an unknown ``{name}`` is refused with a clear message next to the field
instead of breaking every message sent with it later."""

from __future__ import annotations

from collections.abc import Iterable
from string import Formatter

GREETING_PLACEHOLDERS = (
    "nickname", "shop_name", "bot_name", "service_hours", "coupon", "returning_code",
)  # fmt: skip
REPLY_PLACEHOLDERS = ("nickname", "shop_name", "bot_name", "service_hours")


def placeholder_error(text: str, allowed: Iterable[str]) -> str | None:
    """What is wrong with the placeholders of ``text`` (in Chinese), None when nothing is."""
    names = tuple(allowed)
    listed = "、".join("{" + n + "}" for n in names)
    try:
        parts = list(Formatter().parse(text))
    except ValueError:
        return f"“{text[:30]}”中的花括号不成对：占位符要写成 {{nickname}} 这样；可用：{listed}"
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in names:
            shown = "{" + name + "}" if name else "{}"
            return f"“{text[:30]}”中有未知的占位符 {shown}；可用：{listed}"
        if spec or conversion:
            return f"占位符 {{{name}}} 后不能带格式说明"
    return None


def fill(text: str, values: dict[str, str]) -> str:
    """The text with its placeholders filled (unknown or broken ones left as written)."""

    class _Keep(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    try:
        return text.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError, KeyError):
        return text
