"""Keyword rules (关键词回复): the merchant's preset answers and forced handoffs.

A rule has keywords (match mode ``exact``: the whole message is one of them;
``contains``: the message contains one) or a regular expression (``regex``), optional
exclusion words (the rule does not fire when the message contains one: 曝光 is a complaint
but 拍照曝光 is a camera setting), and does one thing: ``reply`` (a text, optional buttons,
an optional image) or ``handoff`` (to a human: ``complaint`` is urgent and goes to the
complaints group, ``request`` is an ordinary request for a human). Rules are tried by
priority (higher first, then the older rule), only on their channel (if one is set),
within their time window (the shop's clock, Beijing time; may wrap midnight) and when
switched on.

Rules live in the table ``keyword_rules`` of the project database. Every change made through
:class:`KeywordRuleStore` also writes a new version token (``console_settings`` key
:data:`VERSION_KEY`) in the same transaction. Every process (each Sanic worker of the Rasa
server, the console, the CLI) keeps the rules in memory and compares the token at most
every :data:`CHECK_SECONDS` (one primary-key read): an edit is live on every worker within a
fraction of a second, without retraining or restarting. A full reload every
:data:`CACHE_SECONDS` catches changes made to the table by hand.

The merchant's old handoff keywords (``handoff.keywords``: the console's setting, else
xiaoer.yml, else the defaults) become handoff rules once, the first time the rules are read
(:func:`migrate_old_keywords`); the old setting is left in place, unread.
"""

from __future__ import annotations

import json
import threading
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

import regex
from sqlalchemy import Column, Integer, Table, Text, select
from sqlalchemy.engine import Connection

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.text.placeholders import placeholder_error

keyword_rules = Table(
    "keyword_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("mode", Text, nullable=False),  # exact | contains | regex
    Column("keywords_json", Text, nullable=False, server_default="[]"),
    Column("pattern", Text, nullable=False, server_default=""),
    Column("exclude_json", Text, nullable=False, server_default="[]"),
    Column("action", Text, nullable=False),  # reply | handoff
    Column("reply_text", Text, nullable=False, server_default=""),
    Column("buttons_json", Text, nullable=False, server_default="[]"),
    Column("image_url", Text, nullable=False, server_default=""),
    Column("handoff_reason", Text, nullable=False, server_default=""),  # complaint | request
    Column("priority", Integer, nullable=False, server_default="50"),
    Column("channel", Text, nullable=False, server_default=""),  # "" = every channel
    Column("window_start", Text, nullable=False, server_default=""),  # HH:MM, Beijing
    Column("window_end", Text, nullable=False, server_default=""),
    Column("negation", Integer, nullable=False, server_default="1"),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", Text, nullable=False, server_default=""),
)

