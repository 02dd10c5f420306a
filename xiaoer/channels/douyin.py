"""The Douyin channel: private-message webhooks in, replies out through the send API.

``credentials.yml``::

    xiaoer.channels.douyin.DouyinInput:
      base_url: https://open.douyin.com
      client_key_env: XIAOER_DOUYIN_CLIENT_KEY
      client_secret_env: XIAOER_DOUYIN_CLIENT_SECRET
      account_open_id_env: XIAOER_DOUYIN_ACCOUNT_OPEN_ID
      access_token_env: XIAOER_DOUYIN_ACCESS_TOKEN
      refresh_token_env: XIAOER_DOUYIN_REFRESH_TOKEN
      token_expires_at_env: XIAOER_DOUYIN_TOKEN_EXPIRES_AT

Webhook ``POST /webhooks/douyin/webhook`` (see docs/douyin.md):

1. oversized bodies get 413, other content types 415, a missing or wrong
   ``X-Douyin-Signature`` 403, a body that is no envelope 400 — nothing is stored;
   without configured secrets the channel answers 503 (and logs why) instead;
2. ``verify_webhook`` is answered with its challenge;
3. every other event is recorded in ``douyin.db`` first (a duplicate ``Msg-Id`` or
   ``server_message_id`` — also after a restart — stops here) and answered 200 at once;
4. a worker per customer processes that customer's events one at a time in the order
   the customer sent them (``create_time``; a short ``reorder_window_seconds`` lets a
   late delivery overtake), through Rasa; the replies of one turn are merged into as
   few platform messages as possible and sent with the answered ``server_message_id``;
5. replies the platform does not take after retries go to the outbox and are resent in
   order; events whose processing was cut short are picked up at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.shared.core.constants import EXTERNAL_MESSAGE_PREFIX, IS_EXTERNAL
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    UserUttered,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.conversations.buttons import get_button_memory
from xiaoer.core import logsafe
from xiaoer.core.logsafe import mask_pii
from xiaoer.douyin.client import DouyinClient, DouyinConfig, SendFailed
from xiaoer.douyin.protocol import (
    CARD_TYPES,
    EVENT_ENTER,
    EVENT_FOLLOW,
    EVENT_RECEIVE,
    EVENT_SEND,
    EVENT_VERIFY,
    IMAGE_TYPES,
    MSG_ID_HEADER,
    SCENE_ENTER,
    SCENE_REPLY,
    SIGNATURE_HEADER,
    TEXT_TYPES,
    VIDEO_TYPES,
    ChatMessage,
    Envelope,
    PayloadError,
    as_number,
    image_content,
    parse_envelope,
    send_body,
    text_content,
    verify_signature,
)
from xiaoer.douyin.store import DouyinStore, StoredEvent
from xiaoer.handoff.waiting import queue_notice
from xiaoer.nlu.multi import handle_message

logger = logging.getLogger(__name__)
logsafe.install()  # Rasa imports the channels after configuring its logging

CHANNEL_NAME = "douyin"
GREET_INTENT = "EXTERNAL_douyin_greet"
MSG_ID_VALID_SECONDS = 24 * 3600 - 300  # an answered msg_id is valid 24 h
ACK = {"err_no": 0, "err_msg": "success"}
JSON_TYPES = ("application/json", "text/json", "text/plain")
DEFAULT_REPLIES = {
    "options_hint": "回复数字即可选择：",
    "video": "收到您分享的视频啦～请问是想了解视频里的哪款商品呢？直接告诉我商品名称或您的问题就好😊",
    "other": "亲，这类消息小二暂时看不了哦，麻烦用文字描述一下您的问题，我马上帮您处理～",
}
_CHOICE = re.compile(
    r"^\s*第?\s*([0-9０-９]{1,2}|[一二三四五六七八九十])\s*(?:个|号|条|项|\.|、)?\s*$"
)
_CN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", 1)}


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"err_no": status, "error": code, "err_msg": message}, status=status)


def chosen_option(text: str, options: tuple[str, ...]) -> int | None:
    """The 1-based option a bare number answer picks ("2", "２", "第二个"), if any."""
    if not options:
        return None
    match = _CHOICE.match(text or "")
    if not match:
        return None
    raw = match.group(1)
    number = _CN_DIGITS.get(raw) or int(
        raw.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    )
    return number if 1 <= number <= len(options) else None


# --- settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelSettings:
    """Merchant settings (xiaoer.yml, section ``douyin``) the channel itself uses."""

    max_body_bytes: int = 256 * 1024
    reorder_window_seconds: float = 0.3
    pause_minutes: float = 30.0
    outbox_interval_seconds: float = 15.0
    sweep_interval_seconds: float = 30.0
    max_text_chars: int = 1000
    max_concurrent: int = 4  # conversations processed at once by this server
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
            max_text_chars=int(section.get("max_text_chars", 1000)),
            max_concurrent=max(1, int(section.get("max_concurrent_conversations", 4))),
            replies=replies,
            follow_scene=str(section.get("follow_greeting_scene") or SCENE_ENTER),
        )


def _douyin_section() -> dict[str, Any]:
    try:
        from xiaoer.core.config import get_settings

        return get_settings().section("douyin")
    except Exception:  # noqa: BLE001 - a broken settings file must not stop Rasa
        logger.exception("douyin: xiaoer.yml could not be read, using defaults")
        return {}


# --- replies out -------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplyTarget:
    """Which customer message a reply answers (``scene``: im_replay_msg or enter)."""

    msg_id: str = ""
    conversation_id: str = ""
    scene: str = SCENE_REPLY


@dataclass(frozen=True)
class Part:
    content: dict[str, Any]
    preview: str  # the text the customer reads (for logs, the outbox and echo detection)


def render_parts(
    messages: list[dict[str, Any]], settings: ChannelSettings
) -> tuple[list[Part], list[str]]:
    """Merge one turn's bot messages into platform messages.

    Texts are joined; buttons and quick replies become numbered lines (their payloads
    are returned, in order, for the customer's number answer); an image ends the text
    before it. Custom ``{"douyin": <content>}`` is sent as is (e.g. a lead card)."""
    parts: list[Part] = []
    options: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(line for line in lines if line is not None).strip()
        lines.clear()
        while text:
            chunk, text = text[: settings.max_text_chars], text[settings.max_text_chars :]
            parts.append(Part(text_content(chunk), chunk))

    for message in messages:
        text = message.get("text")
        if text:
            lines.append(str(text))
        choices = message.get("buttons") or message.get("quick_replies") or []
        if choices:
            lines.append(settings.replies["options_hint"])
            for choice in choices:
                options.append(str(choice.get("payload") or choice.get("title") or ""))
                lines.append(f"{len(options)}. {choice.get('title') or choice.get('payload')}")
        custom = message.get("custom")
        if isinstance(custom, dict):
            if isinstance(custom.get("douyin"), dict):
                flush()
                parts.append(Part(dict(custom["douyin"]), f"[{custom['douyin'].get('msg_type')}]"))
            elif custom.get("text"):
                lines.append(str(custom["text"]))
        if message.get("attachment"):
            lines.append(str(message["attachment"]))
        if message.get("image"):
            flush()
            image = str(message["image"])
            parts.append(Part(image_content(image), f"[图片] {image}"))
    flush()
    return parts, options


class ReplySender:
    """Sends replies in order per customer; what fails goes to the outbox, which is
    resent first (so a later reply never overtakes an earlier one)."""

    def __init__(self, client: DouyinClient, store: DouyinStore, settings: ChannelSettings):
        self.client = client
        self.store = store
        self.settings = settings
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, sender_id: str) -> asyncio.Lock:
        lock = self._locks.get(sender_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[sender_id] = lock
        return lock

    async def target_for(self, sender_id: str, scene: str | None = None) -> ReplyTarget:
        """For messages that answer nothing now: the latest customer message while it
        can still be answered (24 h), else the enter-chat scene."""
        conv = await asyncio.to_thread(self.store.conversation, sender_id)
        if (
            scene is None
            and conv.last_msg_id
            and time.time() - conv.last_msg_at < MSG_ID_VALID_SECONDS
        ):
            return ReplyTarget(conv.last_msg_id, conv.conversation_short_id, SCENE_REPLY)
        return ReplyTarget("", conv.conversation_short_id, scene or SCENE_ENTER)

    async def deliver(
        self, sender_id: str, messages: list[dict[str, Any]], target: ReplyTarget | None
    ) -> int:
        """Send a turn's messages; returns how many platform messages were sent now."""
        parts, options = render_parts(messages, self.settings)
        if options:
            await asyncio.to_thread(self.store.update_conversation, sender_id, options=options)
        if not parts:
            return 0
        target = target or await self.target_for(sender_id)
        bodies = [
            (
                send_body(
                    sender_id,
                    part.content,
                    msg_id=target.msg_id,
                    conversation_id=target.conversation_id,
                    scene=target.scene,
                ),
                part.preview,
            )
            for part in parts
        ]
        sent = 0
        async with self._lock(sender_id):
            if await asyncio.to_thread(self.store.has_outbox, sender_id):
                await self._flush_locked(sender_id)
            for index, (body, preview) in enumerate(bodies):
                if await asyncio.to_thread(self.store.has_outbox, sender_id):
                    await self._queue(sender_id, bodies[index:], "earlier replies still queued")
                    break
                try:
                    answer = await self.client.send(body)
                except SendFailed as exc:
                    logger.warning(
                        "douyin reply to %s not sent (%s): kept in the outbox", sender_id, exc
                    )
                    await self._queue(sender_id, bodies[index:], str(exc))
                    break
                await asyncio.to_thread(self.store.remember_sent, sender_id, answer.msg_id, preview)
                sent += 1
        return sent

    async def _queue(self, sender_id: str, bodies: list[tuple[dict[str, Any], str]], error: str):
        retry_at = time.time() + self.settings.outbox_interval_seconds
        for body, preview in bodies:
            await asyncio.to_thread(
                self.store.add_outbox, sender_id, body, preview, error, retry_at
            )

    async def flush(self, sender_id: str) -> int:
        async with self._lock(sender_id):
            return await self._flush_locked(sender_id)

    async def _flush_locked(self, sender_id: str) -> int:
        """Resend the customer's queued replies in order; stops at the first failure."""
        sent = 0
        for item in await asyncio.to_thread(self.store.outbox_pending, sender_id):
            try:
                answer = await self.client.send(item.body, retries=0)
            except SendFailed as exc:
                delay = min(
                    3600.0, self.settings.outbox_interval_seconds * 2 ** min(item.attempts, 8)
                )
                await asyncio.to_thread(
                    self.store.outbox_failed, item.id, str(exc), time.time() + delay
                )
                logger.info("douyin outbox #%s still not sent: %s", item.id, exc)
                break
            await asyncio.to_thread(self.store.outbox_sent, item.id)
            await asyncio.to_thread(
                self.store.remember_sent, sender_id, answer.msg_id, item.preview
            )
            logger.info("douyin outbox #%s sent", item.id)
            sent += 1
        return sent

    async def flush_due(self) -> int:
        sent = 0
        for sender_id in await asyncio.to_thread(self.store.outbox_senders_due):
            sent += await self.flush(sender_id)
        return sent


class DouyinOutput(OutputChannel):
    """Collects a turn's messages (``collect=True``, sent merged by the channel), or
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


# --- Rasa --------------------------------------------------------------------------------
class RasaBridge:
    """What the channel needs from the Rasa agent besides ``on_new_message``."""

    def __init__(self, agent_getter: Callable[[], Any]) -> None:
        self._agent = agent_getter

    async def append(
        self,
        sender_id: str,
        build: Callable[[bool], list[Event]],
        metadata: dict[str, Any],
    ) -> bool:
        """Append events to a conversation; ``build`` gets whether it is paused now.
        Returns whether it was paused before."""
        agent = self._agent()
        async with agent.lock_store.lock(sender_id):
            tracker = await agent.processor.fetch_tracker_and_update_session(
                sender_id, CollectingOutputChannel(), metadata
            )
            paused = tracker.is_paused()
            for event in build(paused):
                tracker.update(event, agent.domain)
            await agent.processor.save_tracker(tracker)
        return bool(paused)

    async def trigger(
        self,
        sender_id: str,
        intent: str,
        entities: dict[str, str],
        metadata: dict[str, Any],
        output: OutputChannel,
    ) -> None:
        """``trigger_intent`` with the channel recorded (so that later messages through
        Rasa's HTTP API find this channel) and the buyer's metadata for the actions."""
        agent = self._agent()
        processor = agent.processor
        async with agent.lock_store.lock(sender_id):
            tracker = await processor.fetch_tracker_and_update_session(sender_id, output, metadata)
            tracker.update(
                UserUttered(
                    text=f"{EXTERNAL_MESSAGE_PREFIX}{intent}",
                    intent={"name": intent, "confidence": 1.0},
                    entities=[{"entity": k, "value": v} for k, v in entities.items()],
                    input_channel=CHANNEL_NAME,
                    metadata={IS_EXTERNAL: True, **metadata},
                ),
                agent.domain,
            )
            tracker = await processor.run_action_extract_slots(output, tracker)
            await processor._run_prediction_loop(output, tracker)  # as trigger_intent does
            await processor.save_tracker(tracker)


def _handoff_active(sender_id: str) -> bool:
    """Whether an agent holds (or is about to take) the conversation."""
    try:
        from xiaoer.handoff.store import get_handoff_store

        store = get_handoff_store()
        active_for = getattr(store, "active_for", None)
        if active_for is not None:
            return active_for(sender_id) is not None
        return any(h.sender_id == sender_id for h in store.waiting())
    except Exception:  # noqa: BLE001 - unknown means "do not resume"
        logger.exception("douyin: handoff state of %s unknown", sender_id)
        return True


# --- the input channel --------------------------------------------------------------------
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
        bridge: RasaBridge | None = None,
        missing: list[str] | None = None,
        greetings: Any = None,
    ) -> None:
        self.config = config
        self.missing = missing or []
        self.settings = settings or ChannelSettings.from_section(_douyin_section())
        self._store = store
        self._bridge = bridge
        self._greetings = greetings
        self._client: DouyinClient | None = None
        self._sender: ReplySender | None = None
        self._app: Any = None
        self._on_new_message: Callable[[UserMessage], Awaitable[Any]] | None = None
        self._workers: dict[str, asyncio.Task[Any]] = {}
        self._dirty: set[str] = set()
        self._semaphore: asyncio.Semaphore | None = None
        self._ack_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="douyin-ack")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self.processed = 0

    def __repr__(self) -> str:
        return f"DouyinInput(configured={self.config is not None})"

    # --- wiring ---------------------------------------------------------------------
    @property
    def store(self) -> DouyinStore:
        if self._store is None:
            from xiaoer.douyin.store import get_douyin_store

            self._store = get_douyin_store()
        return self._store

    @property
    def sender(self) -> ReplySender | None:
        if self._sender is None and self.config is not None:
            self._client = DouyinClient(self.config, self.store)
            self._sender = ReplySender(self._client, self.store, self.settings)
        return self._sender

    @property
    def bridge(self) -> RasaBridge:
        if self._bridge is None:
            self._bridge = RasaBridge(lambda: self._app.ctx.agent)
        return self._bridge

    def get_output_channel(self) -> OutputChannel:
        """For messages that answer no webhook (agent replies, notifications)."""
        return DouyinOutput(self.sender, collect=False)

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._workers or self._tasks) and time.monotonic() < deadline:
            await asyncio.gather(
                *list(self._workers.values()), *list(self._tasks), return_exceptions=True
            )

    # --- the per-customer workers ------------------------------------------------------
    def schedule(self, sender_id: str) -> None:
        self._dirty.add(sender_id)
        if sender_id not in self._workers:
            self._workers[sender_id] = asyncio.ensure_future(self._work(sender_id))

    async def _work(self, sender_id: str) -> None:
        try:
            await asyncio.sleep(self.settings.reorder_window_seconds)
            while sender_id in self._dirty:
                self._dirty.discard(sender_id)
                for event in await asyncio.to_thread(self.store.pending_for, sender_id):
                    if not await asyncio.to_thread(self.store.claim, event.id):
                        continue
                    try:
                        async with self._slots():
                            await self.process(event)
                    except Exception as exc:  # noqa: BLE001 - retried by the sweep
                        logger.exception(
                            "douyin %s of %s failed (kept for a retry)", event.event, sender_id
                        )
                        await asyncio.to_thread(self.store.failed, event.id, type(exc).__name__)
                        break  # later messages wait: the order is kept
                    await asyncio.to_thread(self.store.done, event.id)
                    self.processed += 1
        finally:
            # no await between the last check of _dirty and this removal
            self._workers.pop(sender_id, None)
            if sender_id in self._dirty:
                self.schedule(sender_id)

    def _slots(self) -> asyncio.Semaphore:
        """Bounds the conversations processed at once: the rest wait their turn (their
        webhooks are answered anyway), so that a burst does not slow everyone down."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.max_concurrent)
        return self._semaphore

    async def _sweep(self, older_than: float) -> None:
        for sender_id in await asyncio.to_thread(self.store.senders_with_pending, older_than):
            self.schedule(sender_id)
        await self.resume_expired_pauses()

    async def _loop(self, interval: float, job: Callable[[], Awaitable[Any]], what: str):
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive a bad round
                logger.exception("douyin %s round failed", what)

    # --- processing -------------------------------------------------------------------
    async def process(self, stored: StoredEvent) -> None:
        envelope = stored.envelope
        if envelope.event == EVENT_RECEIVE:
            await self._receive(stored.sender_id, envelope)
        elif envelope.event == EVENT_SEND:
            await self._human_message(stored.sender_id, envelope)
        elif envelope.event in (EVENT_ENTER, EVENT_FOLLOW):
            await self._greet(stored.sender_id, envelope)

    async def _receive(self, sender_id: str, envelope: Envelope) -> None:
        message = ChatMessage.from_envelope(envelope)
        conv = await asyncio.to_thread(self.store.conversation, sender_id)
        now = time.time()
        updates: dict[str, Any] = {"last_customer_at": now, "options": []}
        if message.server_message_id:
            updates.update(last_msg_id=message.server_message_id, last_msg_at=now)
        if message.conversation_short_id:
            updates["conversation_short_id"] = message.conversation_short_id
        if message.nickname:
            updates["nickname"] = message.nickname
        await asyncio.to_thread(self.store.update_conversation, sender_id, **updates)
        if conv.paused_until and conv.paused_until <= now:
            await self._resume(sender_id)
        target = ReplyTarget(
            message.server_message_id,
            message.conversation_short_id or conv.conversation_short_id,
            SCENE_REPLY,
        )
        metadata: dict[str, Any] = {
            "buyer_id": sender_id,
            "nickname": message.nickname or conv.nickname,
            "douyin": {
                "server_message_id": message.server_message_id,
                "conversation_short_id": message.conversation_short_id,
                "message_type": message.message_type,
                "create_time": message.create_time_ms,
            },
        }
        kind = message.message_type
        text = message.text.strip()
        if kind in TEXT_TYPES:
            choice = chosen_option(text, conv.options)
            if choice is not None:
                metadata["chosen_option"] = choice
                text = conv.options[choice - 1]
            else:  # an option's label typed out ("确认取消") means the option
                text = await asyncio.to_thread(get_button_memory().resolve, sender_id, text)
        elif kind in IMAGE_TYPES:
            metadata["attachments"] = [
                {"type": kind, "url": message.resource_url, "resource_type": message.resource_type}
            ]
            text = "[图片]"
        elif kind in CARD_TYPES:
            metadata["lead_card"] = {"card_id": message.card_id, "card_data": message.card_data}
            fields = [f"{c['label']}：{c['value']}" for c in message.card_data if c["value"]]
            text = "[留资卡片] " + "，".join(fields) if fields else "[留资卡片]"
        elif kind in VIDEO_TYPES:
            metadata["attachments"] = [
                {"type": kind, "url": message.resource_url, "item_id": message.item_id}
            ]
            await self._answer_directly(sender_id, "[视频]", "video", metadata, target)
            return
        else:
            await self._answer_directly(sender_id, f"[{kind}]", "other", metadata, target)
            return
        if not text:
            text = "[空消息]"
        output = DouyinOutput(self.sender)
        assert self._on_new_message is not None, "blueprint() was not called"
        await handle_message(  # several questions in one message (xiaoer/nlu/multi.py)
            UserMessage(
                text,
                output,
                sender_id,
                input_channel=CHANNEL_NAME,
                message_id=message.server_message_id or None,
                metadata=metadata,
            ),
            self._on_new_message,
            getattr(getattr(self._app, "ctx", None), "agent", None),
        )
        if kind in TEXT_TYPES:
            await asyncio.to_thread(get_button_memory().remember, sender_id, output.messages)
            if not output.messages:  # paused for an agent: "人呢" hears the queue
                notice = await asyncio.to_thread(queue_notice, sender_id, text)
                if notice:
                    output.messages.append({"text": notice})
        await self._send(sender_id, output.messages, target)

    async def _send(
        self, sender_id: str, messages: list[dict[str, Any]], target: ReplyTarget
    ) -> None:
        if not messages:
            return
        if self.sender is None:
            raise RuntimeError("douyin channel not configured")
        await self.sender.deliver(sender_id, messages, target)

    async def _answer_directly(
        self,
        sender_id: str,
        text: str,
        reply_key: str,
        metadata: dict[str, Any],
        target: ReplyTarget,
    ) -> None:
        """Message types the assistant cannot read: recorded, answered politely."""
        reply = self.settings.replies[reply_key]

        def events(paused: bool) -> list[Event]:
            user: list[Event] = [
                UserUttered(
                    text,
                    intent={"name": "out_of_scope", "confidence": 1.0},
                    input_channel=CHANNEL_NAME,
                    message_id=metadata["douyin"]["server_message_id"] or None,
                    metadata=metadata,
                )
            ]
            if paused:
                return user
            return [*user, BotUttered(reply, metadata={"douyin_reply": reply_key}),
                    ActionExecuted("action_listen")]  # fmt: skip

        paused = await self.bridge.append(sender_id, events, metadata)
        if not paused:
            await self._send(sender_id, [{"text": reply}], target)

    async def _human_message(self, customer: str, envelope: Envelope) -> None:
        """The account wrote from the Douyin app: record it, let the bot stay quiet."""
        message = ChatMessage.from_envelope(envelope)
        own = await asyncio.to_thread(
            self.store.is_own_echo, customer, message.server_message_id, message.text
        )
        if own:
            return
        text = message.text or f"[{message.message_type}]"
        until = time.time() + self.settings.pause_minutes * 60
        conv = await asyncio.to_thread(self.store.conversation, customer)

        def events(paused: bool) -> list[Event]:
            recorded: list[Event] = [
                BotUttered(
                    text,
                    metadata={
                        "douyin_sent_by": "human",
                        "server_message_id": message.server_message_id,
                    },
                )
            ]
            if not paused:
                recorded.append(ConversationPaused())
            return recorded

        metadata = {"buyer_id": customer}
        was_paused = await self.bridge.append(customer, events, metadata)
        if not was_paused or conv.paused_until:
            # paused by us (now or earlier): we resume it when the time is up
            await asyncio.to_thread(self.store.update_conversation, customer, paused_until=until)
        logger.info(
            "douyin: a human answered %s from the app, bot paused for %g min",
            customer,
            self.settings.pause_minutes,
        )

    async def _resume(self, sender_id: str) -> None:
        await asyncio.to_thread(self.store.update_conversation, sender_id, paused_until=0.0)
        if await asyncio.to_thread(_handoff_active, sender_id):
            logger.info("douyin: pause of %s ended, an agent holds it: not resumed", sender_id)
            return
        await self.bridge.append(
            sender_id, lambda paused: [ConversationResumed()] if paused else [], {}
        )
        logger.info("douyin: bot resumed for %s", sender_id)

    async def resume_expired_pauses(self) -> None:
        now = time.time()
        for sender_id in await asyncio.to_thread(self._expired_pauses, now):
            await self._resume(sender_id)

    def _expired_pauses(self, now: float) -> list[str]:
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(self.store.path, timeout=30)) as conn:
            rows = conn.execute(
                "SELECT sender_id FROM douyin_conversations WHERE paused_until > 0 "
                "AND paused_until <= ?",
                (now,),
            ).fetchall()
        return [r[0] for r in rows]

    async def _greet(self, sender_id: str, envelope: Envelope) -> None:
        from xiaoer.core.clock import now_beijing
        from xiaoer.douyin.greetings import greeting_settings

        greetings = self._greetings or greeting_settings()
        event = envelope.event
        if not greetings.allowed(event, now_beijing()):
            logger.info("douyin: no %s greeting for %s (quiet hours / off)", event, sender_id)
            return
        conv = await asyncio.to_thread(self.store.conversation, sender_id)
        recent = max(conv.last_customer_at, conv.last_greeted_at)
        if recent and time.time() - recent < greetings.cooldown_minutes * 60:
            logger.info("douyin: %s talked or was greeted recently: no greeting", sender_id)
            return
        content = envelope.content
        conversation_id = str(content.get("conversation_short_id") or conv.conversation_short_id)
        scene = SCENE_ENTER if event == EVENT_ENTER else self.settings.follow_scene
        target = ReplyTarget("", conversation_id, scene)
        if conversation_id and conversation_id != conv.conversation_short_id:
            await asyncio.to_thread(
                self.store.update_conversation, sender_id, conversation_short_id=conversation_id
            )
        metadata = {"buyer_id": sender_id, "nickname": conv.nickname, "douyin_event": event}
        for key in ("ad_id", "creative_id"):
            if content.get(key):
                metadata[key] = str(content[key])
        output = DouyinOutput(self.sender)
        await self.bridge.trigger(
            sender_id, GREET_INTENT, {"douyin_event": event}, metadata, output
        )
        if output.messages:
            await asyncio.to_thread(
                self.store.update_conversation, sender_id, last_greeted_at=time.time()
            )
        await self._send(sender_id, output.messages, target)

    # --- HTTP -------------------------------------------------------------------------
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        self._on_new_message = on_new_message
        webhook = Blueprint("douyin_webhook", __name__)

        @webhook.listener("after_server_start")
        async def start(app: Any, loop: Any) -> None:
            self._app = app
            if self.config is None:
                logger.warning(
                    "douyin channel NOT configured: set %s; /webhooks/douyin/webhook answers 503",
                    ", ".join(self.missing),
                )
                return
            self._background(self._sweep(older_than=0))
            self._loops = [
                asyncio.ensure_future(
                    self._loop(
                        self.settings.sweep_interval_seconds,
                        lambda: self._sweep(older_than=60),
                        "sweep",
                    )
                ),
                asyncio.ensure_future(
                    self._loop(
                        self.settings.outbox_interval_seconds,
                        self._flush_outbox,
                        "outbox",
                    )
                ),
            ]

        @webhook.listener("before_server_stop")
        async def shutdown(app: Any, loop: Any) -> None:
            await self.aclose()

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "configured": self.config is not None})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_webhook(request)

        return webhook

    async def _flush_outbox(self) -> None:
        if self.sender is not None:
            await self.sender.flush_due()

    async def aclose(self) -> None:
        for task in self._loops:
            task.cancel()
        self._loops = []
        if self._client is not None:
            await self._client.aclose()
        self._ack_pool.shutdown(wait=False)

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
        declared = as_number(request.headers.get("content-length")) or 0
        body = request.body or b""
        if declared > self.settings.max_body_bytes or len(body) > self.settings.max_body_bytes:
            logger.warning("douyin webhook refused: body of %s bytes", max(declared, len(body)))
            return _error(
                413, "body_too_large", f"请求体不能超过 {self.settings.max_body_bytes} 字节"
            )
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
            challenge = envelope.content.get("challenge")
            return response.json({"challenge": challenge})
        if envelope.event not in (EVENT_RECEIVE, EVENT_SEND, EVENT_ENTER, EVENT_FOLLOW):
            logger.info("douyin event %s ignored", envelope.event)
            return response.json(ACK)
        # the customer: the author of received messages, the addressee of sent ones
        customer = envelope.to_user_id if envelope.event == EVENT_SEND else envelope.from_user_id
        if not customer:
            return _error(400, "invalid_body", "缺少 from_user_id / to_user_id")
        if envelope.event in (EVENT_RECEIVE, EVENT_SEND):
            create_time = as_number(envelope.content.get("create_time")) or 0
        else:  # action_time is in seconds
            create_time = (as_number(envelope.content.get("action_time")) or 0) * 1000
        msg_id = (request.headers.get(MSG_ID_HEADER) or "").strip()
        # a thread of its own: the answer never waits behind the workers' store calls
        event_id = await asyncio.get_running_loop().run_in_executor(
            self._ack_pool,
            self.store.record,
            envelope,
            customer,
            create_time or int(time.time() * 1000),
            msg_id,
        )
        if event_id is None:
            logger.info("douyin %s for %s: duplicate delivery ignored", envelope.event, customer)
            return response.json(ACK)
        logger.info(
            "douyin %s from %s queued (%s)",
            envelope.event,
            customer,
            mask_pii(envelope.content.get("message_type") or "-"),
        )
        self.schedule(customer)
        return response.json(ACK)
