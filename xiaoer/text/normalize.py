"""Text normalisation for Chinese customer messages.

``normalize`` returns the normalised text together with, for every normalised
character, its index in the original text, so that tokens and entities found in the
normalised text can be mapped back to spans of what the customer actually wrote.

Normalisation: full-width forms to half-width (NFKC, one character at a time),
lower case, Traditional to Simplified Chinese, runs of repeated punctuation
collapsed to one character.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opencc

_PUNCT_CATEGORIES = ("P", "S")
_KEEP_REPEATED = set("0123456789")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _char_nfkc(ch: str) -> str:
    if ch == "\u3000":
        return " "
    out = unicodedata.normalize("NFKC", ch)
    return out if len(out) == 1 else ch


def to_simplified(text: str) -> str:
    """Traditional to Simplified Chinese, keeping the length of the text unchanged."""
    if not text:
        return text
    converted = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(c if len(c := _t2s().convert(ch)) == 1 else ch for ch in text)


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in _PUNCT_CATEGORIES and ch not in _KEEP_REPEATED


@dataclass(frozen=True)
class NormalizedText:
    text: str
    offsets: tuple[int, ...]  # offsets[i] = index in the original of normalised char i
    original: str

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalised text to the original text."""
        return self.offsets[start], self.offsets[end - 1] + 1


@lru_cache(maxsize=512)
def normalize(text: str) -> NormalizedText:
    """Cached: the tokenizer and both entity extractors normalise the same message."""
    chars = to_simplified("".join(_char_nfkc(c) for c in text)).lower()
    out: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(chars):
        if out and _is_punct(ch) and ch == out[-1]:
            continue  # "！！！" -> "!"
        if out and ch in "…~" and out[-1] in "…~":
            continue
        out.append(ch)
        offsets.append(i)
    return NormalizedText("".join(out), tuple(offsets), text)


def normalize_text(text: str) -> str:
    return normalize(text).text


# --- robust reading of customer messages --------------------------------------------
# ``normalize_message`` = ``normalize`` + the rewrites below, for the NLU pipeline (the
# tokenizer and the shop entity extractor). Values typed into forms (addresses, names)
# keep the plain ``normalize``: nothing there is rewritten.
#
# 1. Cantonese particles and words to Mandarin (冇 -> 没有, 咩 -> 什么, 系唔系 -> 是不是 ...).
# 2. Common English words to their Chinese shop meaning (size -> 尺码, refund -> 退款 ...),
#    whole words only, so sizes such as "xl" or "m" are never touched.
# 3. Homophone typos of shop terms (快地 -> 快递, 退宽 -> 退款, 发标 -> 发票): a window of the
#    text whose toneless pinyin equals a lexicon term's (b/p, d/t, g/k fuzzy), sharing at
#    least one character with it and differing in at most one, made of Chinese characters
#    only, and not a protected real word (发火, 取笑, 克服 ...). Digits are never touched.
# 4. Repetition squeezed: "在吗在吗在吗" -> "在吗", "哈哈哈哈" -> "哈哈".
# 5. An emoji-only message becomes the word it stands for (🙏 -> 谢谢, 👋 -> 你好 ...).
# 6. Pinyin typed inside Chinese words ("退kuan" -> 退款, "xie xie" -> 谢谢): only runs of
#    letters that, with their Chinese neighbours, spell a lexicon word exactly
#    (xiaoer/text/pinyin_typing.py).
# 7. Net slang: a message of "88" / "886" / "8888" is a goodbye (拜拜), "hhhh" and "23333"
#    are laughter (哈哈). Digits inside longer numbers are never touched.

import re  # noqa: E402

from pypinyin import Style, lazy_pinyin  # noqa: E402

from xiaoer.text.pinyin_typing import COMMON_WORDS, pinyin_edits  # noqa: E402

