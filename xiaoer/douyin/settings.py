"""What the Douyin service is configured with.

* :class:`ChannelSettings`: the merchant's settings (``xiaoer.yml``, section ``douyin``);
* :func:`config_from_credentials`: the platform's endpoint and secrets (the section
  ``xiaoer.channels.douyin.DouyinInput`` of ``credentials.yml``, values or names of
  environment variables) as a :class:`~xiaoer.douyin.client.DouyinConfig`;
* :func:`load_config`: the same, read from the project's ``credentials.yml`` — for the
  worker, which resends the outbox without a Rasa server around it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoer.douyin.client import DouyinConfig
from xiaoer.douyin.protocol import SCENE_ENTER, as_number

logger = logging.getLogger(__name__)

CREDENTIALS_KEY = "xiaoer.channels.douyin.DouyinInput"
DEFAULT_REPLIES = {
    "options_hint": "回复数字即可选择：",
    "video": "收到您分享的视频啦～请问是想了解视频里的哪款商品呢？直接告诉我商品名称或您的问题就好😊",
    "other": "亲，这类消息小二暂时看不了哦，麻烦用文字描述一下您的问题，我马上帮您处理～",
}


@dataclass(frozen=True)
class ChannelSettings:
    """Merchant settings (xiaoer.yml, section ``douyin``) the Douyin service uses."""

    max_body_bytes: int = 256 * 1024
    reorder_window_seconds: float = 0.3
    pause_minutes: float = 30.0
    outbox_interval_seconds: float = 15.0
    sweep_interval_seconds: float = 30.0
    server_lease_seconds: float = 15.0  # a Rasa server silent this long is taken over
    max_text_chars: int = 1000
    max_concurrent: int = 4  # conversations processed at once by this server
    spool_max_bytes: int = 10 * 1024 * 1024  # webhooks kept on disk while the database is down
    replies: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_REPLIES))
    follow_scene: str = SCENE_ENTER

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> ChannelSettings:
        replies = dict(DEFAULT_REPLIES)
        replies.update({k: str(v) for k, v in (section.get("replies") or {}).items() if v})
        return cls(
            max_body_bytes=int(section.get("max_body_kb", 256)) * 1024,
            reorder_window_seconds=float(section.get("reorder_window_seconds", 0.3)),
            pause_minutes=float(section.get("pause_after_human_minutes", 30)),
            outbox_interval_seconds=float(section.get("outbox_resend_seconds", 15)),
            sweep_interval_seconds=float(section.get("sweep_seconds", 30)),
            server_lease_seconds=max(3.0, float(section.get("server_lease_seconds", 15))),
            max_text_chars=int(section.get("max_text_chars", 1000)),
            max_concurrent=max(1, int(section.get("max_concurrent_conversations", 4))),
            spool_max_bytes=int(section.get("spool_max_kb", 10 * 1024)) * 1024,
            replies=replies,
            follow_scene=str(section.get("follow_greeting_scene") or SCENE_ENTER),
        )

    @classmethod
    def load(cls) -> ChannelSettings:
        return cls.from_section(douyin_section())


def douyin_section() -> dict[str, Any]:
    try:
        from xiaoer.core.config import get_settings

        return get_settings().section("douyin")
    except Exception:  # noqa: BLE001 - a broken settings file must not stop Rasa
        logger.exception("douyin: xiaoer.yml could not be read, using defaults")
        return {}


# --- the platform's credentials --------------------------------------------------------------
ENV_DEFAULTS = {
    "client_key": "XIAOER_DOUYIN_CLIENT_KEY",
    "client_secret": "XIAOER_DOUYIN_CLIENT_SECRET",
    "account_open_id": "XIAOER_DOUYIN_ACCOUNT_OPEN_ID",
    "access_token": "XIAOER_DOUYIN_ACCESS_TOKEN",
    "refresh_token": "XIAOER_DOUYIN_REFRESH_TOKEN",
    "token_expires_at": "XIAOER_DOUYIN_TOKEN_EXPIRES_AT",
    "base_url": "XIAOER_DOUYIN_BASE_URL",
}
REQUIRED = ("client_key", "client_secret", "account_open_id", "access_token")


def config_from_credentials(
    credentials: dict[str, Any] | None,
) -> tuple[DouyinConfig | None, list[str]]:
    """The platform settings from credentials.yml (values or ``<key>_env`` variable
    names; environment variables win for ``base_url``). Returns the config, or None
    and the names of the environment variables still to set."""
    creds = credentials or {}

    def value(key: str) -> str:
        env_name = str(creds.get(f"{key}_env") or ENV_DEFAULTS[key])
        return (os.environ.get(env_name) or str(creds.get(key) or "")).strip()

    missing = [str(creds.get(f"{k}_env") or ENV_DEFAULTS[k]) for k in REQUIRED if not value(k)]
    if missing:
        return None, missing
    expires = as_number(value("token_expires_at")) or 0
    return (
        DouyinConfig(
            base_url=value("base_url") or "https://open.douyin.com",
            client_key=value("client_key"),
            client_secret=value("client_secret"),
            account_open_id=value("account_open_id"),
            access_token=value("access_token"),
            refresh_token=value("refresh_token"),
            token_expires_at=float(expires),
            refresh_margin_seconds=float(creds.get("refresh_margin_seconds", 600)),
            timeout_seconds=float(creds.get("timeout_seconds", 10)),
            retries=int(creds.get("retries", 3)),
            backoff_seconds=float(creds.get("backoff_seconds", 0.5)),
        ),
        [],
    )


def load_config(credentials_file: Path | None = None) -> tuple[DouyinConfig | None, list[str]]:
    """The Douyin config from the project's ``credentials.yml`` (``XIAOER_CREDENTIALS``
    names another file) and the environment: (None, missing) when the channel is not set
    up there."""
    import yaml

    from xiaoer.core.config import PROJECT_ROOT

    path = credentials_file or Path(
        os.environ.get("XIAOER_CREDENTIALS") or PROJECT_ROOT / "credentials.yml"
    )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return None, [str(path)]
    if not isinstance(data, dict) or CREDENTIALS_KEY not in data:
        return None, [f"{CREDENTIALS_KEY} in {path}"]
    return config_from_credentials(data.get(CREDENTIALS_KEY))
