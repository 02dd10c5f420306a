"""Parsing and normalisation of values customers type (one place for all of them)."""

from __future__ import annotations

import re

from xiaoer.text.normalize import normalize_text

ORDER_ID_MIN_DIGITS = 16
ORDER_ID_MAX_DIGITS = 19

# Digits with optional single spaces or dashes between them, not glued to letters or digits
# (so tracking numbers such as SF1234567890123 never match).
ORDER_ID_PATTERN = re.compile(r"(?<![0-9a-z])\d(?:[ \-_]?\d){15,18}(?![0-9a-z])")


# The same written in Chinese numerals, one numeral per digit ("六九三八二七一零..."), with
# optional spaces or dashes; never next to another numeral or digit.
_CN_NUMERAL_CHARS = "零〇一幺壹二两贰三叁四肆五伍六陆七柒八捌九玖"
CN_ORDER_ID_PATTERN = re.compile(
    rf"(?<![0-9{_CN_NUMERAL_CHARS}])[{_CN_NUMERAL_CHARS}](?:[ \-]?[{_CN_NUMERAL_CHARS}]){{15,18}}"
    rf"(?![0-9{_CN_NUMERAL_CHARS}])"
)
# After-sales case numbers: "AS" and 6-12 digits ("AS20261101").
CASE_ID_PATTERN = re.compile(r"(?<![0-9a-z])as[ \-]?(\d{6,12})(?![0-9a-z])")


def chinese_numerals_to_digits(numerals: str) -> str:
    """ "六九三八" -> "6938": a digit per numeral (cn2an reads a digit string that way;
    the table is the fallback for 幺/两 and anything cn2an rejects)."""
    import cn2an

    plain = re.sub(r"[ \-]", "", numerals)
    try:
        value = str(cn2an.cn2an(plain, "normal"))
    except (ValueError, KeyError, TypeError):
        value = ""
    if len(value) == len(plain) and value.isdigit():
        return value
    return digits_from_chinese(plain)


def find_order_ids(norm: str) -> list[tuple[int, int, str]]:
    """Every order id in already normalised text: (start, end, digits), in order.

    Digits (ASCII after normalisation, spaces or dashes inside) or Chinese numerals.
    """
    found = []
    for m in ORDER_ID_PATTERN.finditer(norm):
        digits = re.sub(r"\D", "", m.group(0))
        if ORDER_ID_MIN_DIGITS <= len(digits) <= ORDER_ID_MAX_DIGITS:
            found.append((m.start(), m.end(), digits))
    for m in CN_ORDER_ID_PATTERN.finditer(norm):
        digits = chinese_numerals_to_digits(m.group(0))
        if ORDER_ID_MIN_DIGITS <= len(digits) <= ORDER_ID_MAX_DIGITS:
            found.append((m.start(), m.end(), digits))
    return sorted(found)


def find_case_ids(norm: str) -> list[tuple[int, int, str]]:
    """After-sales case numbers in normalised (lower-case) text: (start, end, "AS...")."""
    return [(m.start(), m.end(), "AS" + m.group(1)) for m in CASE_ID_PATTERN.finditer(norm)]


def parse_order_id(text: str | None) -> str | None:
    """Return the (first) order id (digits only) if ``text`` holds a valid one, else None.

    Accepts full-width digits, Chinese numerals, spaces and dashes inside, and words and
    punctuation around it ("单号 6938-2710-...", "订单号：6938271045123400006！").
    """
    if not text:
        return None
    found = find_order_ids(normalize_text(str(text)))
    return found[0][2] if found else None


def parse_order_ids(text: str | None) -> list[str]:
    """Every order id in ``text``, in order, without repeats."""
    if not text:
        return []
    ids = [digits for _, _, digits in find_order_ids(normalize_text(str(text)))]
    return list(dict.fromkeys(ids))


def looks_like_order_id_attempt(text: str | None) -> bool:
    """True when the customer apparently typed a number meant as an order id."""
    if not text:
        return False
    return len(re.sub(r"\D", "", normalize_text(str(text)))) >= 6


