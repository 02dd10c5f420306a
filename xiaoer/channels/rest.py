"""The REST channel with input validation.

Same contract as Rasa's ``rest`` channel (POST /webhooks/rest/webhook with
``{"sender": "...", "message": "..."}``), but bad input gets a clear 4xx instead of
reaching the assistant: invalid JSON, a missing sender, an empty or oversized message.
The platform identity ``buyer_id`` is never taken from REST metadata (anyone could
claim any buyer); channels that verify the caller set it themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.buttons import get_button_memory
from xiaoer.handoff.inbox import get_rest_inbox
from xiaoer.handoff.waiting import queue_notice
from xiaoer.nlu.multi import handle_message

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
MAX_SENDER_CHARS = 128
TRUSTED_ONLY_METADATA = ("buyer_id",)


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status)


def validate_payload(raw: bytes) -> tuple[dict[str, Any] | None, HTTPResponse | None]:
    try:
        body = json.loads(raw.decode("utf-8-sig") if raw else "")
    except (ValueError, UnicodeDecodeError):
        return None, _error(
            400, "invalid_json", '请求体必须是 JSON：{"sender": "...", "message": "..."}'
        )
    if not isinstance(body, dict):
        return None, _error(400, "invalid_body", "请求体必须是 JSON 对象")
    sender = body.get("sender")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
        return None, _error(
            400, "invalid_sender", f"sender 必须是 1-{MAX_SENDER_CHARS} 个字符的字符串"
        )
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return None, _error(400, "empty_message", "message 不能为空")
    if len(message) > MAX_MESSAGE_CHARS:
        return None, _error(413, "message_too_long", f"message 最长 {MAX_MESSAGE_CHARS} 个字符")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return None, _error(400, "invalid_metadata", "metadata 必须是 JSON 对象")
    metadata = {k: v for k, v in metadata.items() if k not in TRUSTED_ONLY_METADATA}
    return {"sender": sender.strip(), "message": message, "metadata": metadata}, None


class InboxOutputChannel(OutputChannel):
    """Messages that answer no request (agent replies, hand-back, notifications) go to the
    REST inbox, which the client polls (GET /webhooks/rest/inbox)."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        get_rest_inbox().add(recipient_id, {k: v for k, v in message.items() if v is not None})


class XiaoerRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def get_output_channel(self) -> OutputChannel | None:
        return InboxOutputChannel()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("xiaoer_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/inbox", methods=["GET"])
        async def inbox(request: Request) -> HTTPResponse:
            """Messages sent to a conversation outside a request (e.g. an agent's reply)."""
            sender = (request.args.get("sender") or "").strip()
            if not sender or len(sender) > MAX_SENDER_CHARS:
                return _error(
                    400, "invalid_sender", f"sender 必须是 1-{MAX_SENDER_CHARS} 个字符的字符串"
                )
            try:
                after = int(request.args.get("after") or 0)
            except ValueError:
                return _error(400, "invalid_after", "after 必须是整数（上次收到的消息 id）")
            return response.json({"messages": get_rest_inbox().since(sender, after)})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            payload, error = validate_payload(request.body)
            if error is not None or payload is None:
                return error or _error(400, "invalid_body", "bad request")
            collector = CollectingOutputChannel()
            buttons = get_button_memory()
            # a typed button label ("确认取消") means the button: its payload goes to NLU
            text = buttons.resolve(payload["sender"], payload["message"])
            try:
                # several questions in one message are answered in order (xiaoer/nlu/multi.py)
                await handle_message(
                    UserMessage(
                        text,
                        collector,
                        payload["sender"],
                        input_channel=self.name(),
                        metadata=payload["metadata"],
                    ),
                    on_new_message,
                    getattr(request.app.ctx, "agent", None),
                )
            except Exception:  # noqa: BLE001 - reported to the caller, logged without text
                logger.exception("rest message failed (conversation %s)", payload["sender"])
                return _error(500, "processing_failed", "消息处理失败，请稍后重试")
            buttons.remember(payload["sender"], collector.messages)
            if not collector.messages:  # paused for an agent: "人呢" hears the queue
                notice = queue_notice(payload["sender"], payload["message"])
                if notice:
                    collector.messages.append({"recipient_id": payload["sender"], "text": notice})
            return response.json(collector.messages)

        return webhook
