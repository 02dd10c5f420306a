"""Pinyin typed inside Chinese words, as people type when the input method is in the wrong
mode: "退kuan" -> 退款, "tui货" -> 退货, "多shao" -> 多少, "bu要" -> 不要, "xie xie" -> 谢谢.

Conservative on purpose. A run of latin letters (not touching a digit, so order numbers,
case numbers such as "AS20261101" and tracking numbers are left alone) is rewritten only
when its letters, with 0-2 neighbouring Chinese characters, spell a word of a small lexicon
(shop terms and common words) exactly: the letters are the word's toneless pinyin, the
Chinese neighbours are the word's own characters. A run of letters only may also be a
sequence of whole lexicon words ("nihao zaima"). Sizes (s m l xl xxl), English words and
brand names spell no lexicon word, so they are never touched; short English words that are
also pinyin ("long", "man") are never read as pinyin when they stand alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

# Common words customers type in pinyin (the shop lexicon of xiaoer.text.normalize is added).
COMMON_WORDS: tuple[str, ...] = (
    "你好", "您好", "谢谢", "多谢", "多少", "多少钱", "不要", "不用", "在吗", "在不在",
    "在嘛", "再见", "拜拜", "好的", "可以", "没有", "什么", "怎么", "怎么办", "为什么",
    "多久", "几天", "便宜", "退钱", "地址", "取消", "材质", "面料", "料子", "有货",
    "现货", "直播间", "主播", "麻烦", "谢谢你", "老板", "宝贝", "衣服", "鞋子", "裤子",
    "杯子", "能退吗", "发货了吗", "到了吗", "是不是", "有没有", "真人", "转人工",
    "人工客服", "尺码表", "福利价", "直播价", "运费险", "包邮吗", "七天", "改地址",
    "质量", "差评", "投诉", "骗子", "垃圾", "知道了", "明白", "确认", "收到", "没收到",
)  # fmt: skip
# English words that are also pinyin syllables: alone they are English.
_ENGLISH_SYLLABLES = frozenset(
    "a an ai ao e en er o ou me he she die tie lie pie long man men hen pin ping fan bang "
    "hang ban can ran gun bin pan tan dan nan wan yan sun fun bun hang gang sang tang "
    "bo go no so to yo ha hi mai tai bai dong king pang".split()
)
_RUN = re.compile(r"(?<![a-z0-9_])[a-z]+(?: +[a-z]+)*(?![a-z0-9_])")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _syllables(word: str) -> tuple[str, ...]:
    return tuple(lazy_pinyin(word, style=Style.NORMAL, errors="ignore"))


@lru_cache(maxsize=4)
def _lexicon(
    words: tuple[str, ...],
) -> tuple[dict[str, list[tuple[str, tuple[str, ...]]]], dict[str, str]]:
    """{latin letters of a word part: [(word, syllables)]} for every split, {letters: word}."""
    parts: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    whole: dict[str, str] = {}
    for word in words:
        syllables = _syllables(word)
        if len(syllables) != len(word) or len(word) < 2:
            continue
        whole.setdefault("".join(syllables), word)
        for i in range(len(word)):
            for j in range(i + 1, len(word) + 1):
                if i == 0 and j == len(word):
                    continue  # the whole word: ``whole``
                parts.setdefault("".join(syllables[i:j]), []).append((word, syllables))
    return parts, whole


def _split_whole(letters: str, whole: dict[str, str]) -> list[str] | None:
    """letters as a sequence of whole lexicon words (longest first), or None."""
    if not letters:
        return []
    for end in range(len(letters), 3, -1):
        word = whole.get(letters[:end])
        if word is not None and (rest := _split_whole(letters[end:], whole)) is not None:
            return [word, *rest]
    return None


def pinyin_edits(text: str, words: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """(start, end, word) edits of latin pinyin runs in ``text`` (normalised, lower case)."""
    if not re.search("[a-z]", text):
        return []
    parts, whole = _lexicon(words)
    edits: list[tuple[int, int, str]] = []
    for m in _RUN.finditer(text):
        letters = m.group(0).replace(" ", "")
        if len(letters) < 2:
            continue
        start, end = m.start(), m.end()
        best: tuple[int, int, str] | None = None
        for word, syllables in parts.get(letters, ()):
            # the word = left Chinese neighbours + the letters + right Chinese neighbours
            for left in range(len(word)):
                if "".join(syllables[left:]).startswith(letters) is False:
                    continue
                right = len(word) - left - _count(syllables[left:], letters)
                if right < 0 or left + right == 0:
                    continue
                before = text[start - left : start] if left else ""
                after = text[end : end + right] if right else ""
                if before == word[:left] and after == (word[len(word) - right :] if right else ""):
                    if left <= start and (best is None or len(word) > len(best[2])):
                        best = (start - left, end + right, word)
        if best is None and (words_found := _split_whole(letters, whole)):
            single = len(words_found) == 1 and " " not in m.group(0)
            if not (single and letters in _ENGLISH_SYLLABLES):
                best = (start, end, "".join(words_found))
        if best is not None:
            edits.append(best)
    return edits


def _count(syllables: tuple[str, ...], letters: str) -> int:
    """How many leading syllables spell ``letters`` exactly (-1 if none)."""
    joined = ""
    for n, syllable in enumerate(syllables, 1):
        joined += syllable
        if joined == letters:
            return n
        if len(joined) >= len(letters):
            break
    return 10**6  # makes ``right`` negative: no match
