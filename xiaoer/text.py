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