MODES = {"exact": "完全匹配", "contains": "包含关键词", "regex": "正则表达式"}
ACTIONS = {"reply": "自动回复", "handoff": "转人工"}
HANDOFF_REASONS = {"complaint": "投诉（紧急，投诉组）", "request": "普通转人工"}
CHANNELS = {"": "全部渠道", "rest": "网页/REST", "douyin": "抖音私信"}
REPLY_PLACEHOLDERS = ("shop_name", "bot_name", "service_hours")
MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 30
MAX_PATTERN_CHARS = 200
MAX_REPLY_CHARS = 1000
MAX_BUTTONS = 6
# how often a process compares the rules' version token (an edit is live that fast)
CHECK_SECONDS = 0.25
# a full reload at least this often (changes made to the table outside the store)
CACHE_SECONDS = 30.0
VERSION_KEY = "keyword_rules_version"
MIGRATION_MARKER = "keyword_rules_migrated"
_HHMM = regex.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class KeywordRule:
    id: int
    name: str
    mode: str
    keywords: tuple[str, ...]
    pattern: str
    exclude: tuple[str, ...]
    action: str
    reply_text: str = ""
    buttons: tuple[dict[str, str], ...] = ()
    image_url: str = ""
    handoff_reason: str = ""
    priority: int = 50
    channel: str = ""
    window_start: str = ""
    window_end: str = ""
    negation: bool = True
    enabled: bool = True
    updated_at: str = ""
    updated_by: str = ""

    @property
    def label(self) -> str:
        """How the console names the rule: its name, else its keywords or pattern."""
        if self.name:
            return self.name
        return self.pattern if self.mode == "regex" else "、".join(self.keywords[:3])

    @property
    def window_text(self) -> str:
        return f"{self.window_start}-{self.window_end}" if self.window_start else ""

    def in_window(self, now: datetime | None = None) -> bool:
        """Whether the rule is in force at ``now`` (the shop's clock); no window: always."""
        if not (self.window_start and self.window_end):
            return True
        current = (now or now_beijing()).astimezone(BEIJING).time()
        start, end = _time_of(self.window_start), _time_of(self.window_end)
        if start == end:
            return True
        if start < end:
            return start <= current < end
        return current >= start or current < end  # past midnight (22:00-08:00)

    def applies_to(self, channel: str | None) -> bool:
        return not self.channel or (channel or "") == self.channel

    def as_form(self) -> dict[str, str]:
        """The rule as the console's form fields."""
        return {
            "name": self.name,
            "mode": self.mode,
            "keywords": "\n".join(self.keywords),
            "pattern": self.pattern,
            "exclude": "\n".join(self.exclude),
            "action": self.action,
            "reply_text": self.reply_text,
            "buttons": "\n".join(
                b["title"] if b["payload"] == b["title"] else f"{b['title']}|{b['payload']}"
                for b in self.buttons
            ),
            "image_url": self.image_url,
            "handoff_reason": self.handoff_reason or "complaint",
            "priority": str(self.priority),
            "channel": self.channel,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "negation": "1" if self.negation else "",
            "enabled": "1" if self.enabled else "",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mode": self.mode,
            "keywords": list(self.keywords),
            "pattern": self.pattern,
            "exclude": list(self.exclude),
            "action": self.action,
            "reply_text": self.reply_text,
            "buttons": [dict(b) for b in self.buttons],
            "image_url": self.image_url,
            "handoff_reason": self.handoff_reason,
            "priority": self.priority,
            "channel": self.channel,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "negation": self.negation,
            "enabled": self.enabled,
        }


def _time_of(value: str) -> time:
    hour, minute = value.split(":")
    return time(int(hour), int(minute))


