"""Which keyword rule a message triggers, and why (or why not).

The message is compared in its normalised form (full-width to half-width, Traditional to
Simplified, lower case: xiaoer/text/normalize.py), as are the keywords.

Negation and context:

* a keyword preceded in its clause by a negation (不是, 不要, 不用, 没有, 别, 无需, 不...)
  with at most a few filler words between them (要, 想, 会, 打算, 我...) does not count:
  "我不是要投诉" and "不用转人工" hand nothing over, while "不满意，我要投诉" and
  "不然我就投诉" still do (:func:`negated`);
* a rule's exclusion words (排除词) stop it: 曝光 is a complaint, "拍照曝光怎么调" is not.

:func:`explain` gives, for the console's test box and ``xiaoer keywords test``, the rule
that matches and a sentence for every rule that does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import regex

from xiaoer.core.clock import now_beijing
from xiaoer.keywords.store import CHANNELS, KeywordRule, get_keyword_store
from xiaoer.text.normalize import normalize_text

# negations, longest first so that 不是 wins over 不
NEGATIONS = (
    "不需要", "不打算", "没打算", "不至于", "并不是", "不是", "不要", "不用", "不想", "不会",
    "不必", "无需", "无须", "没有", "并非", "别", "没", "不",
)  # fmt: skip
# what may stand between a negation and the keyword it negates
_FILLER = re.compile(r"(?:我|你|要|想|会|打算|是|需要|用|去|找|帮我|给我|让|再|真的|真|说|在|来)*")
# a clause ends at sentence punctuation: a negation never reaches across it
_CLAUSE_END = re.compile(r"[，。！？；,.!?;\n~～、]|但|可是|不过|而是")
WINDOW = 8  # characters before a keyword searched for its negation
REGEX_TIMEOUT = 0.05  # seconds a merchant's pattern may take on one message


def negated(text: str, start: int) -> str | None:
    """The negation that governs the keyword at ``text[start:]`` (None: not negated)."""
    left = text[max(0, start - WINDOW) : start]
    ends = list(_CLAUSE_END.finditer(left))
    if ends:
        left = left[ends[-1].end() :]
    for i in range(len(left)):
        for cue in NEGATIONS:
            if left.startswith(cue, i) and _FILLER.fullmatch(left[i + len(cue) :]):
                return cue
    return None


@dataclass(frozen=True)
class Match:
    rule: KeywordRule
    keyword: str  # the keyword (or the text the pattern matched)
    start: int
    end: int


@dataclass
class Explanation:
    """The rule that matches (``match``) and why each other rule did not (``reasons``:
    rule id -> sentence), in matching order."""

    text: str
    match: Match | None = None
    reasons: dict[int, str] = field(default_factory=dict)
    rules: list[KeywordRule] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.match is None:
            return "没有命中任何关键词规则，这句话交给机器人模型理解。"
        r = self.match.rule
        what = "自动回复" if r.action == "reply" else "转人工"
        return f"命中规则 #{r.id}「{r.label}」（关键词「{self.match.keyword}」）→ {what}"

    def as_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "summary": self.summary,
            "match": None
            if self.match is None
            else {
                "rule": self.match.rule.id,
                "label": self.match.rule.label,
                "keyword": self.match.keyword,
                "action": self.match.rule.action,
            },
            "rules": [
                {"rule": r.id, "label": r.label, "why": self.reasons.get(r.id, "")}
                for r in self.rules
            ],
        }


def _find(rule: KeywordRule, text: str) -> tuple[Match | None, str]:
    """The rule's match in normalised ``text``, or why it has none."""
    if rule.mode == "exact":
        bare = re.sub(r"[\s,.!?;:~，。！？；：～、…]+", "", text)
        for keyword in rule.keywords:
            if bare == re.sub(r"[\s,.!?;:~，。！？；：～、…]+", "", normalize_text(keyword)):
                return Match(rule, keyword, 0, len(text)), ""
        return None, "整句与关键词不完全相同"
    if rule.mode == "regex":
        try:
            found = regex.search(rule.pattern, text, regex.IGNORECASE, timeout=REGEX_TIMEOUT)
        except (regex.error, TimeoutError):
            return None, "正则表达式无效或过慢，已跳过"
        if found is None:
            return None, "正则表达式不匹配"
        if rule.negation and (cue := negated(text, found.start())):
            return None, f"「{found.group(0)}」前有否定词「{cue}」"
        return Match(rule, found.group(0), found.start(), found.end()), ""
    negations = []
    for keyword in rule.keywords:
        needle = normalize_text(keyword)
        if not needle:
            continue
        position = text.find(needle)
        while position >= 0:
            cue = negated(text, position) if rule.negation else None
            if cue is None:
                return Match(rule, keyword, position, position + len(needle)), ""
            negations.append(f"「{keyword}」前有否定词「{cue}」")
            position = text.find(needle, position + 1)
    if negations:
        return None, "；".join(dict.fromkeys(negations)) + "，不算命中"
    return None, "不包含任何关键词"


