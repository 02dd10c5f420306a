"""The bot steps back when a human answers from the Douyin app, and returns later.

A message the account sent that the bot did not send itself (``im_send_msg``) is a human
answering from the Douyin app: it is recorded in the tracker and the bot is paused for
``pause_after_human_minutes``. The pause ends at the customer's next message after that
time (:meth:`DouyinService <xiaoer.douyin.service.DouyinService>`), or by the worker's
job :func:`expire_pauses` — unless an agent of the console holds the conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time

from rasa.shared.core.events import BotUttered, ConversationPaused, ConversationResumed, Event

from xiaoer.douyin.bridge import Bridge
from xiaoer.douyin.protocol import ChatMessage, Envelope
from xiaoer.douyin.store import Conversation, DouyinStore

logger = logging.getLogger(__name__)


def handoff_active(sender_id: str) -> bool:
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


PAUSED_FOR_MERCHANT = "（没有回复：机器人已暂停，商家正在接待）"


def no_reply_reason(conv: Conversation, now: float | None = None) -> str | None:
    """Why a customer message now gets no reply from the bot (None: it gets one), in the
    words the simulator prints: a human answered from the Douyin app within the pause."""
    now = time.time() if now is None else now
    return PAUSED_FOR_MERCHANT if conv.paused_until > now else None


async def human_message(
    store: DouyinStore, bridge: Bridge, customer: str, envelope: Envelope, pause_minutes: float
) -> None:
    """The account wrote from the Douyin app: record it, let the bot stay quiet."""
    message = ChatMessage.from_envelope(envelope)
    own = await asyncio.to_thread(
        store.is_own_echo, customer, message.server_message_id, message.text
    )
    if own:
        return
    text = message.text or f"[{message.message_type}]"
    until = time.time() + pause_minutes * 60
    conv = await asyncio.to_thread(store.conversation, customer)

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

    was_paused = await bridge.append(customer, events, {"buyer_id": customer})
    if not was_paused or conv.paused_until:
        # paused by us (now or earlier): we resume it when the time is up
        await asyncio.to_thread(store.update_conversation, customer, paused_until=until)
    logger.info(
        "douyin: a human answered %s from the app, bot paused for %g min", customer, pause_minutes
    )


async def resume(store: DouyinStore, bridge: Bridge, sender_id: str) -> None:
    """End the pause of a conversation (kept paused when an agent holds it)."""
    await asyncio.to_thread(store.update_conversation, sender_id, paused_until=0.0)
    await _resume_tracker(bridge, sender_id)


async def _resume_tracker(bridge: Bridge, sender_id: str) -> None:
    if await asyncio.to_thread(handoff_active, sender_id):
        logger.info("douyin: pause of %s ended, an agent holds it: not resumed", sender_id)
        return
    await bridge.append(sender_id, lambda paused: [ConversationResumed()] if paused else [], {})
    logger.info("douyin: bot resumed for %s", sender_id)


async def expire_pauses(store: DouyinStore, bridge: Bridge) -> int:
    """Resume every conversation whose pause is over; returns how many ended. Each pause
    is ended by one process only (a conditional UPDATE), so workers may run it at once."""
    ended = 0
    now = time.time()
    for sender_id in await asyncio.to_thread(store.expired_pauses, now):
        if not await asyncio.to_thread(store.end_pause, sender_id, now):
            continue  # ended elsewhere meanwhile
        try:
            await _resume_tracker(bridge, sender_id)
        except Exception:
            # Rasa not reachable: the pause stays recorded, the next round tries again
            await asyncio.to_thread(store.update_conversation, sender_id, paused_until=now)
            raise
        ended += 1
    return ended