class RuleError(ValueError):
    """The rule was refused; ``errors`` maps each form field to its message (Chinese)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("；".join(errors.values()))
        self.errors = errors


def _lines(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        items = str(value or "").replace("｜", "\n").splitlines()
    return list(dict.fromkeys(s.strip() for s in items if s.strip()))


def _buttons(value: Any) -> list[dict[str, str]]:
    """Buttons as lines ``标题`` or ``标题|点击后发送的内容``."""
    if isinstance(value, list | tuple):
        out = []
        for b in value:
            if isinstance(b, dict) and str(b.get("title") or "").strip():
                title = str(b["title"]).strip()
                out.append({"title": title, "payload": str(b.get("payload") or title).strip()})
        return out
    buttons = []
    for line in str(value or "").splitlines():
        if not line.strip():
            continue
        title, _, payload = line.partition("|")
        title = title.strip()
        buttons.append({"title": title, "payload": payload.strip() or title})
    return buttons


def validate(form: dict[str, Any]) -> dict[str, Any]:
    """The row values of a rule from the form's fields (strings, or lists for the list
    fields); :class:`RuleError` with every field's error otherwise."""
    errors: dict[str, str] = {}
    name = str(form.get("name") or "").strip()[:60]
    mode = str(form.get("mode") or "contains")
    if mode not in MODES:
        errors["mode"] = "请选择匹配方式：完全匹配、包含关键词或正则表达式"
    keywords = _lines(form.get("keywords"))
    pattern = str(form.get("pattern") or "").strip()
    if mode in ("exact", "contains"):
        pattern = ""
        if not keywords:
            errors["keywords"] = "请至少填写一个关键词（每行一个）"
        elif len(keywords) > MAX_KEYWORDS:
            errors["keywords"] = f"关键词最多 {MAX_KEYWORDS} 个"
        elif too_long := [k for k in keywords if len(k) > MAX_KEYWORD_CHARS]:
            errors["keywords"] = f"关键词最长 {MAX_KEYWORD_CHARS} 个字：{too_long[0][:40]}"
    elif mode == "regex":
        keywords = []
        if not pattern:
            errors["pattern"] = "请填写正则表达式"
        elif len(pattern) > MAX_PATTERN_CHARS:
            errors["pattern"] = f"正则表达式最长 {MAX_PATTERN_CHARS} 个字符"
        else:
            try:
                compiled = regex.compile(pattern, regex.IGNORECASE)
            except regex.error as exc:
                errors["pattern"] = f"正则表达式有误：{exc}"
            else:
                if compiled.search("", timeout=0.05) is not None:
                    errors["pattern"] = "正则表达式不能匹配空消息（否则每句话都会命中）"
    exclude = _lines(form.get("exclude"))
    if len(exclude) > MAX_KEYWORDS:
        errors["exclude"] = f"排除词最多 {MAX_KEYWORDS} 个"
    action = str(form.get("action") or "reply")
    reply_text = str(form.get("reply_text") or "").strip()
    buttons = _buttons(form.get("buttons"))
    image_url = str(form.get("image_url") or "").strip()
    reason = str(form.get("handoff_reason") or "")
    if action not in ACTIONS:
        errors["action"] = "请选择命中后的动作：自动回复或转人工"
    elif action == "reply":
        reason = ""
        if not reply_text and not image_url:
            errors["reply_text"] = "自动回复需要填写回复内容（或图片地址）"
        elif len(reply_text) > MAX_REPLY_CHARS:
            errors["reply_text"] = f"回复内容最长 {MAX_REPLY_CHARS} 个字"
        elif problem := placeholder_error(reply_text, REPLY_PLACEHOLDERS):
            errors["reply_text"] = problem
        if len(buttons) > MAX_BUTTONS:
            errors["buttons"] = f"按钮最多 {MAX_BUTTONS} 个"
        elif any(len(b["title"]) > 20 or len(b["payload"]) > 200 for b in buttons):
            errors["buttons"] = "按钮标题最长 20 个字，发送内容最长 200 个字"
        if image_url and (not regex.match(r"^https?://\S+$", image_url) or len(image_url) > 2048):
            errors["image_url"] = "图片地址应以 http:// 或 https:// 开头"
    else:
        reply_text, buttons, image_url = "", [], ""
        if reason not in HANDOFF_REASONS:
            errors["handoff_reason"] = "请选择转人工的原因：投诉（紧急）或普通转人工"
    try:
        priority = int(str(form.get("priority") or "50").strip())
        if not 0 <= priority <= 100:
            raise ValueError
    except ValueError:
        errors["priority"] = "优先级是 0-100 的整数（数字越大越先匹配）"
        priority = 50
    channel = str(form.get("channel") or "")
    if channel not in CHANNELS:
        errors["channel"] = "请选择渠道"
    start = str(form.get("window_start") or "").strip()
    end = str(form.get("window_end") or "").strip()
    if start or end:
        if not (_HHMM.match(start) and _HHMM.match(end)):
            errors["window"] = "生效时段格式为 HH:MM（开始和结束都要填；都不填表示全天）"
    negation = _flag(form.get("negation"), True)
    enabled = _flag(form.get("enabled"), True)
    if errors:
        raise RuleError(errors)
    return {
        "name": name,
        "mode": mode,
        "keywords_json": json.dumps(keywords, ensure_ascii=False),
        "pattern": pattern,
        "exclude_json": json.dumps(exclude, ensure_ascii=False),
        "action": action,
        "reply_text": reply_text,
        "buttons_json": json.dumps(buttons, ensure_ascii=False),
        "image_url": image_url,
        "handoff_reason": reason,
        "priority": priority,
        "channel": channel,
        "window_start": start,
        "window_end": end,
        "negation": int(negation),
        "enabled": int(enabled),
    }


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"1", "true", "on", "yes"}


def _rule(row: Any) -> KeywordRule:
    m = row._mapping
    return KeywordRule(
        id=int(m["id"]),
        name=str(m["name"]),
        mode=str(m["mode"]),
        keywords=tuple(json.loads(m["keywords_json"] or "[]")),
        pattern=str(m["pattern"]),
        exclude=tuple(json.loads(m["exclude_json"] or "[]")),
        action=str(m["action"]),
        reply_text=str(m["reply_text"]),
        buttons=tuple(json.loads(m["buttons_json"] or "[]")),
        image_url=str(m["image_url"]),
        handoff_reason=str(m["handoff_reason"]),
        priority=int(m["priority"]),
        channel=str(m["channel"]),
        window_start=str(m["window_start"]),
        window_end=str(m["window_end"]),
        negation=bool(m["negation"]),
        enabled=bool(m["enabled"]),
        updated_at=str(m["updated_at"]),
        updated_by=str(m["updated_by"]),
    )