def explain(
    text: str,
    channel: str | None = None,
    now: datetime | None = None,
    rules: Iterable[KeywordRule] | None = None,
) -> Explanation:
    """Every rule tried on ``text`` in order; the first that matches wins."""
    norm = normalize_text(text or "")
    now = now or now_beijing()
    candidates = list(rules) if rules is not None else get_keyword_store().all()
    result = Explanation(text=text, rules=candidates)
    for rule in candidates:
        if result.match is not None:
            result.reasons[rule.id] = f"优先级在已命中的规则 #{result.match.rule.id} 之后"
            continue
        if not rule.enabled:
            result.reasons[rule.id] = "规则已关闭"
            continue
        if not rule.applies_to(channel):
            result.reasons[rule.id] = f"只在「{CHANNELS.get(rule.channel, rule.channel)}」生效"
            continue
        if not rule.in_window(now):
            result.reasons[rule.id] = f"不在生效时段 {rule.window_text}（北京时间）"
            continue
        excluded = [w for w in rule.exclude if w and normalize_text(w) in norm]
        found, why = _find(rule, norm)
        if found is not None and excluded:
            result.reasons[rule.id] = f"包含排除词「{excluded[0]}」，不算命中"
            continue
        if found is None:
            result.reasons[rule.id] = why
            continue
        result.match = found
        result.reasons[rule.id] = f"命中关键词「{found.keyword}」"
    return result


def match(
    text: str,
    channel: str | None = None,
    now: datetime | None = None,
    rules: Iterable[KeywordRule] | None = None,
) -> Match | None:
    """The rule ``text`` triggers (None: none)."""
    return explain(text, channel, now, rules).match


# what the model's own handoff intents are about, for negation ("不用转人工")
HANDOFF_WORDS = {
    "complain": ("投诉", "举报", "12315", "差评", "曝光", "律师", "起诉"),
    "request_human": ("转人工客服", "转人工", "人工客服", "人工", "真人", "客服"),
}


def negated_intent(intent: str, text: str) -> str | None:
    """When the model read a handoff intent (complaint, a human) in a message that only
    mentions it negated ("我不是要投诉", "不用转人工"): the negated word; else None."""
    words = HANDOFF_WORDS.get(intent)
    if not words:
        return None
    norm = normalize_text(text or "")
    seen = None
    covered: set[int] = set()  # "人工" inside "转人工" is the same mention
    for word in sorted(words, key=len, reverse=True):
        position = norm.find(word)
        while position >= 0:
            span = set(range(position, position + len(word)))
            if not span & covered:
                covered |= span
                if negated(norm, position) is None:
                    return None  # said plainly somewhere: the intent stands
                seen = seen or word
            position = norm.find(word, position + 1)
    return seen


def excluded_sense(intent: str, text: str, rules: Sequence[KeywordRule]) -> str | None:
    """When the model read a complaint in a message whose complaint words are each there
    in another sense, as the merchant's handoff rule for that word says with its exclusion
    words ("这款手机拍照曝光怎么调": 曝光 with 拍照): that word; else None."""
    if intent != "complain":
        return None
    norm = normalize_text(text or "")
    present = [w for w in HANDOFF_WORDS[intent] if w in norm]
    if not present:
        return None
    for word in present:
        excused = any(
            rule.enabled
            and rule.action == "handoff"
            and word in [normalize_text(k) for k in rule.keywords]
            and any(x and normalize_text(x) in norm for x in rule.exclude)
            for rule in rules
        )
        if not excused:
            return None
    return present[0]
