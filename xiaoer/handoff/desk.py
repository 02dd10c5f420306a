"""What an agent does to a conversation, carried out through Rasa's HTTP API
(:class:`xiaoer.core.rasa_api.RasaClient`).

Every message an agent (or the queue's re-announcement) sends is appended to the
conversation's tracker as a bot event with ``execute_side_effects`` and
``output_channel=latest``, so Rasa delivers it through the channel the customer used and
the history stays complete; agent messages carry ``agent_id`` / ``agent_name`` in their
metadata. Taking a conversation pauses the bot (``pause``), handing back resumes it
(``resume``) and tells the customer the bot is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xiaoer.core.clock import BEIJING
from xiaoer.core.config import get_settings
from xiaoer.core.rasa_api import RasaApiError, RasaClient
from xiaoer.core.settings import HandoffSettings, handoff_settings
from xiaoer.handoff.store import HandoffRequest, HandoffStore, get_handoff_store

logger = logging.getLogger(__name__)

CSAT_TRIGGER = "EXTERNAL_ask_csat"  # actions/satisfaction.py

DEFAULT_TEXTS = {
    "resumed": "人工客服已处理完毕，接下来由{bot_name}继续为您服务～还有什么问题随时问我哦。",
    "still_waiting": (
        "抱歉让您久等了😔 客服们都在忙，您的问题还在排队（前面还有{queue_ahead}位），"
        "我们没有忘记您，客服接入后会马上回复。"
    ),
    # first in line: never "前面还有0位" after "您排在第一位"
    "still_waiting_next": (
        "抱歉让您久等了😔 客服们都在忙，下一位就轮到您了，我们没有忘记您，客服接入后会马上回复。"
    ),
    # an agent holds the conversation but has not written yet
    "still_taken": "抱歉让您久等了😔 客服已经在查看您的问题了，马上回复您，请稍等～",
}


@dataclass(frozen=True)
class ChatLine:
    who: str  # customer | bot | agent | system
    text: str
    time: str  # HH:MM (Beijing)
    timestamp: float
    agent_name: str = ""
    image: str = ""


def texts() -> dict[str, str]:
    configured = get_settings().section("handoff").get("messages") or {}
    return {**DEFAULT_TEXTS, **{k: str(v) for k, v in configured.items() if k in DEFAULT_TEXTS}}


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%m-%d %H:%M")


def chat_lines(events: list[dict[str, Any]]) -> list[ChatLine]:
    """The conversation as the agent reads it: customer, bot and agent messages, plus
    markers where the bot was paused and resumed."""
    lines: list[ChatLine] = []
    for e in events:
        kind, ts = e.get("event"), float(e.get("timestamp") or 0)
        if kind == "user":
            metadata = e.get("metadata") or {}
            image = ""
            for attachment in metadata.get("attachments") or []:
                if isinstance(attachment, dict) and attachment.get("type") == "image":
                    url = str(attachment.get("url") or "")
                    image = url if url.startswith(("https://", "http://")) else ""
            lines.append(ChatLine("customer", e.get("text") or "", _fmt(ts), ts, image=image))
        elif kind == "bot":
            metadata = e.get("metadata") or {}
            data = e.get("data") or {}
            text = e.get("text") or ""
            if data.get("buttons"):
                text += "  " + " ".join(f"[{b.get('title')}]" for b in data["buttons"])
            image = str(data.get("image") or "")
            if metadata.get("agent_id"):
                name = str(metadata.get("agent_name", ""))
                lines.append(ChatLine("agent", text, _fmt(ts), ts, agent_name=name, image=image))
            else:
                lines.append(ChatLine("bot", text, _fmt(ts), ts, image=image))
        elif kind == "pause":
            lines.append(ChatLine("system", "机器人已暂停，由人工客服接待", _fmt(ts), ts))
        elif kind == "resume":
            lines.append(ChatLine("system", "已交还机器人", _fmt(ts), ts))
    return lines


__all__ = ["ChatLine", "HandoffDesk", "RasaApiError", "chat_lines", "texts"]


class HandoffDesk:
    def __init__(
        self,
        rasa_url: str | None = None,
        token: str | None = None,
        store: HandoffStore | None = None,
        timeout: float = 10,
    ) -> None:
        self.rasa = RasaClient(rasa_url, token, timeout=timeout)
        self.store = store or get_handoff_store()

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        return await self.rasa.tracker(sender_id)

    async def append(
        self, sender_id: str, events: list[dict[str, Any]], side_effects: bool = True
    ) -> dict[str, Any]:
        return await self.rasa.append_events(sender_id, events, side_effects=side_effects)

    # --- agent actions ------------------------------------------------------------------
    async def take(self, request: HandoffRequest, agent_id: int) -> bool:
        """Take a waiting conversation; the bot is paused (again) for it."""
        if not self.store.take(request.id, agent_id):
            return False
        await self.pause(request.sender_id)
        return True

    async def pause(self, sender_id: str) -> None:
        """Pause the bot for a conversation (nothing is appended when it already is)."""
        current = await self.tracker(sender_id)
        if not current.get("paused"):
            await self.append(sender_id, [{"event": "pause"}], side_effects=False)

    async def reply(
        self, request: HandoffRequest, agent_id: int, agent_name: str, text: str
    ) -> None:
        """Send an agent's message through the customer's channel and into the tracker."""
        events: list[dict[str, Any]] = []
        current = await self.tracker(request.sender_id)
        if not current.get("paused"):
            events.append({"event": "pause"})
        events.append(
            {
                "event": "bot",
                "text": text,
                "metadata": {
                    "agent_id": agent_id,
                    "agent_name": agent_name,
                    "handoff_id": request.id,
                },
            }
        )
        await self.append(request.sender_id, events)
        self.store.agent_replied(request.id)

    async def send_image(
        self, request: HandoffRequest, agent_id: int, agent_name: str, url: str
    ) -> None:
        """Send an image (a URL the customer's client can fetch) through the channel."""
        events: list[dict[str, Any]] = []
        current = await self.tracker(request.sender_id)
        if not current.get("paused"):
            events.append({"event": "pause"})
        events.append(
            {
                "event": "bot",
                "text": None,
                "data": {"image": url},
                "metadata": {
                    "agent_id": agent_id,
                    "agent_name": agent_name,
                    "handoff_id": request.id,
                },
            }
        )
        await self.append(request.sender_id, events)
        self.store.agent_replied(request.id)

    async def hand_back(self, request: HandoffRequest, note: str, announce: bool = True) -> None:
        """Close the case and resume the bot (telling the customer, unless ``announce`` is
        False: a plain close)."""
        events: list[dict[str, Any]] = [{"event": "resume"}]
        if announce:
            from xiaoer.core.profile import bot_profile

            bot_name = bot_profile().name  # the bot's profile (console 基本信息)
            events.append(
                {
                    "event": "bot",
                    "text": texts()["resumed"].format(bot_name=bot_name),
                    "metadata": {"handoff_id": request.id, "handed_back": True},
                }
            )
        events.append({"event": "action", "name": "action_listen"})
        await self.append(request.sender_id, events)
        self.store.close(request.id, note)
        if announce:
            await self.ask_rating(request.sender_id)

    async def ask_rating(self, sender_id: str) -> None:
        """The conversation ended with an agent: the assistant asks the customer, once, for
        a satisfaction rating (rule ``EXTERNAL_ask_csat``, actions/satisfaction.py). A
        failure here never undoes the hand-back."""
        try:
            await self.rasa.trigger_intent(sender_id, CSAT_TRIGGER)
        except RasaApiError:
            logger.warning("rating question after the hand-back of %s not sent", sender_id)

    async def reannounce_due(self, settings: HandoffSettings | None = None) -> int:
        """Tell customers left waiting beyond the timeout, honestly, that they are still in
        the queue; returns how many were told."""
        settings = settings or handoff_settings()
        told = 0
        for request in self.store.unanswered(settings.reannounce_after_minutes * 60):
            if request.status == "active":
                text = texts()["still_taken"]  # an agent holds it, not a queue any more
            else:
                ahead = self.store.position(request)
                key = "still_waiting" if ahead else "still_waiting_next"
                text = texts()[key].format(queue_ahead=ahead)
            try:
                await self.append(
                    request.sender_id,
                    [{"event": "bot", "text": text, "metadata": {"handoff_id": request.id}}],
                )
            except RasaApiError:
                logger.warning("re-announcement of handoff %s not delivered", request.id)
                continue
            self.store.mark_announced(request.id)
            told += 1
        return told
