"""Contact capture: mainland mobile numbers and WeChat ids in customer messages.

``find_contacts(text)`` returns every contact with its normalised value and its span in
the ORIGINAL text (what the customer typed, before normalisation).

Phones
    Mainland mobiles, 11 digits ``1[3-9]xxxxxxxxx``, written with spaces, dashes or dots
    between digit groups, with a ``+86`` / ``(+86)`` / ``0086`` / ``86`` prefix, in
    full-width digits, in Chinese numerals (一二三 / 壹贰叁, 幺 for 1, 两 for 2) or a mix.
    The value is the 11 ASCII digits; the span includes the country prefix.

    A digit "run" (digits joined by single separators) is a phone only when the whole run
    is one, or when a phone-shaped part of it is cut off by whitespace or by a switch
    between ASCII digits and Chinese numerals ("13912345678 2件", "13912345678一会儿").
    Runs of 16-19 digits (order ids, bank cards) are never split, and a number glued to
    letters (SF..., YT..., except the markers vx / wx / tel), to a currency sign, to a unit
    (元, 块, kg, cm, 斤...) or announced as an order / tracking number is never a phone.
    Landlines, 10 and 12 digit numbers, dates, times, prices and measures cannot match
    the 11-digit ``1[3-9]`` shape.

WeChat
    An id of 6-20 letters, digits, ``_`` and ``-``, starting with a letter, after a marker
    (微信, 微信号, vx, v信, wx, 薇, 威信, 加v, 加微, 卫星, "v:"...) and a few filler words ("是",
    "号", ":", "搜", "加我"...); the value is the id as written (full-width folded to
    ASCII, case kept). A phone right after a marker ("加v 139...", "微信同号 139...") or
    declared the same as the WeChat ("139... 微信同号", "139...(微信)") is BOTH a phone
    and a wechat, whose value is the 11 digits. Negated markers ("没有微信") are ignored.
    ``wxid_...`` ids are recognised without a marker.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from xiaoer.text.normalize import NormalizedText, normalize
from xiaoer.text.parsing import (
    ORDER_ID_MAX_DIGITS,
    ORDER_ID_MIN_DIGITS,
    digits_from_chinese,
    valid_address,
    valid_name,
)

ContactKind = Literal["phone", "wechat"]


@dataclass(frozen=True)
class Contact:
    kind: ContactKind
    value: str
    start: int  # offsets into the original text
    end: int


# --- phones --------------------------------------------------------------------------
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_DIGITS = frozenset("0123456789")
_CN_NUMERALS = frozenset("零〇一幺壹二两贰三叁四肆五伍六陆七柒八捌九玖")
_SEP = r"(?:[ ]{1,2}|[ ]*[\-.·—][ ]*)"
# An optional explicit country prefix, then digits joined by single separators.
_RUN = re.compile(
    r"(?P<prefix>(?:\([ ]*\+?[ ]*(?:00)?86[ ]*\)|\+[ ]*(?:00)?86)[ \-.]*)?"
    rf"[0-9]+(?:{_SEP}[0-9]+)*"
)
# Letters allowed to be glued to a phone number ("vx13912345678", "tel:").
_LETTERS_BEFORE = frozenset({"v", "vx", "wx", "tel", "phone", "mobile", "wechat", "weixin"})
_LETTERS_AFTER = frozenset({"v", "vx", "wx", "wechat", "weixin"})
_CURRENCY = frozenset("¥$€£")
_UNIT_AFTER = re.compile(r"(?:元|块|毛|rmb|kg|cm|mm|ml|斤|公斤|克|%)")
_NOT_A_PHONE_BEFORE = re.compile(
    r"(?:单号|订单|运单|快递号|物流号|编号|单子|条码)(?:号|码)?[ :是为]{0,3}$"
)
# Groupings of a phone cut off by whitespace inside a longer run of digit groups ("13912345678
# 2件", "139 1234 5678 138 1234 5678"); anything else (a 12-digit "139 1234 5678 9") is not one.
_PHONE_GROUPINGS = frozenset({(11,), (3, 4, 4)})
# A phone followed by a word starting with 一 / 两 ("...一会儿打给我", "...两件都要").
_TRAILING_WORD_NUMERALS = frozenset("一两")


@dataclass(frozen=True)
class _Atom:
    start: int  # in normalised text
    end: int
    digits: str


@dataclass(frozen=True)
class _Phone:
    start: int  # in normalised text, prefix included
    end: int
    value: str


def _mobile_digits(digits: str) -> str | None:
    """The 11-digit mobile in ``digits`` (allowing an 86 / 0086 prefix), else None."""
    for prefix in ("", "86", "0086"):
        rest = digits[len(prefix) :]
        if digits.startswith(prefix) and len(rest) == 11 and _MOBILE.fullmatch(rest):
            return rest
    return None


def _atoms(view: str, text: str, start: int, end: int) -> tuple[list[_Atom], list[bool]]:
    """Digit groups of a run and, between consecutive groups, whether the boundary is soft
    (whitespace only, or a switch between ASCII digits and Chinese numerals)."""
    atoms: list[_Atom] = []
    soft: list[bool] = []
    i = start
    while i < end:
        if view[i] not in _DIGITS:
            i += 1
            continue
        j = i
        chinese = text[i] in _CN_NUMERALS
        while j < end and view[j] in _DIGITS and (text[j] in _CN_NUMERALS) == chinese:
            j += 1
        if atoms:
            gap = text[atoms[-1].end : i]
            soft.append(not gap.strip(" "))
        atoms.append(_Atom(i, j, view[i:j]))
        i = j
    return atoms, soft


def _glued_ok(text: str, start: int, end: int) -> bool:
    """False when the number at [start, end) is part of something that is not a phone."""
    before = text[:start]
    letters = re.search(r"([a-z]+):?$", before[-16:])
    if letters and letters.group(1) not in _LETTERS_BEFORE:
        return False  # SF1234..., YT..., "no13912345678"
    if before and before[-1] in _CURRENCY:
        return False
    if _NOT_A_PHONE_BEFORE.search(before[-12:]):
        return False
    after = text[end:]
    letters = re.match(r"[a-z]+", after)
    if letters and letters.group(0) not in _LETTERS_AFTER:
        return False
    return not _UNIT_AFTER.match(after)


def _whole_run(digits: str, explicit_prefix: bool) -> str | None:
    if explicit_prefix:
        return digits if _MOBILE.fullmatch(digits) else None
    return _mobile_digits(digits)


def _find_phones(norm: str) -> list[_Phone]:
    view = digits_from_chinese(norm)
    phones: list[_Phone] = []
    for run in _RUN.finditer(view):
        explicit_prefix = run.group("prefix") is not None
        atoms, soft = _atoms(
            view, norm, run.end("prefix") if explicit_prefix else run.start(), run.end()
        )
        if not atoms:
            continue
        digits = "".join(a.digits for a in atoms)
        end = run.end()
        whole = _whole_run(digits, explicit_prefix)
        if not whole and _ends_with_numeral_word(norm, atoms, end):
            # "...5678两件" / "幺三九一二三四五六七八一会儿": a word starting with 一 / 两 follows
            whole = _whole_run(digits[:-1], explicit_prefix)
            end -= 1
            while view[end - 1] not in _DIGITS:
                end -= 1  # the separator before "两"
        if whole:
            if _glued_ok(norm, run.start(), end):
                phones.append(_Phone(run.start(), end, whole))
            continue
        if ORDER_ID_MIN_DIGITS <= len(digits) <= ORDER_ID_MAX_DIGITS:
            continue  # an order id (or a bank card): never split into a phone
        phones.extend(_phones_inside(norm, run, atoms, soft))
    return phones


def _ends_with_numeral_word(norm: str, atoms: list[_Atom], end: int) -> bool:
    last = atoms[-1]
    return (
        end < len(norm)
        and norm[end - 1] in _TRAILING_WORD_NUMERALS
        and end >= 2
        and ((len(last.digits) == 1 and len(atoms) > 1) or norm[end - 2] in _CN_NUMERALS)
        and "\u4e00" <= norm[end] <= "\u9fff"
        and norm[end] not in _CN_NUMERALS
    )


def _phones_inside(
    norm: str, run: re.Match[str], atoms: list[_Atom], soft: list[bool]
) -> list[_Phone]:
    """Phones cut off by soft boundaries inside a run that is not a phone as a whole."""
    found: list[_Phone] = []
    i = 0
    n = len(atoms)
    while i < n:
        hit = None
        if i == 0 or soft[i - 1]:
            for j in range(i, n):
                if j < n - 1 and not soft[j]:
                    continue
                part = atoms[i : j + 1]
                value = _mobile_digits("".join(a.digits for a in part))
                if value and _phone_shaped(norm, part):
                    start = run.start() if i == 0 else part[0].start
                    if _glued_ok(norm, start, part[-1].end):
                        hit = (j, _Phone(start, part[-1].end, value))
                        break
        if hit:
            found.append(hit[1])
            i = hit[0] + 1
        else:
            i += 1
    return found


def _phone_shaped(norm: str, part: list[_Atom]) -> bool:
    """A part of a longer run counts as a phone only if grouped like one."""
    if any(norm[a.start] in _CN_NUMERALS for a in part):
        return True  # a script switch is a strong boundary: "13912345678一会儿"
    sizes = tuple(len(a.digits) for a in part)
    if part[0].digits in ("86", "0086") and len(part) > 1:
        sizes = sizes[1:]
    return sizes in _PHONE_GROUPINGS or sizes in ((13,), (15,))  # 86 / 0086 glued on


# --- wechat --------------------------------------------------------------------------
_MARKER = re.compile(
    r"微信号|微信|威信号|威信|薇信|维信|徽信|卫星号|卫星|(?:加|[+➕])微(?!信)|薇"
    r"|(?<![a-z0-9])v信"
    r"|(?<![a-z0-9])(?:vx|wx|weixin|wechat)(?![a-z])"
    r"|(?:加|[+➕])v(?![a-z信])"
    r"|(?<![a-z0-9])v(?=[ ]?[:❤♥])"
)
_FILLER_TOKEN = (
    r"[ :=,、/\-~>→*#\u2600-\u27bf\U0001f300-\U0001faff]|号码|号|码|是|为|的|搜索|搜|账号|帐号|id|也是|就是|都是"
    r"|也|都|可以|可|行|和|跟|或者|或|电话|手机|同|加|我|一下|个|呗|吧|哦|噢|呀|啊|哈|亲"
)
_FILLER = re.compile(rf"(?:{_FILLER_TOKEN})*")
_ID_AFTER_MARKER = re.compile(
    rf"(?:{_FILLER_TOKEN}){{0,10}}?(?<![a-z0-9_\-])(?P<id>[a-z][a-z0-9_\-]*)(?![a-z0-9_\-])(?![@.][a-z0-9])"
)
_WXID = re.compile(r"(?<![a-z0-9_\-])wxid_[a-z0-9_\-]{4,16}(?![a-z0-9_\-])")
_ID_STOPWORDS = frozenset(
    {"wechat", "weixin", "iphone", "android", "paypal", "alipay", "taobao", "douyin", "online"}
)
# "没有微信", "不用加微信", "不方便加微信", "别加我微信", "不是微信" (but "要不加个微信")
_NEGATED = re.compile(
    r"(?<!要)(?:不|没|别|无)(?:需要|必要|方便|常用|用|要|想|有|是|会|能)?(?:加|用|玩)?"
    r"(?:你|我|个|他)?的?$"
)
_SAME_AFTER = re.compile(
    r"号?[ ]*(?:同号|同手机|同电话|一样|相同|通用|也是|也行|也可以|同上|就是|[)）])"
)
_SAME_BEFORE = re.compile(r"(?:同|也是|就是|即|(?:也)?(?:可以|可|能)?加|[(（])[ ]*$")
_ONLY_TRAILING = re.compile(r"[\s,.!~。!?？、)）\U0001F300-\U0001FAFF]*$")
_GAP_TO_PHONE = re.compile(r"[^0-9a-z。?]{0,8}")
_NAME_BEFORE_WEI = re.compile(r"[\u4e00-\u9fff]")
_WEI_ALLOWED_BEFORE = frozenset("加我的个你有是留")


def _marker_ok(norm: str, m: re.Match[str]) -> bool:
    if _NEGATED.search(norm[max(0, m.start() - 6) : m.start()]):
        return False
    if m.group(0) == "薇":  # also a common given name: 小薇, 薇薇
        prev = norm[m.start() - 1] if m.start() else ""
        nxt = norm[m.end()] if m.end() < len(norm) else ""
        if prev and _NAME_BEFORE_WEI.match(prev) and prev not in _WEI_ALLOWED_BEFORE:
            return False
        # a Chinese numeral after it starts a number ("薇壹叁…"), not a name ("薇薇")
        spelled_digit = digits_from_chinese(nxt).isdigit()
        if nxt and _NAME_BEFORE_WEI.match(nxt) and nxt not in "信号是为" and not spelled_digit:
            return False
    return True


def _id_span(norm: NormalizedText, start: int, end: int) -> tuple[int, int]:
    """Original span of an id; "abc__" was normalised to "abc_": take the repeats back."""
    o_start, o_end = norm.span(start, end)
    text = norm.original
    while o_end < len(text) and text[o_end] == text[o_end - 1] and text[o_end] in "_-":
        o_end += 1
    return o_start, o_end


def _find_wechats(norm: NormalizedText, phones: list[_Phone]) -> list[tuple[int, int, str | None]]:
    """(start, end, value) in normalised text; value None means "take it as written"."""
    text = norm.text
    found: list[tuple[int, int, str | None]] = []
    for m in _MARKER.finditer(text):
        if not _marker_ok(text, m) or any(s <= m.start() < e for s, e, v in found if v is None):
            continue  # negated, or a marker inside an id ("微信 vx-abc123")
        ident = _ID_AFTER_MARKER.match(text, m.end())
        if ident and ident.group("id") not in _ID_STOPWORDS:
            o_start, o_end = _id_span(norm, ident.start("id"), ident.end("id"))
            if 6 <= o_end - o_start <= 20:
                found.append((ident.start("id"), ident.end("id"), None))
                continue
        after = [p for p in phones if p.start >= m.end()]
        if after and _FILLER.fullmatch(text, m.end(), after[0].start):
            found.append((after[0].start, after[0].end, after[0].value))
            continue
        rest = text[m.end() :]
        same = (
            _SAME_AFTER.match(rest)
            or _SAME_BEFORE.search(text, 0, m.start())
            or _ONLY_TRAILING.fullmatch(rest)
        )
        before = [p for p in phones if p.end <= m.start()]
        if same and before and _GAP_TO_PHONE.fullmatch(text, before[-1].end, m.start()):
            found.append((before[-1].start, before[-1].end, before[-1].value))
    for m in _WXID.finditer(text):
        found.append((m.start(), m.end(), None))
    return found


# --- public API ----------------------------------------------------------------------
def _as_written(original: str) -> str:
    """The id as the customer typed it, full-width letters folded to ASCII."""
    return "".join(
        out if len(out := unicodedata.normalize("NFKC", ch)) == 1 else ch for ch in original
    )


def find_contacts(text: str | None) -> list[Contact]:
    """Phones and WeChat ids in ``text``, spans in the original text, sorted by position."""
    if not text:
        return []
    norm = normalize(text)
    phones = _find_phones(norm.text)
    wechats = _find_wechats(norm, phones)
    ids = [(s, e) for s, e, value in wechats if value is None]
    contacts: dict[tuple[str, int, int], Contact] = {}
    for phone in phones:
        if any(s <= phone.start and phone.end <= e for s, e in ids):
            continue  # digits inside a WeChat id
        start, end = norm.span(phone.start, phone.end)
        contacts.setdefault(("phone", start, end), Contact("phone", phone.value, start, end))
    for n_start, n_end, value in wechats:
        if value is None:
            start, end = _id_span(norm, n_start, n_end)
            value = _as_written(text[start:end])
        else:
            start, end = norm.span(n_start, n_end)
        contacts.setdefault(("wechat", start, end), Contact("wechat", value, start, end))
    return sorted(contacts.values(), key=lambda c: (c.start, c.kind != "phone", c.end))


def find_phones(text: str | None) -> list[str]:
    """Normalised phone numbers in ``text`` (convenience for actions and lead capture)."""
    return [c.value for c in find_contacts(text) if c.kind == "phone"]


# --- a recipient in one message ------------------------------------------------------
_NAME_LABEL = re.compile(
    r"(?:收件人|收货人|姓名|名字)(?:是|改成|改为|换成)?[:：\s]*([\u4e00-\u9fff]{2,4})"
)
_LABELS = re.compile(
    r"(?:新的?)?(?:收件人|收货人|姓名|名字|联系电话|电话|手机号码?|手机|收货地址|新地址|地址)"
    r"(?:是|改成|改为|换成)?[:：]?"
)
_LEAD_WORDS = re.compile(r"^(?:帮我|麻烦)?(?:改成|改为|换成|改到|寄到|送到)")
_CN_NAME = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
_PLACE_CHARS = re.compile(r"[省市区县镇乡村路街道巷弄号楼栋室层苑园庄]")
_GLUED_NAME = re.compile(r"(?<=[号室楼栋层])([\u4e00-\u9fff]{2,3})$")


def recipient_in(text: str | None) -> tuple[str, str, str] | None:
    """(name, phone, address) when one message holds all three, in any order, with or
    without 收件人/电话 labels: the phone from the contact extractor, the name 2-4 Chinese
    characters next to the phone or after 收件人/姓名, the rest the address."""

    if not text:
        return None
    text = str(text)
    phones = [c for c in find_contacts(text) if c.kind == "phone"]
    if len(phones) != 1:
        return None
    phone = phones[0]
    before, after = text[: phone.start], text[phone.end :]
    labelled = _NAME_LABEL.search(before + " " + after)
    name: str | None = labelled.group(1) if labelled else None
    rest = f"{before} \x00 {after}"
    if name:
        rest = rest.replace(labelled.group(0), " ", 1) if labelled else rest
    parts = [p for p in re.split(r"[\s,，;；。、]+", _LABELS.sub(" ", rest)) if p]
    if name is None:
        at = parts.index("\x00") if "\x00" in parts else -1
        for i in (at - 1, at + 1):  # next to the phone
            if (
                0 <= i < len(parts)
                and _CN_NAME.match(parts[i])
                and not _PLACE_CHARS.search(parts[i])
            ):
                name = parts.pop(i)
                break
        else:
            glued = _GLUED_NAME.search(parts[at - 1]) if at > 0 else None
            if glued:  # "…文三路88号李四 139…"
                name = glued.group(1)
                parts[at - 1] = parts[at - 1][: glued.start()]
    address = valid_address(_LEAD_WORDS.sub("", "".join(p for p in parts if p != "\x00")))
    if not name or not address or valid_name(name) is None:
        return None
    return name, phone.value, address