def mask_order_id(order_id: str) -> str:
    """Order ids are not personal data, but logs keep only the tail for brevity."""
    return f"…{order_id[-6:]}" if len(order_id) > 6 else order_id


# --- phone numbers -------------------------------------------------------------------
_CN_DIGITS = {
    "零": "0", "〇": "0", "一": "1", "幺": "1", "壹": "1", "二": "2", "两": "2", "贰": "2",
    "三": "3", "叁": "3", "四": "4", "肆": "4", "五": "5", "伍": "5", "六": "6", "陆": "6",
    "七": "7", "柒": "7", "八": "8", "捌": "8", "九": "9", "玖": "9",
}  # fmt: skip
_PHONE = re.compile(r"(?<!\d)(?:\+?86|0086)?[ \-]?(1[3-9]\d(?:[ \-]?\d){8})(?!\d)")


def digits_from_chinese(text: str) -> str:
    return "".join(_CN_DIGITS.get(ch, ch) for ch in text)


def parse_phone(text: str | None) -> str | None:
    """A mainland mobile number (11 digits starting with 1) in ``text``, normalised."""
    if not text:
        return None
    norm = digits_from_chinese(normalize_text(str(text)))
    match = _PHONE.search(norm)
    if not match:
        return None
    digits = re.sub(r"\D", "", match.group(1))
    return digits if len(digits) == 11 else None


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) == 11 else "***"


# --- addresses -----------------------------------------------------------------------
_PROVINCE = re.compile(
    r"(北京|上海|天津|重庆|香港|澳门|[\u4e00-\u9fff]{2,7}?(?:省|自治区|特别行政区))"
)
_CITY = re.compile(r"[\u4e00-\u9fff]{1,9}?(?:市|自治州|地区|盟|州)|北京|上海|天津|重庆")


def valid_address(text: str | None) -> str | None:
    """A delivery address naming a province (or municipality) and a city, tidied."""
    if not text:
        return None
    address = re.sub(r"\s+", " ", normalize_text(str(text)).strip())
    province = _PROVINCE.search(address)
    if not province:
        return None
    rest = address[province.end() :]
    municipality = province.group(1) in {"北京", "上海", "天津", "重庆"}
    if not municipality and not _CITY.search(rest):
        return None
    if len(address) < 8 or len(address) > 120:
        return None
    return address


def valid_name(text: str | None) -> str | None:
    """A recipient name: 2-20 characters, letters or Chinese, no digits."""
    if not text:
        return None
    name = normalize_text(str(text)).strip()
    name = re.sub(r"^(收件人|收货人|名字|姓名)(是|改成|改为|:)?", "", name).strip()
    if 2 <= len(name) <= 20 and not re.search(r"\d", name):
        return name
    return None


# --- body measures -------------------------------------------------------------------
def _cn_number(text: str) -> float | None:
    units = {"十": 10}
    digits = digits_from_chinese(text)
    if digits.isdigit():
        return float(digits)
    if "百" in text:  # 一百 / 一百二 / 一百二十五
        head, _, tail = text.partition("百")
        hundreds = int(digits_from_chinese(head)) if head else 1
        rest = (_cn_number(tail) or 0) if tail else 0
        if tail and len(tail) == 1 and "十" not in tail:
            rest *= 10
        return float(hundreds * 100 + rest)
    if "十" in text:  # 五十 / 五十五 / 十五
        head, _, tail = text.partition("十")
        tens = int(digits_from_chinese(head)) if head else 1
        ones = int(digits_from_chinese(tail)) if tail else 0
        return float(tens * units["十"] + ones)
    return None


