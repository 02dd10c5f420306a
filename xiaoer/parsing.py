"""Parsing and normalisation of values customers type (one place for all of them)."""

from __future__ import annotations

import re

from xiaoer.text import normalize_text

ORDER_ID_MIN_DIGITS = 16
ORDER_ID_MAX_DIGITS = 19

# Digits with optional single spaces or dashes between them, not glued to letters or digits
# (so tracking numbers such as SF1234567890123 never match).
ORDER_ID_PATTERN = re.compile(r"(?<![0-9a-z])\d(?:[ \-_]?\d){15,18}(?![0-9a-z])")


def parse_order_id(text: str | None) -> str | None:
    """Return the order id (digits only) if ``text`` holds a valid one, else None.

    Accepts full-width digits, spaces and dashes inside, and a few words around it
    ("单号 6938-2710-...").
    """
    if not text:
        return None
    norm = normalize_text(str(text))
    match = ORDER_ID_PATTERN.search(norm)
    if not match:
        return None
    digits = re.sub(r"\D", "", match.group(0))
    if ORDER_ID_MIN_DIGITS <= len(digits) <= ORDER_ID_MAX_DIGITS:
        return digits
    return None


def looks_like_order_id_attempt(text: str | None) -> bool:
    """True when the customer apparently typed a number meant as an order id."""
    if not text:
        return False
    return len(re.sub(r"\D", "", normalize_text(str(text)))) >= 6


def mask_order_id(order_id: str) -> str:
    """Order ids are not personal data, but logs keep only the tail for brevity."""
    return f"…{order_id[-6:]}" if len(order_id) > 6 else order_id