# exclusion words of the migrated default keywords: their other meanings
DEFAULT_EXCLUSIONS = {
    "曝光": ["拍照", "拍摄", "相机", "镜头", "曝光度", "曝光补偿", "过曝", "欠曝", "曝光时间"],
    "报警": ["报警器", "报警灯", "报警声", "防盗报警"],
    "工商": ["工商银行", "工商执照", "工商注册"],
}


class KeywordRuleStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- reading -----------------------------------------------------------------------
    def all(self, fresh: bool = False) -> list[KeywordRule]:
        """Every rule, in matching order (priority, then age); kept in memory while the
        version token stays the same (compared at most every :data:`CHECK_SECONDS`)."""
        now = _time.monotonic()
        with _cache_lock:
            cached = _cache.get(self.db.url)
        if not fresh and cached is not None and now - cached.loaded < CACHE_SECONDS:
            if now - cached.checked < CHECK_SECONDS:
                return list(cached.rules)
            if _version(self.db) == cached.version:
                cached.checked = now
                return list(cached.rules)
        migrate_old_keywords(self.db)
        t = keyword_rules.c
        with self.db.connect() as conn:
            # the token first: a change between the two reads only causes one more reload
            version = _version(self.db, conn)
            rows = conn.execute(select(keyword_rules).order_by(t.priority.desc(), t.id)).all()
        rules = [_rule(r) for r in rows]
        with _cache_lock:
            _cache[self.db.url] = _Cached(now, now, version, rules)
        return list(rules)

    def enabled(self) -> list[KeywordRule]:
        return [r for r in self.all() if r.enabled]

    def get(self, rule_id: int) -> KeywordRule | None:
        migrate_old_keywords(self.db)
        with self.db.connect() as conn:
            row = conn.execute(
                select(keyword_rules).where(keyword_rules.c.id == int(rule_id))
            ).first()
        return _rule(row) if row is not None else None

    # --- writing -----------------------------------------------------------------------
    def add(self, form: dict[str, Any], by: str = "") -> KeywordRule:
        values = validate(form)
        migrate_old_keywords(self.db)
        stamp = now_beijing().isoformat(timespec="seconds")
        with self.db.begin() as conn:
            result = conn.execute(
                keyword_rules.insert().values(
                    **values, created_at=stamp, updated_at=stamp, updated_by=by
                )
            )
            rule_id = int(result.inserted_primary_key[0])
            _bump_version(self.db, conn, stamp, by)
        self._changed()
        rule = self.get(rule_id)
        assert rule is not None
        return rule

    def update(self, rule_id: int, form: dict[str, Any], by: str = "") -> KeywordRule:
        values = validate(form)
        stamp = now_beijing().isoformat(timespec="seconds")
        with self.db.begin() as conn:
            done = conn.execute(
                keyword_rules.update()
                .where(keyword_rules.c.id == int(rule_id))
                .values(**values, updated_at=stamp, updated_by=by)
            ).rowcount
            _bump_version(self.db, conn, stamp, by)
        if not done:
            raise KeyError(rule_id)
        self._changed()
        rule = self.get(rule_id)
        assert rule is not None
        return rule

    def set_enabled(self, rule_id: int, enabled: bool, by: str = "") -> bool:
        stamp = now_beijing().isoformat(timespec="seconds")
        with self.db.begin() as conn:
            done = conn.execute(
                keyword_rules.update()
                .where(keyword_rules.c.id == int(rule_id))
                .values(enabled=int(enabled), updated_at=stamp, updated_by=by)
            ).rowcount
            _bump_version(self.db, conn, stamp, by)
        self._changed()
        return bool(done)

    def remove(self, rule_id: int, by: str = "") -> bool:
        stamp = now_beijing().isoformat(timespec="seconds")
        with self.db.begin() as conn:
            done = conn.execute(
                keyword_rules.delete().where(keyword_rules.c.id == int(rule_id))
            ).rowcount
            _bump_version(self.db, conn, stamp, by)
        self._changed()
        return bool(done)

    def _changed(self) -> None:
        with _cache_lock:
            _cache.pop(self.db.url, None)