CANTONESE: dict[str, str] = {
    "系唔系": "是不是",
    "系咪": "是不是",
    "有冇": "有没有",
    "几多钱": "多少钱",
    "几钱": "多少钱",
    "几时": "什么时候",
    "乜嘢": "什么",
    "咩嘢": "什么",
    "点解": "为什么",
    "点样": "怎么样",
    "点算": "怎么办",
    "边度": "哪里",
    "边个": "哪个",
    "唔该": "谢谢",
    "几耐": "多久",
    "仲未": "还没",
    "仲有": "还有",
    "唔使": "不用",
    "唔啱": "不合适",
    "点搞": "怎么办",
    "喺度": "在",
    "走先": "先走",
    "多谢": "谢谢",
    "冇": "没有",
    "咩": "什么",
    "嘅": "的",
    "唔": "不",
    "啲": "些",
    "佢": "他",
    "喺": "在",
    "俾": "给",
    "畀": "给",
    "睇": "看",
    "咗": "了",
    "嚟": "来",
    "揾": "找",
    "攞": "拿",
    "嘢": "东西",
    "咁": "这么",
    "靓": "漂亮",
    "噉": "这样",
    "呢个": "这个",
    "呢件": "这件",
    "呢款": "这款",
    "嗰个": "那个",
    "嗰件": "那件",
}

ENGLISH: dict[str, str] = {
    "how much": "多少钱",
    "thank you": "谢谢",
    "in stock": "有货",
    "size": "尺码",
    "sizes": "尺码",
    "price": "价格",
    "ok": "好",
    "okay": "好",
    "okk": "好",
    "pls": "请",
    "plz": "请",
    "please": "请",
    "refund": "退款",
    "invoice": "发票",
    "coupon": "优惠券",
    "discount": "优惠",
    "stock": "库存",
    "shipping": "快递",
    "delivery": "快递",
    "express": "快递",
    "tracking": "物流",
    "thanks": "谢谢",
    "thx": "谢谢",
    "color": "颜色",
    "colour": "颜色",
    "hello": "你好",
    "hi": "你好",
    "bye": "再见",
    "byebye": "再见",
    "cancel": "取消",
    "return": "退货",
    "order": "订单",
    # mixed-in English phrases (longest match first; sizes such as "m" / "xl" never match)
    "asap": "尽快",
    "ship": "发货",
    "shipped": "发货",
    "deliver": "送到",
    "delivered": "送到",
    "how long": "多久",
    "order no": "订单号",
    "order number": "订单号",
    "order id": "订单号",
    "my order": "我的订单",
    "refunded": "退款",
    "money back": "退钱",
    "days": "天",
    "day": "天",
    "material": "材质",
    "fabric": "面料",
    "quality": "质量",
    "size chart": "尺码表",
    "size guide": "尺码表",
    "call me": "打电话给我",
    "my phone": "我的电话",
    "phone": "电话",
    "usa": "美国",
    "overseas": "海外",
    "abroad": "国外",
    "free shipping": "包邮",
    "available": "有货",
    "are you human": "你是真人吗",
    "are you a human": "你是真人吗",
    "are you a bot": "你是机器人吗",
    "are you a robot": "你是机器人吗",
    "human": "人工",
    "agent": "人工客服",
    "real person": "真人",
    "customer service": "客服",
    "cheaper": "便宜点",
    "cheap": "便宜",
    "no need": "不用",
    "bye bye": "再见",
    "thank u": "谢谢",
    "exchange": "换货",
    "so bad": "太差了",
    "bad quality": "质量差",
    "broken": "坏了",
    "address": "地址",
}

# Shop terms checked for homophone typos (the catalogue's names are added at run time by
# the tokenizer: ``add_lexicon_terms``).
SHOP_LEXICON: tuple[str, ...] = (
    "快递", "发票", "退款", "退货", "换货", "尺码", "码数", "物流", "优惠券", "优惠",
    "包邮", "运费", "运费险", "发货", "到货", "签收", "单号", "订单", "客服", "人工",
    "价格", "颜色", "质量", "尺寸", "偏小", "偏大", "顺丰", "中通", "圆通", "韵达",
    "申通", "邮政", "退运费", "七天无理由", "售后", "链接", "库存", "催发货",
    "开发票", "电子发票", "多少钱",
)  # fmt: skip
# Real words that sound like a shop term and must stay as they are.
PROTECTED_WORDS: frozenset[str] = frozenset(
    {
        "发火", "取笑", "克服", "包有", "包邮", "人公", "价钱", "运气", "发过", "到过",
        "退回", "换个", "快的", "快点", "单好", "订的", "物料", "颜值", "发飘", "码上",
        "马上", "吗数", "会员", "优秀", "尺子", "尺度", "签字", "签售", "售后", "手后",
        "补法", "库房", "连接", "发表", "发布", "发报", "退化", "换过", "快得", "链条", "多少", "价格", "快讯", "快滴",
    }
)  # fmt: skip
_FUZZY_INITIALS = {"p": "b", "t": "d", "k": "g", "zh": "z", "ch": "c", "sh": "s"}

