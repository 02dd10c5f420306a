"""Handing Douyin events to Rasa beyond a plain user message.

A customer's message goes through Rasa's ``on_new_message`` like in any channel. Three
things a Douyin conversation needs besides that go through a *bridge*:

* ``append``: record events without running the policies — a message type the NLU cannot
  read (answered politely), a human's answer from the Douyin app (pauses the bot), the
  end of that pause (resumes it);
* ``trigger``: a greeting when a customer follows or opens the chat, as an external intent
  (``EXTERNAL_douyin_greet``), recorded on the Douyin channel with the buyer's metadata.

:class:`RasaBridge` does both in the Rasa server, on the agent, with Rasa's public API
only (``Agent.lock_store``, ``MessageProcessor.fetch_tracker_and_update_session``,
``save_tracker`` and ``handle_message``). :class:`HttpBridge` does ``append`` through Rasa's
HTTP API (:class:`xiaoer.core.rasa_api.RasaClient`), for the worker (pause expiry), which
has no agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import EXTERNAL_MESSAGE_PREFIX, IS_EXTERNAL
from rasa.shared.core.events import BotUttered, Event, UserUttered
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT

logger = logging.getLogger(__name__)

CHANNEL_NAME = "douyin"

EventBuilder = Callable[[bool], list[Event]]


class Bridge(Protocol):
    async def append(self, sender_id: str, build: EventBuilder, metadata: dict[str, Any]) -> bool:
        """Append ``build(paused now)`` to the conversation; whether it was paused."""
        ...


class TurnBridge(Bridge, Protocol):
    async def trigger(
        self,
        sender_id: str,
        intent: str,
        entities: dict[str, str],
        metadata: dict[str, Any],
        output: OutputChannel,
    ) -> None:
        """Run a turn for an external intent; its messages go to ``output``."""
        ...


class RasaBridge:
    """The tracker operations of the Douyin service, on the Rasa server's agent."""

    def __init__(self, agent_getter: Callable[[], Any]) -> None:
        self._agent = agent_getter

    async def append(
        self,
        sender_id: str,
        build: EventBuilder,
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
        """What Rasa's ``trigger_intent`` does, with the channel recorded (so that later
        messages through Rasa's HTTP API find this channel) and the buyer's metadata for
        the actions: an external user message with its parse data given, handled by
        ``MessageProcessor.handle_message`` (no NLU; slots extracted, policies run)."""
        agent = self._agent()
        processor = agent.processor
        async with agent.lock_store.lock(sender_id):
            # a new session starts with the buyer's metadata (not the external marker)
            tracker = await processor.fetch_tracker_and_update_session(sender_id, output, metadata)
            await processor.save_tracker(tracker)
            text = f"{EXTERNAL_MESSAGE_PREFIX}{intent}"
            await processor.handle_message(
                UserMessage(
                    text,
                    output,
                    sender_id,
                    parse_data={
                        TEXT: text,
                        INTENT: {"name": intent, "confidence": 1.0},
                        ENTITIES: [{"entity": k, "value": v} for k, v in entities.items()],
                    },
                    input_channel=CHANNEL_NAME,
                    metadata={IS_EXTERNAL: True, **metadata},
                )
            )

    async def turn_of(self, sender_id: str, message_id: str) -> list[dict[str, Any]] | None:
        """The bot's messages after the user message ``message_id`` of the conversation
        (None when the tracker does not hold that message: its turn was never saved)."""
        agent = self._agent()
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None:
            return None
        found = False
        replies: list[dict[str, Any]] = []
        for event in tracker.events:
            if isinstance(event, UserUttered):
                if found and event.message_id != message_id:
                    break  # the next message's turn
                found = found or event.message_id == message_id
            elif found and isinstance(event, BotUttered):
                message = event.message()
                replies.append(
                    {k: v for k, v in message.items() if v is not None and k != "timestamp"}
                )
        return replies if found else None


class TrackerClient(Protocol):
    """What :class:`HttpBridge` needs from a client of Rasa's HTTP API."""

    def tracker(self, sender_id: str) -> Awaitable[dict[str, Any]]: ...

    def append_events(
        self, sender_id: str, events: list[dict[str, Any]], *, side_effects: bool = ...
    ) -> Awaitable[Any]: ...


class HttpBridge:
    """``append`` through Rasa's HTTP API (``GET /conversations/<id>/tracker``, then
    ``POST .../tracker/events``): for processes without the agent (the worker)."""

    def __init__(self, client: TrackerClient) -> None:
        self.client = client

    async def append(self, sender_id: str, build: EventBuilder, metadata: dict[str, Any]) -> bool:
        current = await self.client.tracker(sender_id)
        paused = bool(current.get("paused"))
        events = [event.as_dict() for event in build(paused)]
        if events:
            await self.client.append_events(sender_id, events, side_effects=False)
        return paused
