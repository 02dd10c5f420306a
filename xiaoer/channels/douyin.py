"""The Douyin channel: Rasa's adapter for Douyin private-message webhooks.

``credentials.yml``::

    xiaoer.channels.douyin.DouyinInput:
      base_url: https://open.douyin.com
      client_key_env: XIAOER_DOUYIN_CLIENT_KEY
      client_secret_env: XIAOER_DOUYIN_CLIENT_SECRET
      account_open_id_env: XIAOER_DOUYIN_ACCOUNT_OPEN_ID
      access_token_env: XIAOER_DOUYIN_ACCESS_TOKEN
      refresh_token_env: XIAOER_DOUYIN_REFRESH_TOKEN
      token_expires_at_env: XIAOER_DOUYIN_TOKEN_EXPIRES_AT

Webhook ``POST /webhooks/douyin/webhook`` (see docs/douyin.md): oversized bodies get 413,
other content types 415, a missing or wrong ``X-Douyin-Signature`` 403, a body that is no
envelope 400 — nothing is stored; without configured secrets the channel answers 503 (and
logs why). ``verify_webhook`` is answered with its challenge; every other event is handed
to the Douyin service (:mod:`xiaoer.douyin.service`: recorded, deduplicated, processed in
the customer's order through Rasa, replies merged and sent) and answered 200 at once.
Resending what the platform did not take and ending pauses are jobs of the worker
(:mod:`xiaoer.douyin.jobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.core import logsafe
from xiaoer.core.outage import log_unavailable, unavailable_service
from xiaoer.douyin.bridge import CHANNEL_NAME, TurnBridge
from xiaoer.douyin.client import DouyinConfig
from xiaoer.douyin.greetings import GreetingSettings
from xiaoer.douyin.outbox import ReplySender
from xiaoer.douyin.protocol import (
    EVENT_VERIFY,
    MSG_ID_HEADER,
    NO_REPLY_FIELD,
    SIGNATURE_HEADER,
    PayloadError,
    as_number,
    parse_envelope,
    verify_signature,
)
from xiaoer.douyin.service import HANDLED_EVENTS, CustomerMissing, DouyinService
from xiaoer.douyin.settings import ChannelSettings, config_from_credentials
from xiaoer.douyin.store import DouyinStore

logger = logging.getLogger(__name__)
logsafe.install()  # Rasa imports the channels after configuring its logging

ACK = {"err_no": 0, "err_msg": "success"}
JSON_TYPES = ("application/json", "text/json", "text/plain")


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"err_no": status, "error": code, "err_msg": message}, status=status)


class DouyinOutput(OutputChannel):
    """Collects a turn's messages (``collect=True``, sent merged by the service), or
    sends each message at once (messages that answer no webhook: agent replies,
    notifications through Rasa's HTTP API)."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    def __init__(self, sender: ReplySender | None, collect: bool = True) -> None:
        self.sender = sender
        self.collect = collect
        self.messages: list[dict[str, Any]] = []

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        if self.collect:
            self.messages.append(dict(message))
            return
        if self.sender is None:
            logger.error("douyin channel not configured: message to %s not sent", recipient_id)
            raise RuntimeError("douyin channel not configured")
        await self.sender.deliver(recipient_id, [dict(message)], None)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})


class DouyinInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        config, missing = config_from_credentials(credentials)
        if config is None:
            logger.warning(
                "douyin channel NOT configured: set %s (webhooks are answered 503 meanwhile)",
                ", ".join(missing),
            )
        return cls(config, missing=missing)

    def __init__(
        self,
        config: DouyinConfig | None,
        settings: ChannelSettings | None = None,
        store: DouyinStore | None = None,
        bridge: TurnBridge | None = None,
        missing: list[str] | None = None,
        greetings: GreetingSettings | None = None,
    ) -> None:
        self.config = config
        self.missing = missing or []
        self.service = DouyinService(
            config,
            settings or ChannelSettings.load(),
            DouyinOutput,
            store=store,
            bridge=bridge,
            greetings=greetings,
        )

    def __repr__(self) -> str:
        return f"DouyinInput(configured={self.config is not None})"

    @property
    def settings(self) -> ChannelSettings:
        return self.service.settings

    @settings.setter
    def settings(self, settings: ChannelSettings) -> None:
        self.service.settings = settings

    def get_output_channel(self) -> OutputChannel:
        """For messages that answer no webhook (agent replies, notifications)."""
        return DouyinOutput(self.service.sender, collect=False)

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is processed (tests, shutdown)."""
        await self.service.drain(timeout)

    # --- HTTP -------------------------------------------------------------------------
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("douyin_webhook", __name__)
        app_ref: dict[str, Any] = {}
        self.service.connect(
            on_new_message,
            lambda: getattr(getattr(app_ref.get("app"), "ctx", None), "agent", None),
        )

        @webhook.listener("after_server_start")
        async def start(app: Any, loop: Any) -> None:
            app_ref["app"] = app
            if self.config is None:
                logger.warning(
                    "douyin channel NOT configured: set %s; /webhooks/douyin/webhook answers 503",
                    ", ".join(self.missing),
                )
                return
            self.service.start()

        @webhook.listener("before_server_stop")
        async def shutdown(app: Any, loop: Any) -> None:
            await self.service.aclose()

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.config is not None})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_webhook(request)

        return webhook

    async def handle_webhook(self, request: Request) -> HTTPResponse:
        if self.config is None:
            logger.error(
                "douyin webhook refused: channel not configured (%s)", ", ".join(self.missing)
            )
            return _error(
                503,
                "not_configured",
                "抖音渠道未配置：请设置 client_key / client_secret 等环境变量",
            )
        limit = self.settings.max_body_bytes
        declared = as_number(request.headers.get("content-length")) or 0
        body = request.body or b""
        if declared > limit or len(body) > limit:
            logger.warning("douyin webhook refused: body of %s bytes", max(declared, len(body)))
            return _error(413, "body_too_large", f"请求体不能超过 {limit} 字节")
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type and content_type not in JSON_TYPES:
            return _error(415, "unsupported_media_type", "Content-Type 必须是 application/json")
        if not verify_signature(
            self.config.client_secret, body, request.headers.get(SIGNATURE_HEADER)
        ):
            logger.warning("douyin webhook refused: missing or wrong %s", SIGNATURE_HEADER)
            return _error(403, "invalid_signature", "签名校验失败")
        try:
            envelope = parse_envelope(body)
        except PayloadError as exc:
            logger.warning("douyin webhook refused: %s", exc)
            return _error(400, "invalid_body", f"请求体不是抖音事件：{exc}")
        if envelope.event == EVENT_VERIFY:
            return response.json({"challenge": envelope.content.get("challenge")})
        if envelope.event not in HANDLED_EVENTS:
            logger.info("douyin event %s ignored", envelope.event)
            return response.json(ACK)
        # why the event will get no reply (a paused bot, no greeting): read before it is
        # queued, returned beside the acknowledgement (the platform ignores it; the
        # simulator shows it instead of waiting for a reply that is not coming)
        silent = await self.service.no_reply_reason(envelope)
        try:
            accepted = await self.service.accept(
                envelope, (request.headers.get(MSG_ID_HEADER) or "").strip()
            )
        except CustomerMissing as exc:
            return _error(400, "invalid_body", str(exc))
        except Exception as exc:
            service = unavailable_service(exc)
            if service is None:
                raise
            # not recorded, so not acknowledged: the platform delivers it again (3 tries)
            log_unavailable(logger, service, "douyin webhook", exc)
            return _error(503, "service_unavailable", "数据库暂时不可用，请稍后重试")
        if accepted and silent:
            return response.json({**ACK, NO_REPLY_FIELD: silent})
        return response.json(ACK)
