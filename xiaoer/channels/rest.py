"""The REST channel: validated input, conversations of its own, limits.

Same contract as Rasa's ``rest`` channel (POST /webhooks/rest/webhook with
``{"sender": "...", "message": "..."}``, answer: a JSON list of messages), with:

* bad input gets a clear 4xx before reaching the assistant (invalid JSON, a missing
  sender, an empty or oversized message); bodies above ``server.max_body_kb`` are refused
  by Sanic (413) before being read;
* conversations namespaced by channel: the REST sender ``abc`` is the conversation
  ``rest:abc``, so no REST caller can write into a Douyin customer's conversation (Douyin
  conversations are the customers' open ids, which never contain ``:``);
* the inbox of messages sent outside a request (agent replies, notifications) is read
  with a per-conversation token that the first reply hands out in the
  ``X-Xiaoer-Inbox-Token`` header;
* per-sender and per-client-address rate limits (429), a cap on new handoffs per address
  per hour (beyond it the customer is asked to wait, no queue entry), and client metadata
  accepted only from an allow-list (``buyer_id``, ``nickname``, ``lead_card`` and the like
  are set by channels that verify the caller, never by a REST client).

Settings: ``rest`` in xiaoer.yml (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.conversations.buttons import get_button_memory
from xiaoer.conversations.inbox import get_rest_inbox
from xiaoer.core import logsafe
from xiaoer.core.config import get_settings
from xiaoer.core.outage import CUSTOMER_MESSAGE, log_unavailable, unavailable_service
from xiaoer.core.ratelimit import RateLimit, shared_window
from xiaoer.handoff.activity import record_customer_message
from xiaoer.handoff.waiting import queue_notice
from xiaoer.nlu.multi import handle_message

logger = logging.getLogger(__name__)
logsafe.install()  # Rasa imports this module after configuring its logging

MAX_MESSAGE_CHARS = 2000
MAX_SENDER_CHARS = 128
# sender ids travel in the path of Rasa's HTTP API (the console's handoff desk), which
# does not decode percent-escapes: only characters that need no escaping are accepted
SENDER_RE = re.compile(r"[A-Za-z0-9._~@:+=-]{1,%d}" % MAX_SENDER_CHARS)
PREFIX = "rest:"
INBOX_TOKEN_HEADER = "X-Xiaoer-Inbox-Token"
# the only metadata a REST client may send (the product page a web widget sits on, and
# images the customer attached); everything else is dropped
DEFAULT_METADATA_ALLOW = ("product_id", "attachments")
# set by this channel only (never taken from the client): the address exceeded its
# hourly cap of new handoffs
HANDOFF_LIMITED = "handoff_limited"
MAX_ATTACHMENTS = 9


@dataclass(frozen=True)
class RestSettings:
    per_sender_per_minute: int = 20
    per_address_per_minute: int = 120
    new_handoffs_per_address_per_hour: int = 3
    metadata_allow: tuple[str, ...] = DEFAULT_METADATA_ALLOW


def rest_settings() -> RestSettings:
    section = get_settings().section("rest")
    limits = section.get("rate_limit") or {}
    allow = section.get("metadata_allow")
    return RestSettings(
        per_sender_per_minute=int(limits.get("per_sender_per_minute", 20)),
        per_address_per_minute=int(limits.get("per_address_per_minute", 120)),
        new_handoffs_per_address_per_hour=int(section.get("new_handoffs_per_address_per_hour", 3)),
        metadata_allow=tuple(str(k) for k in allow)
        if isinstance(allow, list)
        else DEFAULT_METADATA_ALLOW,
    )


def conversation_id(sender: str) -> str:
    """The conversation (tracker) id of a REST sender."""
    return PREFIX + sender


RETRY_AFTER = {"Retry-After": "30"}


def _error(status: int, code: str, message: str, **headers: str) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status, headers=headers)


def _attachments(value: Any) -> list[dict[str, str]] | None:
    if not isinstance(value, list):
        return None
    kept = []
    for item in value[:MAX_ATTACHMENTS]:
        if not isinstance(item, dict):
            continue
        kind, url = item.get("type"), item.get("url")
        if kind == "image" and isinstance(url, str) and len(url) <= 2048:
            if url.startswith(("https://", "http://")):
                kept.append({"type": "image", "url": url})
    return kept or None


def clean_metadata(metadata: dict[str, Any], allow: tuple[str, ...]) -> dict[str, Any]:
    """Only allow-listed keys, with plain values (nothing a verified channel sets)."""
    clean: dict[str, Any] = {}
    for key in allow:
        if key not in metadata:
            continue
        value = metadata[key]
        if key == "attachments":
            value = _attachments(value)
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            value = None
        elif isinstance(value, str):
            value = value[:200]
        if value is not None:
            clean[key] = value
    return clean


SENDER_RULE = (
    f"sender 必须是 1-{MAX_SENDER_CHARS} 个字符的字符串，只能包含英文字母、数字和 . _ ~ @ : + = -"
)


def valid_sender(sender: Any) -> bool:
    return isinstance(sender, str) and SENDER_RE.fullmatch(sender.strip()) is not None


def validate_payload(
    raw: bytes, allow: tuple[str, ...] = DEFAULT_METADATA_ALLOW
) -> tuple[dict[str, Any] | None, HTTPResponse | None]:
    try:
        body = json.loads(raw.decode("utf-8-sig") if raw else "")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, _error(
            400, "invalid_json", '请求体必须是 JSON：{"sender": "...", "message": "..."}'
        )
    if not isinstance(body, dict):
        return None, _error(400, "invalid_body", "请求体必须是 JSON 对象")
    sender = body.get("sender")
    if not valid_sender(sender):
        return None, _error(400, "invalid_sender", SENDER_RULE)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return None, _error(400, "empty_message", "message 不能为空")
    if len(message) > MAX_MESSAGE_CHARS:
        return None, _error(413, "message_too_long", f"message 最长 {MAX_MESSAGE_CHARS} 个字符")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return None, _error(400, "invalid_metadata", "metadata 必须是 JSON 对象")
    return {
        "sender": str(sender).strip(),
        "message": message,
        "metadata": clean_metadata(metadata, allow),
    }, None


def client_address(request: Request) -> str:
    """The caller's address (the forwarded one when ``server.proxies_count`` says how many
    proxies to trust)."""
    return str(request.remote_addr or request.ip or "unknown")


# metadata of messages sent from the console, merged into the message by Rasa
INTERNAL_KEYS = frozenset({"agent_id", "agent_name", "handoff_id", "handed_back"})


class InboxOutputChannel(OutputChannel):
    """Messages that answer no request (agent replies, hand-back, notifications) go to the
    REST inbox, which the client polls (GET /webhooks/rest/inbox)."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        # the console's bookkeeping (which agent, which handoff) is not for the customer:
        # agents' names are shown in the console only
        get_rest_inbox().add(
            recipient_id,
            {k: v for k, v in message.items() if v is not None and k not in INTERNAL_KEYS},
        )


