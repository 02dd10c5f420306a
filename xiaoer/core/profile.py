"""The bot's profile (基本信息): name, avatar, welcome message, sign-off, human service hours.

One settings page of the console edits it; it is read at run time (the settings cache of a
few seconds), so an edit applies to the next conversation without a restart, on every
channel alike:

* the name and the service hours fill ``{bot_name}`` / ``{service_hours}`` in every answer
  (actions/common.shop_facts) and in the Douyin greetings;
* the welcome message is said before the answer to a customer's first message (REST,
  Douyin, the test chat), unless a Douyin greeting already opened the conversation;
* the sign-off replaces the goodbye (slot ``sign_off``, a conditional response variation);
* the service hours are the handoff's working hours (``working_hours``: one value for the
  handoff queue and for what the bot says).

Precedence as for every setting: the console (``console_settings``: keys ``profile`` and
``working_hours``) > ``shop`` of xiaoer.yml > the defaults. The avatar is an image the
console stores in the table ``bot_avatars`` and serves at ``/profile/avatar``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, LargeBinary, Table, Text, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings
from xiaoer.core.db import Database, database_for, metadata
from xiaoer.text.placeholders import placeholder_error

bot_avatars = Table(
    "bot_avatars",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", Text, nullable=False, unique=True),
    Column("content_type", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False, server_default=""),
)

PROFILE_KEY = "profile"
MAX_NAME_CHARS = 20
MAX_TEXT_CHARS = 500
MAX_AVATAR_BYTES = 512 * 1024
# the welcome and the sign-off may use the shop's facts
PROFILE_PLACEHOLDERS = ("shop_name", "bot_name", "service_hours")
# magic bytes of the image types an avatar may be
IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class BotProfile:
    name: str
    welcome: str
    sign_off: str
    service_start: str
    service_end: str
    avatar: str  # sha256 of the stored avatar ("" = none)

    @property
    def service_hours(self) -> str:
        return f"{self.service_start}-{self.service_end}"

    @property
    def avatar_url(self) -> str:
        # the image's own digest: the URL names one image for good (any console process
        # serves it the same, browsers may keep it), a new avatar gets a new URL
        return f"/profile/avatar?v={self.avatar}" if self.avatar else ""

    def facts(self) -> dict[str, str]:
        """What the profile contributes to the shop's facts (answer placeholders)."""
        return {"bot_name": self.name, "service_hours": self.service_hours}


def bot_profile() -> BotProfile:
    """The profile in force now (console > xiaoer.yml > defaults)."""
    from xiaoer.core.settings import get_settings_store

    overrides = get_settings_store().overrides()
    return build_profile(overrides)


def build_profile(overrides: dict[str, Any]) -> BotProfile:
    shop = get_settings().shop or {}
    saved = overrides.get(PROFILE_KEY) or {}
    hours = (
        overrides.get("working_hours")
        or get_settings().section("handoff").get("working_hours")
        or shop.get("service_hours")
        or {}
    )
    return BotProfile(
        name=str(saved.get("name") or shop.get("bot_name") or "店小二"),
        welcome=str(saved.get("welcome") if "welcome" in saved else shop.get("welcome", "")),
        sign_off=str(saved.get("sign_off") if "sign_off" in saved else shop.get("sign_off", "")),
        service_start=str(hours.get("start") or "09:00"),
        service_end=str(hours.get("end") or "22:00"),
        avatar=str(saved.get("avatar") or ""),
    )


