"""The Douyin send API and the access-token refresh.

``DouyinClient.send`` posts one message (``/im/send/msg/``) and retries with exponential
backoff on network errors, timeouts, HTTP 5xx / 429 and non-zero error codes; an
answer saying the token is invalid triggers one refresh and an immediate retry. What
still fails raises :class:`SendFailed` — the channel then keeps the message in its outbox.

The access token is refreshed (``/oauth/refresh_token/``) before it expires
(``refresh_margin_seconds``) and stored in the project database; tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from xiaoer.douyin.protocol import (
    REFRESH_PATH,
    SEND_PATH,
    SendAnswer,
    as_number,
    as_object,
    as_text,
    parse_send_answer,
)
from xiaoer.douyin.store import DouyinStore, StoredToken

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DouyinConfig:
    base_url: str
    client_key: str
    client_secret: str
    account_open_id: str
    access_token: str
    refresh_token: str = ""
    token_expires_at: float = 0.0  # unix seconds; 0 = unknown (refreshed only on an error)
    refresh_margin_seconds: float = 600.0
    timeout_seconds: float = 10.0
    retries: int = 3
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 8.0

    def __repr__(self) -> str:  # never print secrets
        return (
            f"DouyinConfig(base_url={self.base_url!r}, client_key={self.client_key!r}, "
            f"account_open_id={self.account_open_id!r})"
        )


class SendFailed(RuntimeError):
    """The platform did not take a message after all retries (the reason, no secrets)."""


class TokenError(RuntimeError):
    pass


class TokenManager:
    """The current access token; refreshed before it expires, stored after a refresh."""

    def __init__(self, config: DouyinConfig, store: DouyinStore) -> None:
        self.config = config
        self.store = store
        self._lock = asyncio.Lock()
        self._current: StoredToken | None = None
        self.refreshes = 0

    def _load(self) -> StoredToken:
        if self._current is None:
            stored = self.store.token(self.config.client_key)
            self._current = stored or StoredToken(
                self.config.access_token,
                self.config.refresh_token,
                self.config.token_expires_at,
                0.0,
            )
        return self._current

    def _reload(self) -> StoredToken:
        """The stored token again: another process (a Rasa server, the worker) may have
        refreshed it, and a refresh token may be single-use."""
        self._current = None
        return self._load()

    def _due(self, token: StoredToken) -> bool:
        return bool(
            token.expires_at
            and token.expires_at - self.config.refresh_margin_seconds <= time.time()
        )

    async def get(self, session: aiohttp.ClientSession) -> str:
        token = await asyncio.to_thread(self._load)
        if self._due(token) and token.refresh_token:
            async with self._lock:
                token = await asyncio.to_thread(self._reload)
                if self._due(token):
                    try:
                        token = await self._refresh(session, token)
                    except TokenError as exc:
                        # keep using the old token until it really expires
                        logger.warning("douyin token refresh failed: %s", exc)
        return token.access_token

    async def force_refresh(self, session: aiohttp.ClientSession, used: str) -> bool:
        """After the platform refused ``used``: refresh unless someone already did."""
        async with self._lock:
            token = await asyncio.to_thread(self._reload)
            if token.access_token != used:
                return True
            if not token.refresh_token:
                logger.warning("douyin access token refused and no refresh token configured")
                return False
            try:
                await self._refresh(session, token)
            except TokenError as exc:
                logger.warning("douyin token refresh failed: %s", exc)
                return False
            return True

    async def _refresh(self, session: aiohttp.ClientSession, token: StoredToken) -> StoredToken:
        url = self.config.base_url.rstrip("/") + REFRESH_PATH
        form = {
            "client_key": self.config.client_key,
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
        }
        try:
            async with session.post(
                url, data=form, timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds)
            ) as resp:
                payload = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise TokenError(type(exc).__name__) from exc
        data = as_object(payload.get("data")) if isinstance(payload, dict) else {}
        code = as_number(data.get("error_code"))
        new_token = as_text(data.get("access_token"))
        if status != 200 or code not in (0, None) or not new_token:
            raise TokenError(
                f"HTTP {status}, error_code {code}: {as_text(data.get('description'))}"
            )
        now = time.time()
        expires_in = as_number(data.get("expires_in")) or 0
        refresh_in = as_number(data.get("refresh_expires_in")) or 0
        fresh = StoredToken(
            access_token=new_token,
            refresh_token=as_text(data.get("refresh_token")) or token.refresh_token,
            expires_at=now + expires_in if expires_in else 0.0,
            refresh_expires_at=now + refresh_in if refresh_in else token.refresh_expires_at,
        )
        await asyncio.to_thread(self.store.save_token, self.config.client_key, fresh)
        self._current = fresh
        self.refreshes += 1
        logger.info("douyin access token refreshed (valid %s s)", expires_in or "?")
        return fresh


class DouyinClient:
    def __init__(self, config: DouyinConfig, store: DouyinStore) -> None:
        self.config = config
        self.tokens = TokenManager(config, store)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff_max_seconds, self.config.backoff_seconds * 2**attempt)

    async def send(self, body: dict[str, Any], retries: int | None = None) -> SendAnswer:
        """Send one message; raises :class:`SendFailed` when every attempt failed."""
        session = self.session()
        url = self.config.base_url.rstrip("/") + SEND_PATH
        retries = self.config.retries if retries is None else retries
        refreshed = False
        last_error = "not sent"
        attempt = 0
        while attempt <= retries:
            token = await self.tokens.get(session)
            try:
                async with session.post(
                    url,
                    params={"open_id": self.config.account_open_id},
                    json=body,
                    headers={"access-token": token},
                    timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
                ) as resp:
                    status = resp.status
                    try:
                        payload = await resp.json(content_type=None)
                    except ValueError:
                        payload = None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last_error = f"network: {type(exc).__name__}"
            else:
                answer = parse_send_answer(payload)
                if status == 200 and answer.ok:
                    return answer
                if (status in (401, 403) or answer.token_problem) and not refreshed:
                    refreshed = True
                    if await self.tokens.force_refresh(session, token):
                        continue  # the same attempt again with the new token
                last_error = f"HTTP {status}, error_code {answer.code}: {answer.description}"
            if attempt < retries:
                logger.info(
                    "douyin send to %s failed (%s), retry %d of %d",
                    body.get("to_user_id"),
                    last_error,
                    attempt + 1,
                    retries,
                )
                await asyncio.sleep(self._backoff(attempt))
            attempt += 1
        raise SendFailed(last_error)