EMOJI_WORDS: tuple[tuple[str, str], ...] = (
    ("🙏💐🌹❤💕💖😘🥰🤝", "谢谢"),
    ("👍👌✅", "好的"),
    ("👋🙋", "你好"),
    ("😡😠🤬💢👎😤", "太差了"),
    ("😂🤣😄😁😆😊🙂😃😀😅😜🤭", "哈哈"),
)
_EMOJI_ONLY = re.compile(
    "^[\\s\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d\u3030\u00a9\u00ae"
    "!?.,~。！？，～]+$"
)
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Chinese numerals are digits ("零零零零" in an order number): never squeezed.
_NUMERALS = "零〇一幺壹二两贰三叁四肆五伍六陆七柒八捌九玖十百千万亿"
_WORD_CHAR = rf"(?:(?![{_NUMERALS}])[\u4e00-\u9fff])"
_REPEATED_PHRASE = re.compile(rf"((?!(.)\2){_WORD_CHAR}{{2,4}}?)(?:[\s,，!！?？~]*\1)+")
_REPEATED_CHAR = re.compile(rf"({_WORD_CHAR})\1{{2,}}")
_ENGLISH_WORD = re.compile(
    r"(?<![a-z_])("
    + "|".join(sorted(map(re.escape, ENGLISH), key=len, reverse=True))
    + r")(?![a-z_])"
)
_CANTONESE = re.compile("|".join(sorted(map(re.escape, CANTONESE), key=len, reverse=True)))

_lexicon_extra: set[str] = set()


def add_lexicon_terms(terms: Any) -> None:
    """Catalogue names (Chinese, 2-6 characters) checked for homophone typos too."""
    new = {t for t in terms if isinstance(t, str) and 2 <= len(t) <= 6 and _CJK.fullmatch(t[0])}
    new = {t for t in new if all(_CJK.fullmatch(c) for c in t)}
    if new - _lexicon_extra:
        _lexicon_extra.update(new)
        _pinyin_index.cache_clear()
        normalize_message.cache_clear()


@lru_cache(maxsize=8192)
def _char_pinyin(ch: str) -> str:
    syllable = lazy_pinyin(ch, style=Style.NORMAL, errors="ignore")
    return syllable[0] if syllable else ch


def _fuzzy(syllable: str) -> str:
    for full in ("zh", "ch", "sh"):
        if syllable.startswith(full):
            return _FUZZY_INITIALS[full] + syllable[2:]
    head = syllable[:1]
    tail = syllable[1:].replace("ng", "n")
    return _FUZZY_INITIALS.get(head, head) + tail


@lru_cache(maxsize=1)
def _pinyin_index() -> tuple[dict[tuple[str, ...], str], re.Pattern[str], tuple[int, ...]]:
    """{fuzzy pinyin: term}, a pattern of the correctly written terms, window lengths."""
    index: dict[tuple[str, ...], str] = {}
    for term in (*SHOP_LEXICON, *sorted(_lexicon_extra)):
        key = tuple(_fuzzy(_char_pinyin(c)) for c in term)
        index.setdefault(key, term)
    terms = sorted(set(index.values()), key=len, reverse=True)
    lengths = tuple(sorted({len(k) for k in index}, reverse=True))
    return index, re.compile("|".join(map(re.escape, terms))), lengths


