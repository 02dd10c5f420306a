"""Sending replies to Douyin, in order per customer, never dropping one.

:class:`ReplySender` is used in two places:

* in the Rasa server, right after a turn (:meth:`ReplySender.deliver`): the reply is
  sent at once (latency); the send API's retries are spent there, and what still fails
  goes to the outbox (``douyin_outbox``). A customer who has queued replies gets the new
  ones queued behind them, after one attempt to send the queued ones first — a later
  reply never overtakes an earlier one;
* in the worker (:func:`xiaoer.douyin.jobs.resend_outbox`), which resends what is due
  (:meth:`ReplySender.flush_due`), with exponential backoff per row.

Every row is *claimed* before it is sent (:meth:`DouyinStore.claim_outbox`, a
conditional UPDATE): of two processes flushing one customer at once, one sends and the
other stops at that row (so it neither sends it twice nor overtakes it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from typing import Any

from xiaoer.douyin.client import DouyinClient, SendFailed
from xiaoer.douyin.protocol import SCENE_ENTER, SCENE_REPLY, send_body
from xiaoer.douyin.replies import MSG_ID_VALID_SECONDS, ReplyTarget, render_parts
from xiaoer.douyin.settings import ChannelSettings
from xiaoer.douyin.store import DouyinStore

logger = logging.getLogger(__name__)

MAX_RESEND_DELAY_SECONDS = 3600.0


class ReplySender:
    """Sends replies in order per customer; what fails goes to the outbox, which is
    resent first (so a later reply never overtakes an earlier one)."""

    def __init__(self, client: DouyinClient, store: DouyinStore, settings: ChannelSettings):
        self.client = client
        self.store = store
        self.settings = settings
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # (customer, message answered) sent by this process: known even when recording it
        # in the database failed (the database went down right after the send)
        self._answered: OrderedDict[tuple[str, str], None] = OrderedDict()

    def sent_answer_to(self, sender_id: str, server_message_id: str) -> bool:
        return (sender_id, server_message_id) in self._answered

    def _note_answer(self, sender_id: str, server_message_id: str) -> None:
        if not server_message_id:
            return
        self._answered[(sender_id, server_message_id)] = None
        while len(self._answered) > 10_000:
            self._answered.popitem(last=False)

    def _lock(self, sender_id: str) -> asyncio.Lock:
        lock = self._locks.get(sender_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[sender_id] = lock
        return lock

    async def aclose(self) -> None:
        await self.client.aclose()

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
                self._note_answer(sender_id, str(body.get("msg_id") or ""))
                await asyncio.to_thread(
                    self.store.remember_sent,
                    sender_id,
                    answer.msg_id,
                    preview,
                    str(body.get("msg_id") or ""),
                )
                sent += 1
        return sent

    async def _queue(
        self, sender_id: str, bodies: list[tuple[dict[str, Any], str]], error: str
    ) -> None:
        retry_at = time.time() + self.settings.outbox_interval_seconds
        for body, preview in bodies:
            await asyncio.to_thread(
                self.store.add_outbox, sender_id, body, preview, error, retry_at
            )

    async def flush(self, sender_id: str) -> int:
        async with self._lock(sender_id):
            return await self._flush_locked(sender_id)

    async def _flush_locked(self, sender_id: str) -> int:
        """Resend the customer's queued replies in order; stops at the first failure, and
        at a row another process is sending."""
        sent = 0
        for item in await asyncio.to_thread(self.store.outbox_pending, sender_id):
            if not await asyncio.to_thread(self.store.claim_outbox, item.id):
                logger.info("douyin outbox #%s is being sent elsewhere", item.id)
                break
            try:
                answer = await self.client.send(item.body, retries=0)
            except SendFailed as exc:
                delay = min(
                    MAX_RESEND_DELAY_SECONDS,
                    self.settings.outbox_interval_seconds * 2 ** min(item.attempts, 8),
                )
                await asyncio.to_thread(
                    self.store.outbox_failed, item.id, str(exc), time.time() + delay
                )
                logger.info("douyin outbox #%s still not sent: %s", item.id, exc)
                break
            self._note_answer(sender_id, str(item.body.get("msg_id") or ""))
            await asyncio.to_thread(self.store.outbox_sent, item.id)
            await asyncio.to_thread(
                self.store.remember_sent,
                sender_id,
                answer.msg_id,
                item.preview,
                str(item.body.get("msg_id") or ""),
            )
            logger.info("douyin outbox #%s sent", item.id)
            sent += 1
        return sent

    async def flush_due(self) -> int:
        """Resend the queued replies of every customer who has one due."""
        sent = 0
        for sender_id in await asyncio.to_thread(self.store.outbox_senders_due):
            sent += await self.flush(sender_id)
        return sent