class ProfileError(ValueError):
    """The profile was refused; ``errors`` maps each form field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("；".join(errors.values()))
        self.errors = errors


def _hm_ok(value: str) -> bool:
    parts = value.split(":")
    return (
        len(parts) == 2
        and all(p.isdigit() and len(p) == 2 for p in parts)
        and int(parts[0]) < 24
        and int(parts[1]) < 60
    )


def validate_profile(form: dict[str, Any]) -> dict[str, Any]:
    """The values to save from the form's fields; :class:`ProfileError` with every field's
    error otherwise."""
    errors: dict[str, str] = {}
    name = str(form.get("name") or "").strip()
    if not name:
        errors["name"] = "请填写机器人的名字"
    elif len(name) > MAX_NAME_CHARS:
        errors["name"] = f"名字最长 {MAX_NAME_CHARS} 个字"
    elif "{" in name or "}" in name:
        errors["name"] = "名字里不能有花括号"
    texts = {}
    for key in ("welcome", "sign_off"):
        text = str(form.get(key) or "").strip()
        if len(text) > MAX_TEXT_CHARS:
            errors[key] = f"最长 {MAX_TEXT_CHARS} 个字"
        elif problem := placeholder_error(text, PROFILE_PLACEHOLDERS):
            errors[key] = problem
        texts[key] = text
    start = str(form.get("service_start") or "").strip()
    end = str(form.get("service_end") or "").strip()
    if not (_hm_ok(start) and _hm_ok(end)):
        errors["service_hours"] = "人工服务时间格式为 HH:MM，例如 09:00 和 22:00"
    if errors:
        raise ProfileError(errors)
    return {
        "name": name,
        "welcome": texts["welcome"],
        "sign_off": texts["sign_off"],
        "service_hours": {"start": start, "end": end},
    }


def image_type(data: bytes) -> str | None:
    """The image type of ``data`` from its first bytes (None: not an accepted image)."""
    for magic, kind in IMAGE_TYPES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class ProfileStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def save(self, values: dict[str, Any], by: str = "") -> BotProfile:
        """Save validated values (:func:`validate_profile`); the avatar stays as it is."""
        from xiaoer.core.settings import SettingsStore

        settings = SettingsStore(self.db)
        current = settings.overrides(fresh=True).get(PROFILE_KEY) or {}
        profile = {
            "name": values["name"],
            "welcome": values["welcome"],
            "sign_off": values["sign_off"],
            "avatar": current.get("avatar", ""),
        }
        settings.save(PROFILE_KEY, profile, by=by)
        settings.save("working_hours", values["service_hours"], by=by)
        return build_profile(settings.overrides(fresh=True))

    def save_avatar(self, data: bytes, by: str = "") -> str:
        """Store an uploaded avatar and make it the bot's; returns its sha256.
        ValueError (Chinese message) for an empty, oversized or non-image file."""
        if not data:
            raise ValueError("请选择要上传的头像图片")
        if len(data) > MAX_AVATAR_BYTES:
            raise ValueError(f"头像图片不能超过 {MAX_AVATAR_BYTES // 1024} KB")
        kind = image_type(data)
        if kind is None:
            raise ValueError("头像只支持 PNG、JPEG、GIF 或 WebP 图片")
        digest = hashlib.sha256(data).hexdigest()
        from xiaoer.core.settings import SettingsStore

        with self.db.begin() as conn:
            conn.execute(
                self.db.insert(bot_avatars)
                .values(
                    sha256=digest,
                    content_type=kind,
                    data=data,
                    created_at=now_beijing().isoformat(timespec="seconds"),
                    created_by=by,
                )
                .on_conflict_do_nothing()
            )
        settings = SettingsStore(self.db)
        current = dict(settings.overrides(fresh=True).get(PROFILE_KEY) or {})
        if not current:
            profile = build_profile({})
            current = {"name": profile.name, "welcome": profile.welcome,
                       "sign_off": profile.sign_off}  # fmt: skip
        current["avatar"] = digest
        settings.save(PROFILE_KEY, current, by=by)
        return digest

    def current_avatar(self) -> str:
        """The digest of the avatar in force now, read from the database (not the
        settings cache of this process)."""
        from xiaoer.core.settings import SettingsStore

        return build_profile(SettingsStore(self.db).overrides(fresh=True)).avatar

    def avatar(self, digest: str) -> tuple[str, bytes] | None:
        """(content type, bytes) of a stored avatar."""
        if not digest:
            return None
        with self.db.connect() as conn:
            row = conn.execute(
                select(bot_avatars.c.content_type, bot_avatars.c.data).where(
                    bot_avatars.c.sha256 == digest
                )
            ).first()
        return (str(row[0]), bytes(row[1])) if row is not None else None


def get_profile_store() -> ProfileStore:
    return ProfileStore()


def welcome_text(values: dict[str, str]) -> str:
    """The welcome message with the shop's facts filled ("" when there is none)."""
    from xiaoer.text.placeholders import fill

    profile = bot_profile()
    return fill(profile.welcome, {**values, **profile.facts()}) if profile.welcome else ""