def _has_open_handoff(conversation: str) -> bool:
    from xiaoer.handoff.store import get_handoff_store

    return get_handoff_store().active_for(conversation) is not None


TOO_MANY = "您发送消息太频繁啦，请稍等一会儿再试～"


class XiaoerRestInput(RestInput):
    def __init__(self, settings: RestSettings | None = None) -> None:
        self.settings = settings or rest_settings()
        # counted together by every Sanic worker (and, with Redis, every server)
        self.per_sender = shared_window("rest_sender", self.settings.per_sender_per_minute, 60)
        self.per_address = shared_window("rest_address", self.settings.per_address_per_minute, 60)
        self.handoffs = shared_window(
            "rest_handoffs", self.settings.new_handoffs_per_address_per_hour, 3600
        )

    @classmethod
    def name(cls) -> str:
        return "rest"

    def get_output_channel(self) -> OutputChannel | None:
        return InboxOutputChannel()

    def _limited(self, window: RateLimit, key: str) -> HTTPResponse | None:
        if window.allow(key):
            return None
        return _error(
            429, "rate_limited", TOO_MANY, **{"Retry-After": str(window.retry_after(key))}
        )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("xiaoer_rest_webhook", __name__)
        logsafe.install()
        from xiaoer.core.security import masking_check

        masking_check(logger)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/inbox", methods=["GET"])
        async def inbox(request: Request) -> HTTPResponse:
            """Messages sent to a conversation outside a request (e.g. an agent's reply)."""
            limited = self._limited(self.per_address, client_address(request))
            if limited is not None:
                return limited
            sender = (request.args.get("sender") or "").strip()
            if not valid_sender(sender):
                return _error(400, "invalid_sender", SENDER_RULE)
            try:
                after = int(request.args.get("after") or 0)
            except ValueError:
                return _error(400, "invalid_after", "after 必须是整数（上次收到的消息 id）")
            store = get_rest_inbox()
            conversation = conversation_id(sender)
            token = request.headers.get(INBOX_TOKEN_HEADER)
            if not await asyncio.to_thread(store.token_valid, conversation, token):
                return _error(
                    403,
                    "invalid_inbox_token",
                    f"请在 {INBOX_TOKEN_HEADER} 请求头中提供该会话第一条回复给出的令牌",
                )
            messages = await asyncio.to_thread(store.since, conversation, after)
            return response.json({"messages": messages})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                return await receive_message(request)
            except Exception as exc:
                service = unavailable_service(exc)
                if service is None:
                    raise
                # a store is down (PostgreSQL, Redis restarting): one line, a polite 503
                log_unavailable(logger, service, "rest message", exc)
                return _error(503, "service_unavailable", CUSTOMER_MESSAGE, **RETRY_AFTER)

        async def receive_message(request: Request) -> HTTPResponse:
            address = client_address(request)
            limited = self._limited(self.per_address, address)
            if limited is not None:
                return limited
            payload, error = validate_payload(request.body, self.settings.metadata_allow)
            if error is not None or payload is None:
                return error or _error(400, "invalid_body", "bad request")
            conversation = conversation_id(payload["sender"])
            limited = self._limited(self.per_sender, conversation)
            if limited is not None:
                return limited
            metadata = payload["metadata"]
            cap = self.settings.new_handoffs_per_address_per_hour
            if cap > 0 and self.handoffs.count(address) >= cap:
                metadata[HANDOFF_LIMITED] = True
            had_handoff = await asyncio.to_thread(_has_open_handoff, conversation)
            if had_handoff:  # the agents' workspace: preview, unread count, search
                await asyncio.to_thread(
                    record_customer_message, conversation, payload["message"], metadata
                )
            collector = CollectingOutputChannel()
            buttons = get_button_memory()
            # a typed button label ("确认取消") means the button: its payload goes to NLU
            text = await asyncio.to_thread(buttons.resolve, conversation, payload["message"])
            try:
                # several questions in one message are answered in order (xiaoer/nlu/multi.py)
                await handle_message(
                    UserMessage(
                        text,
                        collector,
                        conversation,
                        input_channel=self.name(),
                        metadata=metadata,
                    ),
                    on_new_message,
                    getattr(request.app.ctx, "agent", None),
                )
            except Exception as exc:  # noqa: BLE001 - reported to the caller, logged without text
                if unavailable_service(exc):
                    raise  # a store is down: answered by the route (503)
                logger.exception("rest message failed (conversation %s)", conversation)
                return _error(500, "processing_failed", "消息处理失败，请稍后重试")
            await asyncio.to_thread(buttons.remember, conversation, collector.messages)
            if not collector.messages:  # paused for an agent: "人呢" hears the queue
                notice = await asyncio.to_thread(queue_notice, conversation, payload["message"])
                if notice:
                    collector.messages.append({"recipient_id": conversation, "text": notice})
            if not had_handoff and await asyncio.to_thread(_has_open_handoff, conversation):
                self.handoffs.hit(address)
            for message in collector.messages:  # the client knows its own sender id
                if message.get("recipient_id") == conversation:
                    message["recipient_id"] = payload["sender"]
            headers = {}
            token = await asyncio.to_thread(get_rest_inbox().issue_token, conversation)
            if token:
                headers = {
                    INBOX_TOKEN_HEADER: token,
                    "Access-Control-Expose-Headers": INBOX_TOKEN_HEADER,
                }
            return response.json(collector.messages, headers=headers)

        return webhook
