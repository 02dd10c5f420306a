"""The Douyin service: what happens to a webhook event once the channel accepted it.

The Rasa channel (:mod:`xiaoer.channels.douyin`) checks the HTTP request (size, type,
signature) and calls :meth:`DouyinService.accept`; the event is recorded (a duplicate stops
there) and handed to the per-customer workers (:mod:`xiaoer.douyin.workers`), which call
:meth:`DouyinService.process` for each event in the customer's order:

* ``im_receive_msg``: the customer's message, to Rasa (numbered options answered by
  number, images and lead cards as metadata, videos and unknown types answered politely),
  the turn's replies merged and sent at once (:mod:`xiaoer.douyin.outbox`);
* ``im_send_msg``: a human answered from the app: the bot pauses (:mod:`.pauses`);
* ``im_enter_direct_msg`` / ``new_follow_action``: a greeting (:mod:`.greetings`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, UserUttered

from xiaoer.conversations.buttons import get_button_memory
from xiaoer.core.logsafe import mask_pii
from xiaoer.core.outage import log_unavailable, unavailable_service
from xiaoer.douyin import pauses
from xiaoer.douyin.bridge import CHANNEL_NAME, RasaBridge, TurnBridge
from xiaoer.douyin.client import DouyinClient, DouyinConfig
from xiaoer.douyin.greetings import GreetingSettings, greet, greeting_settings, no_greeting_reason
from xiaoer.douyin.outbox import ReplySender
from xiaoer.douyin.protocol import (
    CARD_TYPES,
    EVENT_ENTER,
    EVENT_FOLLOW,
    EVENT_RECEIVE,
    EVENT_SEND,
    IMAGE_TYPES,
    SCENE_REPLY,
    TEXT_TYPES,
    VIDEO_TYPES,
    ChatMessage,
    Envelope,
    as_number,
)
from xiaoer.douyin.replies import ReplyTarget, chosen_option
from xiaoer.douyin.settings import ChannelSettings
from xiaoer.douyin.spool import Spool, SpooledEvent, default_spool
from xiaoer.douyin.store import DouyinStore, StoredEvent
from xiaoer.douyin.workers import CustomerWorkers
from xiaoer.handoff.activity import record_customer_message
from xiaoer.handoff.waiting import queue_notice
from xiaoer.nlu.multi import handle_message

logger = logging.getLogger(__name__)

HANDLED_EVENTS = (EVENT_RECEIVE, EVENT_SEND, EVENT_ENTER, EVENT_FOLLOW)
SPOOL_IMPORT_SECONDS = 1.0  # how often a non-empty spool is tried (an empty one: a stat)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class CustomerMissing(ValueError):
    """An event that names no customer."""


class DouyinService:
    """Douyin conversations through Rasa; one per channel (Rasa server)."""

    def __init__(
        self,
        config: DouyinConfig | None,
        settings: ChannelSettings,
        make_output: Callable[[ReplySender | None], OutputChannel],
        store: DouyinStore | None = None,
        bridge: TurnBridge | None = None,
        greetings: GreetingSettings | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.greetings = greetings  # None: from the settings at each greeting
        self._make_output = make_output
        self._store = store
        self._bridge = bridge
        self._sender: ReplySender | None = None
        self._on_new_message: OnNewMessage | None = None
        self._agent: Callable[[], Any] = lambda: None
        self._ack_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="douyin-ack")
        self.workers = CustomerWorkers(self)
        self._spool = spool
        self._spool_loop: asyncio.Task[Any] | None = None

    # --- wiring ---------------------------------------------------------------------
    @property
    def store(self) -> DouyinStore:
        if self._store is None:
            from xiaoer.douyin.store import get_douyin_store

            self._store = get_douyin_store()
        return self._store

    @store.setter
    def store(self, store: DouyinStore) -> None:
        self._store = store

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = default_spool(self.settings.spool_max_bytes)
        return self._spool

    @property
    def sender(self) -> ReplySender | None:
        if self._sender is None and self.config is not None:
            client = DouyinClient(self.config, self.store)
            self._sender = ReplySender(client, self.store, self.settings)
        return self._sender

    @property
    def bridge(self) -> TurnBridge:
        if self._bridge is None:
            self._bridge = RasaBridge(lambda: self._agent())
        return self._bridge

    def output(self) -> OutputChannel:
        """A fresh output channel that collects one turn's messages."""
        return self._make_output(self.sender)

    def connect(self, on_new_message: OnNewMessage, agent: Callable[[], Any]) -> None:
        """Rasa's message handler and a getter of the agent (from the channel's routes)."""
        self._on_new_message = on_new_message
        self._agent = agent

    def start(self) -> None:
        """At server start: events left unprocessed are taken up (now and periodically)."""
        self.workers.start()
        from xiaoer.douyin.workers import _every

        self._spool_loop = asyncio.ensure_future(
            _every(SPOOL_IMPORT_SECONDS, self.import_spool, "spool import")
        )

    async def aclose(self) -> None:
        if self._spool_loop is not None:
            self._spool_loop.cancel()
        await self.workers.aclose()
        if self._sender is not None:
            await self._sender.aclose()
        self._ack_pool.shutdown(wait=False)

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is processed (tests, shutdown)."""
        await self.workers.drain(timeout)

    # --- intake -------------------------------------------------------------------------
    async def accept(self, envelope: Envelope, msg_id: str) -> bool:
        """Record an event for processing; False when it is a duplicate (already seen).
        Raises :class:`CustomerMissing` when it names no customer."""
        # the customer: the author of received messages, the addressee of sent ones
        customer = envelope.to_user_id if envelope.event == EVENT_SEND else envelope.from_user_id
        if not customer:
            raise CustomerMissing("缺少 from_user_id / to_user_id")
        if envelope.event in (EVENT_RECEIVE, EVENT_SEND):
            create_time = as_number(envelope.content.get("create_time")) or 0
        else:  # action_time is in seconds
            create_time = (as_number(envelope.content.get("action_time")) or 0) * 1000
        # a thread of its own: the answer never waits behind the workers' store calls
        loop = asyncio.get_running_loop()
        at = create_time or int(time.time() * 1000)
        try:
            if self.spool.size():  # what was kept during an outage goes first
                await self.import_spool()
            event_id = await loop.run_in_executor(
                self._ack_pool,
                self.store.record,
                envelope,
                customer,
                at,
                msg_id,
                self.workers.holder,
            )
        except Exception as exc:
            service = unavailable_service(exc)
            if service is None:
                raise
            # the database is down: kept on disk (fsync'd), acknowledged, imported later
            spooled = SpooledEvent(dict(envelope.__dict__), customer, at, msg_id, time.time())
            self.workers.outage_seen = True
            if not await loop.run_in_executor(self._ack_pool, self.spool.append, spooled):
                raise  # the spool is full: 503, the platform tries again
            log_unavailable(logger, service, "douyin webhook", exc)
            logger.info(
                "douyin %s from %s kept in the local spool (%s unavailable)",
                envelope.event, customer, service,
            )  # fmt: skip
            return True
        self.workers.database_back()
        if event_id is None:
            logger.info("douyin %s for %s: duplicate delivery ignored", envelope.event, customer)
            return False
        logger.info(
            "douyin %s from %s queued (%s)",
            envelope.event,
            customer,
            mask_pii(envelope.content.get("message_type") or "-"),
        )
        if envelope.event == EVENT_RECEIVE:
            self.workers.note_arrival(customer, at)
        self.workers.schedule(customer)
        return True

    async def import_spool(self) -> int:
        """Record the webhooks kept in the spool while the database was down; their
        customers are answered after ``workers.SETTLE_SECONDS``. Returns how many were
        new. Raises when the database is still down (they stay in the spool)."""
        if not self.spool.size():
            return 0
        # the lease first: it expired while the database was down, and the events this
        # server records would look orphaned to the sweeps (which skip the settling time)
        await self.workers.heartbeat()
        holder = self.workers.holder

        def record(event: SpooledEvent) -> int | None:
            return self.store.record(
                Envelope(**event.envelope),
                event.sender_id,
                event.create_time,
                event.msg_id,
                holder,
            )

        recorded: list[str] = []

        def run() -> None:
            def each(event: SpooledEvent) -> None:
                if record(event) is not None:
                    recorded.append(event.sender_id)

            self.spool.import_into(each)

        try:
            await asyncio.get_running_loop().run_in_executor(self._ack_pool, run)
        finally:
            if recorded:
                self.workers.outage_seen = True
                self.workers.database_back()  # turns wait: the other servers import too
                for customer in dict.fromkeys(recorded):
                    self.workers.schedule(customer)
        return len(recorded)

    async def no_reply_reason(self, envelope: Envelope) -> str | None:
        """Why the event will get no reply (None: it will), read before it is accepted
        (its processing changes what it is read from): a paused bot for a customer
        message, the greeting settings and cooldown for a follow or an opened chat. The
        channel returns it with the acknowledgement for the simulator to show."""
        customer = envelope.from_user_id
        if envelope.event not in (EVENT_RECEIVE, EVENT_ENTER, EVENT_FOLLOW) or not customer:
            return None

        def read() -> str | None:
            conv = self.store.conversation(customer)
            if envelope.event == EVENT_RECEIVE:
                return pauses.no_reply_reason(conv)
            from xiaoer.core.clock import now_beijing

            settings = self.greetings or greeting_settings()
            return no_greeting_reason(settings, envelope.event, now_beijing(), conv)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._ack_pool, read)
        except Exception as exc:  # noqa: BLE001 - an explanation only: the event is still taken
            service = unavailable_service(exc)
            if service:
                log_unavailable(logger, service, "douyin no-reply check", exc)
            else:
                logger.exception("douyin: why %s gets no reply is unknown", customer)
            return None

    # --- processing -------------------------------------------------------------------
    async def process(self, stored: StoredEvent) -> None:
        envelope = stored.envelope
        if envelope.event == EVENT_RECEIVE:
            if stored.claimed_by and await self._answered_before(stored):
                return
            await self._receive(stored.sender_id, envelope)
        elif envelope.event == EVENT_SEND:
            await pauses.human_message(
                self.store, self.bridge, stored.sender_id, envelope, self.settings.pause_minutes
            )
        elif envelope.event in (EVENT_ENTER, EVENT_FOLLOW):
            await greet(self, stored.sender_id, envelope)

    async def _answered_before(self, stored: StoredEvent) -> bool:
        """An event taken before (by a server that died, or a try that failed) may have
        had its turn already: Rasa saved the tracker, then the server died before or
        while sending. Its turn is not run twice: when the tracker holds the message,
        the replies it recorded are sent unless a reply to the message was sent or
        queued already. True when the event needs nothing more."""
        message = ChatMessage.from_envelope(stored.envelope)
        message_id = message.server_message_id
        turn_of = getattr(self.bridge, "turn_of", None)
        if not message_id or turn_of is None:
            return False
        replies = await turn_of(stored.sender_id, message_id)
        if replies is None:  # the turn was not saved: run it
            return False
        sender = self.sender
        if (sender is not None and sender.sent_answer_to(stored.sender_id, message_id)) or (
            await asyncio.to_thread(self.store.answered, stored.sender_id, message_id)
        ):
            logger.info(
                "douyin message of %s already answered: not answered again", stored.sender_id
            )
            return True
        conv = await asyncio.to_thread(self.store.conversation, stored.sender_id)
        target = ReplyTarget(
            message_id, message.conversation_short_id or conv.conversation_short_id, SCENE_REPLY
        )
        logger.warning(
            "douyin message of %s was answered in the conversation but not sent (its server "
            "stopped): %s reply message(s) sent now",
            stored.sender_id, len(replies),
        )  # fmt: skip
        await self.send(stored.sender_id, replies, target)
        return True

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
            await pauses.resume(self.store, self.bridge, sender_id)
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
        # the agents' workspace: preview, unread count, search, the nickname
        await asyncio.to_thread(record_customer_message, sender_id, text, metadata)
        output = self.output()
        assert self._on_new_message is not None, "connect() was not called"
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
            self._agent(),
        )
        messages: list[dict[str, Any]] = getattr(output, "messages", [])
        if kind in TEXT_TYPES:
            await asyncio.to_thread(get_button_memory().remember, sender_id, messages)
            if not messages:  # paused for an agent: "人呢" hears the queue
                notice = await asyncio.to_thread(queue_notice, sender_id, text)
                if notice:
                    messages.append({"text": notice})
        await self.send(sender_id, messages, target)

    async def send(
        self, sender_id: str, messages: list[dict[str, Any]], target: ReplyTarget
    ) -> None:
        """Send a turn's replies now (what the platform does not take goes to the outbox)."""
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
            await self.send(sender_id, [{"text": reply}], target)
