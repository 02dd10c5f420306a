"""The Doudian (抖店) push channel: Rasa's routes for Doudian's push messages.

``credentials.yml``::

    xiaoer.channels.doudian.DoudianPushInput:
      app_key_env: XIAOER_DOUDIAN_APP_KEY
      app_secret_env: XIAOER_DOUDIAN_APP_SECRET

``POST /webhooks/doudian_push/webhook`` is handed to :class:`xiaoer.doudian.push.DoudianPushService`
(signature, de-duplication, processing, notifications; see docs/doudian.md). Push
messages never reach the assistant as user messages.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.core import logsafe
from xiaoer.doudian.push import DoudianPushProcessor, DoudianPushService, push_credentials
from xiaoer.shop.factory import get_backend

logger = logging.getLogger(__name__)
logsafe.install()  # Rasa imports the channels after configuring its logging


def _default_processor() -> DoudianPushProcessor:
    return DoudianPushProcessor.for_database(backend=get_backend)


class DoudianPushInput(InputChannel):
    """Receives Doudian push messages (credentials.yml:
    ``xiaoer.channels.doudian.DoudianPushInput: {app_key_env: ..., app_secret_env: ...}``)."""

    @classmethod
    def name(cls) -> str:
        return "doudian_push"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        try:
            from xiaoer.core.config import get_settings

            section = get_settings().doudian
        except Exception:  # noqa: BLE001 - the settings only give default variable names
            section = {}
        app_key, app_secret = push_credentials(creds, section)
        return cls(app_key, app_secret, ack_seconds=float(creds.get("ack_seconds", 2.0)))

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        processor: DoudianPushProcessor | None = None,
        ack_seconds: float = 2.0,
    ) -> None:
        self.service = DoudianPushService(
            app_key, app_secret, processor, ack_seconds, make_processor=_default_processor
        )

    def __repr__(self) -> str:
        return f"DoudianPushInput(app_key={self.app_key!r})"

    @property
    def app_key(self) -> str:
        return self.service.app_key

    @property
    def app_secret(self) -> str:
        return self.service.app_secret

    @property
    def processor(self) -> DoudianPushProcessor:
        return self.service.processor

    async def drain(self) -> None:
        """Wait for background processing (tests, shutdown)."""
        await self.service.drain()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("doudian_push_webhook", __name__)

        @webhook.listener("after_server_start")
        async def resume(app: Any, loop: Any) -> None:
            self.service.start()

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            status, answer = await self.service.handle(
                request.body or b"", request.headers.get("event-sign")
            )
            return response.json(answer, status=status)

        return webhook