@dataclass
class _Cached:
    """The rules a process holds: loaded and last compared (monotonic), their token."""

    loaded: float
    checked: float
    version: str
    rules: list[KeywordRule]


_cache: dict[str, _Cached] = {}
_cache_lock = threading.Lock()


def _version(db: Database, conn: Connection | None = None) -> str:
    """The rules' version token ("" before the first change)."""
    from xiaoer.core.settings import console_settings

    query = select(console_settings.c.value_json).where(console_settings.c.key == VERSION_KEY)
    if conn is not None:
        value = conn.execute(query).scalar()
    else:
        with db.connect() as own:
            value = own.execute(query).scalar()
    return str(value or "")


def _bump_version(db: Database, conn: Connection, stamp: str, by: str) -> None:
    """A new version token, in the transaction of the change: every process reloads."""
    from xiaoer.core.settings import console_settings

    row = {"key": VERSION_KEY, "value_json": json.dumps(uuid.uuid4().hex), "updated_at": stamp,
           "updated_by": by or "keywords"}  # fmt: skip
    db.upsert(conn, console_settings, row, key=["key"],
              update=["value_json", "updated_at", "updated_by"])  # fmt: skip


_migrated: set[str] = set()


def migrate_old_keywords(db: Database) -> int:
    """Once per database: the old handoff keywords become handoff rules (one per keyword,
    urgent complaint, priority 80). A marker row in ``console_settings`` makes it happen
    once, in the same transaction as the rules, so concurrent processes cannot both do it.
    Returns the number of rules created (0 when done before)."""
    if db.url in _migrated:
        return 0
    from xiaoer.core.settings import SettingsStore, console_settings

    with db.connect() as conn:
        done = conn.execute(
            select(console_settings.c.key).where(console_settings.c.key == MIGRATION_MARKER)
        ).first()
    if done is not None:
        _migrated.add(db.url)
        return 0
    # the keywords in force: the console's setting > xiaoer.yml > the defaults
    keywords = SettingsStore(db).settings().keywords
    stamp = now_beijing().isoformat(timespec="seconds")
    created = 0
    with db.begin() as conn:
        marker = {
            "key": MIGRATION_MARKER,
            "value_json": json.dumps({"keywords": keywords}, ensure_ascii=False),
            "updated_at": stamp,
            "updated_by": "migration",
        }
        inserted = conn.execute(
            db.insert(console_settings).values(**marker).on_conflict_do_nothing()
        ).rowcount
        if inserted:
            for keyword in keywords:
                conn.execute(
                    keyword_rules.insert().values(
                        name=f"转人工：{keyword}",
                        mode="contains",
                        keywords_json=json.dumps([keyword], ensure_ascii=False),
                        pattern="",
                        exclude_json=json.dumps(
                            DEFAULT_EXCLUSIONS.get(keyword, []), ensure_ascii=False
                        ),
                        action="handoff",
                        reply_text="",
                        buttons_json="[]",
                        image_url="",
                        handoff_reason="complaint",
                        priority=80,
                        channel="",
                        window_start="",
                        window_end="",
                        negation=1,
                        enabled=1,
                        created_at=stamp,
                        updated_at=stamp,
                        updated_by="migration",
                    )
                )
                created += 1
            _bump_version(db, conn, stamp, "migration")
    _migrated.add(db.url)
    return created


def get_keyword_store() -> KeywordRuleStore:
    """The store of the project database (cheap: the database is cached per process)."""
    return KeywordRuleStore()


@dataclass
class RuleSummary:
    """A short text of what a rule does, for lists and the CLI."""

    rule: KeywordRule
    parts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        r = self.rule
        what = (
            f"回复「{r.reply_text[:30]}」"
            if r.action == "reply"
            else f"转人工（{HANDOFF_REASONS.get(r.handoff_reason, r.handoff_reason)}）"
        )
        match = r.pattern if r.mode == "regex" else "、".join(r.keywords)
        extra = []
        if r.channel:
            extra.append(CHANNELS.get(r.channel, r.channel))
        if r.window_text:
            extra.append(f"时段 {r.window_text}")
        if not r.enabled:
            extra.append("已关闭")
        tail = f"（{'，'.join(extra)}）" if extra else ""
        return f"#{r.id} [{MODES.get(r.mode, r.mode)}] {match} → {what} 优先级 {r.priority}{tail}"