_HEIGHT_PATTERNS = [
    (re.compile(r"([1一])\s*(?:米|m)\s*([0-9一二三四五六七八九零]{1,2})(?!\d)"), "m+cm"),
    (re.compile(r"(?<!\d)(1\.\d{1,2})\s*(?:米|m)(?![a-z])"), "m"),
    (re.compile(r"(?<![\d.])(\d{2,3})\s*(?:cm|厘米|公分)"), "cm"),
    (re.compile(r"身高\s*(?:是|有)?\s*(\d{2,3})"), "cm"),
]
_WEIGHT_PATTERNS = [
    (re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d)?)\s*(?:kg|公斤|千克)"), 1.0),
    (re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d)?)\s*斤"), 0.5),
    (re.compile(r"([一二三四五六七八九十百两]{2,5})\s*斤"), 0.5),
    (re.compile(r"体重\s*(?:是|有)?\s*(\d{2,3})"), 0.0),  # unit guessed below
]
_BARE_PAIR = re.compile(r"(?<![\d.])(1[4-9]\d)\s*[ ,，/、]\s*(\d{2,3})(?![\d.])")


_BARE_HEIGHT = re.compile(r"(?<![\d.])(1[4-9]\d)(?![\d.])")


def find_body_measures(norm: str) -> dict[str, tuple[float, int, int]]:
    """Height (cm) and weight (kg) with their spans, in already normalised text."""
    found: dict[str, tuple[float, int, int]] = {}
    for pattern, kind in _HEIGHT_PATTERNS:
        m = pattern.search(norm)
        if not m:
            continue
        if kind == "m+cm":
            tail = _cn_number(m.group(2)) or 0
            height = 100 + (tail * 10 if tail < 10 and len(m.group(2)) == 1 else tail)
        elif kind == "m":
            height = float(round(float(m.group(1)) * 100))
        else:
            height = float(m.group(1))
        found["height_cm"] = (float(height), m.start(), m.end())
        break
    for pattern, factor in _WEIGHT_PATTERNS:
        m = pattern.search(norm)
        if not m:
            continue
        raw = m.group(1)
        value = float(raw) if raw[0].isdigit() else _cn_number(raw)
        if value is None:
            continue
        if factor == 0.0:  # "体重110": above 100 is surely 斤
            factor = 0.5 if value > 100 else 1.0
        found["weight_kg"] = (value * factor, m.start(), m.end())
        break
    if "height_cm" not in found or "weight_kg" not in found:
        bare = _BARE_PAIR.search(norm)
        if bare:
            found.setdefault("height_cm", (float(bare.group(1)), bare.start(1), bare.end(1)))
            if "weight_kg" not in found:
                w = float(bare.group(2))
                found["weight_kg"] = (w * 0.5 if w > 100 else w, bare.start(2), bare.end(2))
    if "height_cm" not in found and "weight_kg" in found:
        bare_height = _BARE_HEIGHT.search(norm)
        if bare_height:
            found["height_cm"] = (
                float(bare_height.group(1)),
                bare_height.start(),
                bare_height.end(),
            )
    if "height_cm" in found and not 50 <= found["height_cm"][0] <= 220:
        del found["height_cm"]
    if "weight_kg" in found and not 10 <= found["weight_kg"][0] <= 200:
        del found["weight_kg"]
    return found


def parse_body_measures(text: str | None) -> tuple[float | None, float | None]:
    """(height in cm, weight in kg) from "165 55kg", "一米七 120斤", "身高160体重50公斤"..."""
    if not text:
        return None, None
    found = find_body_measures(normalize_text(str(text)))
    height = found.get("height_cm")
    weight = found.get("weight_kg")
    return (height[0] if height else None), (weight[0] if weight else None)


# --- a bare size as a follow-up ("那43呢", "L码呢") -----------------------------------
BARE_SIZE = re.compile(
    r"^(?:那|那么|那你|还有|换成|要)?\s*(?:[\u4e00-\u9fff]{1,2}色的?)?\s*"
    r"(?P<size>\d{2,3}|X{0,3}[SML]|XXL|XL)\s*(?:码|号)?\s*(?:的)?\s*"
    r"(?:呢|有吗|有没有|还有吗|有不|有么|可以吗|行吗)?\s*[?？。!！~～]*$",
    re.IGNORECASE,
)


def bare_size(text: str | None) -> str | None:
    """The size of a message that is only a size with follow-up words ("那43呢"), upper
    case; None for anything else (an order number is never this short)."""
    match = BARE_SIZE.match(normalize_text(str(text or "")).strip())
    return match.group("size").upper() if match else None
