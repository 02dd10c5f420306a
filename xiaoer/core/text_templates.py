"""Checking the placeholders of a merchant's text (replies, welcome, sign-off) on save.

A text is filled with ``str.format_map``: a stray ``{`` or an unknown ``{name}`` would
break every message built from it, so the console refuses such a text with the error
next to the field (in Simplified Chinese) and keeps what was typed.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

# the shop's facts every merchant text may use
COMMON_PLACEHOLDERS = ("shop_name", "bot_name", "service_hours")


def placeholder_error(text: str, allowed: Iterable[str] = COMMON_PLACEHOLDERS) -> str | None:
    """Why ``text`` cannot be filled (None: it can). ``{{`` and ``}}`` are literal braces."""
    names = tuple(allowed)
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError:
        return "花括号不成对：占位符应写成 {名称}，要显示花括号本身请写 {{ 或 }}"
    for name in fields:
        if name not in names:
            shown = "、".join("{" + n + "}" for n in names)
            if not name:
                return f"占位符不能为空 {{}}，可用：{shown}"
            return f"未知占位符 {{{name}}}，可用：{shown}"
    return None


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with its placeholders filled (unknown ones blank; a broken text as is)."""
    try:
        return text.format_map(_Blank(values))
    except (ValueError, IndexError, AttributeError, KeyError):
        return text
