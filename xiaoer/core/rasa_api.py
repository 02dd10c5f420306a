"""The one client for Rasa's HTTP API (the console's desk and the worker's jobs use it).

Rasa's API (``rasa run --enable-api``) is internal and needs the API token, which comes
from ``$XIAOER_API_TOKEN`` (or ``var/api_token``, :func:`xiaoer.core.security.api_token`),
as for the Rasa server itself (:mod:`xiaoer.servers.rasaserver`); it travels as Rasa's
``token`` query parameter and is never logged.

Where the Rasa server is: ``$XIAOER_RASA_URL``, else ``console.rasa_url`` of xiaoer.yml,
else http://localhost:5005.

Messages appended with ``side_effects=True`` go out through the channel the customer last
used (``output_channel=latest``, ``execute_side_effects``), and the tracker keeps them.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

import aiohttp

logger = logging.getLogger(__name__)

RASA_URL_ENV = "XIAOER_RASA_URL"
DEFAULT_RASA_URL = "http://localhost:5005"
# metadata of a message parsed to check what a new model itself learnt (the hot swap's
# probes, xiaoer/servers/modelsync.py): the knowledge base's run-time matcher leaves it alone
MODEL_CHECK_FLAG = "xiaoer_model_check"


class RasaApiError(RuntimeError):
    """Rasa did not accept the call; the message (Simplified Chinese) is shown to agents.

    ``status`` is the HTTP status, or None when Rasa could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def rasa_url() -> str:
    """The Rasa server whose HTTP API the project's processes use."""
    url = os.environ.get(RASA_URL_ENV)
    if not url:
        from xiaoer.core.config import get_settings

        url = str(get_settings().section("console").get("rasa_url") or DEFAULT_RASA_URL)
    return url.rstrip("/")


class RasaClient:
    """Async client of Rasa's HTTP API (aiohttp; one short session per call, so one
    client serves any event loop: the console's, the worker's)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 10):
        self.url = (url or rasa_url()).rstrip("/")
        if token is None:
            from xiaoer.core.security import api_token

            token = api_token()
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # never the token
        return f"RasaClient({self.url!r})"

    def _tracker_url(self, sender_id: str, suffix: str = "") -> str:
        return f"{self.url}/conversations/{quote(sender_id, safe=':@')}/tracker{suffix}"

    async def tracker(self, sender_id: str, include_events: str = "ALL") -> dict[str, Any]:
        """The conversation's tracker (``GET /conversations/<id>/tracker``)."""
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.get(
                    self._tracker_url(sender_id),
                    params={"token": self.token, "include_events": include_events},
                ) as resp:
                    if resp.status != 200:
                        raise RasaApiError(f"读取会话失败（HTTP {resp.status}）", resp.status)
                    return dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RasaApiError("无法连接机器人服务，请稍后重试") from exc

    async def append_events(
        self, sender_id: str, events: list[dict[str, Any]], *, side_effects: bool = True
    ) -> dict[str, Any]:
        """Append events to the conversation (``POST .../tracker/events``); with
        ``side_effects`` bot messages are sent through the customer's latest channel."""
        params = {"token": self.token, "include_events": "NONE"}
        if side_effects:
            params.update(output_channel="latest", execute_side_effects="true")
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.post(
                    self._tracker_url(sender_id, "/events"), params=params, json=events
                ) as resp:
                    if resp.status != 200:
                        logger.warning(
                            "rasa refused events for conversation %s: HTTP %s",
                            sender_id,
                            resp.status,
                        )
                        raise RasaApiError(
                            f"机器人服务拒绝了请求（HTTP {resp.status}）", resp.status
                        )
                    return dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RasaApiError("无法连接机器人服务，消息未发送，请稍后重试") from exc

    async def trigger_intent(
        self, sender_id: str, intent: str, entities: dict[str, Any] | None = None
    ) -> None:
        """Run the assistant on an external event (``POST /conversations/<id>/trigger_intent``),
        its answer sent through the customer's latest channel."""
        url = f"{self.url}/conversations/{quote(sender_id, safe=':@')}/trigger_intent"
        params = {"token": self.token, "output_channel": "latest", "include_events": "NONE"}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.post(
                    url, params=params, json={"name": intent, "entities": entities or {}}
                ) as resp:
                    if resp.status != 200:
                        raise RasaApiError(
                            f"机器人服务拒绝了请求（HTTP {resp.status}）", resp.status
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RasaApiError("无法连接机器人服务，请稍后重试") from exc

    async def send_bot_message(
        self, sender_id: str, text: str, metadata: dict[str, Any] | None = None
    ) -> None:
        """Say ``text`` to the customer as the bot, through their channel, and keep it in
        the tracker."""
        event: dict[str, Any] = {"event": "bot", "text": text}
        if metadata:
            event["metadata"] = metadata
        await self.append_events(sender_id, [event])

    async def sandbox_turn(self, session: str, text: str, channel: str = "") -> dict[str, Any]:
        """One message of the console's test chat through the sandbox channel
        (xiaoer/channels/sandbox.py): the bot's messages and what produced them."""
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session_:
                async with session_.post(
                    f"{self.url}/webhooks/sandbox/webhook",
                    headers={"Authorization": f"Bearer {self.token}"},
                    json={"session": session, "message": text, "channel": channel},
                ) as resp:
                    if resp.status != 200:
                        raise RasaApiError(
                            f"机器人服务拒绝了请求（HTTP {resp.status}）", resp.status
                        )
                    return dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RasaApiError("无法连接机器人服务，请确认机器人已启动") from exc