def _rewrite(norm: NormalizedText, edits: list[tuple[int, int, str]]) -> NormalizedText:
    """Apply non-overlapping (start, end, replacement) edits, composing the offsets."""
    if not edits:
        return norm
    out: list[str] = []
    offsets: list[int] = []
    position = 0
    for start, end, replacement in sorted(edits):
        if start < position:
            continue
        out.append(norm.text[position:start])
        offsets.extend(norm.offsets[position:start])
        out.append(replacement)
        for j in range(len(replacement)):  # the last character ends where the source ends
            last = j == len(replacement) - 1
            offsets.append(norm.offsets[end - 1 if last else min(start + j, end - 1)])
        position = end
    out.append(norm.text[position:])
    offsets.extend(norm.offsets[position:])
    return NormalizedText("".join(out), tuple(offsets), norm.original)


def _typo_edits(text: str) -> list[tuple[int, int, str]]:
    if not _CJK.search(text):
        return []
    index, written, lengths = _pinyin_index()
    keys = [_fuzzy(_char_pinyin(c)) if _CJK.fullmatch(c) else "" for c in text]
    edits: list[tuple[int, int, str]] = []
    correct = [False] * len(text)  # characters of correctly written terms are never edited
    for m in written.finditer(text):
        correct[m.start() : m.end()] = [True] * (m.end() - m.start())
    i = 0
    while i < len(text):
        for length in lengths:
            window = text[i : i + length]
            if len(window) < length or "" in keys[i : i + length] or any(correct[i : i + length]):
                continue
            term = index.get(tuple(keys[i : i + length]))
            if term is None or window == term or window in PROTECTED_WORDS:
                continue
            same = sum(a == b for a, b in zip(window, term, strict=True))
            if same >= 1 and length - same <= (1 if length <= 3 else 2):
                edits.append((i, i + length, term))
                i += length - 1
                break
        i += 1
    return edits


def _pinyin_words() -> tuple[str, ...]:
    return (*SHOP_LEXICON, *COMMON_WORDS, *sorted(_lexicon_extra))


# Net slang written in digits or letters: "88" / "886" (bye), "233333" / "hhhh" (laughter).
_SLANG_WHOLE = re.compile(r"^\s*8{2,}6?\s*[!.~]*\s*$")
_LAUGHTER = re.compile(r"(?<![a-z0-9])(?:h{3,}|23{4,}|(?:ha){2,}h?)(?![a-z0-9元块件个号米])")


def _slang(text: str) -> list[tuple[re.Match[str], str]]:
    whole = _SLANG_WHOLE.match(text)
    if whole:
        return [(whole, "拜拜")]
    return [(m, "哈哈") for m in _LAUGHTER.finditer(text)]


@lru_cache(maxsize=512)
def normalize_message(text: str) -> NormalizedText:
    """Normalised text of a customer message for the NLU pipeline (see above)."""
    norm = normalize(text)
    if norm.text.strip() and _EMOJI_ONLY.match(norm.text):
        for emojis, word in EMOJI_WORDS:
            if any(e in norm.text for e in emojis):
                return NormalizedText(word, (0,) * len(word), text)
        return norm
    norm = _rewrite(
        norm, [(m.start(), m.end(), CANTONESE[m.group(0)]) for m in _CANTONESE.finditer(norm.text)]
    )
    norm = _rewrite(
        norm, [(m.start(), m.end(), ENGLISH[m.group(1)]) for m in _ENGLISH_WORD.finditer(norm.text)]
    )
    norm = _rewrite(norm, pinyin_edits(norm.text, _pinyin_words()))
    norm = _rewrite(norm, [(m.start(), m.end(), word) for m, word in _slang(norm.text)])
    norm = _rewrite(norm, _typo_edits(norm.text))
    norm = _rewrite(
        norm, [(m.start(), m.end(), m.group(1) * 2) for m in _REPEATED_CHAR.finditer(norm.text)]
    )
    return _rewrite(
        norm, [(m.start(), m.end(), m.group(1)) for m in _REPEATED_PHRASE.finditer(norm.text)]
    )


def normalize_message_text(text: str) -> str:
    return normalize_message(text).text
