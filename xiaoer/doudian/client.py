"""The Doudian (抖店) open-API client: signed calls with timeouts and retries.

* :class:`DoudianConfig` is the ``backend.doudian`` section of xiaoer.yml; the app key,
  secret and access token come from the environment variables it names.
* :class:`DoudianClient` posts each call signed (:mod:`xiaoer.doudian.protocol`) with the
  request body ``param_json`` itself (``Content-Type: application/json``), as the
  official SDKs send it (the fake also accepts a form field or a query ``param_json``),
  and returns the ``data`` of a successful answer.
* Logs carry the method name, the answer code, the attempt and the duration only: never
  parameters (order ids, buyer ids), the signature, the secret or the access token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from xiaoer.doudian.protocol import (
    API_VERSION,
    BASE_URL_ENV,
    SIGN_METHODS,
    TIMESTAMP_FORMATS,
    DoudianApiError,
    DoudianConfigError,
    DoudianUnavailable,
    Envelope,
    encode_params,
    format_timestamp,
    method_path,
    parse_envelope,
    sign,
)
from xiaoer.shop.backend import BackendError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DoudianConfig:
    base_url: str
    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    sign_method: str = "hmac-sha256"
    timestamp_format: str = "unix"
    timeout_seconds: float = 2.5
    retries: int = 2
    backoff_seconds: float = 0.2  # first retry after this, doubled for each further retry
    cache_ttl_seconds: float = 30.0  # 0 switches the order cache off
    buyer_search_param: str = "open_id"  # order.searchList parameter naming the buyer
    page_size: int = 50

    def __post_init__(self) -> None:
        if self.sign_method not in SIGN_METHODS:
            raise DoudianConfigError(
                f"backend.doudian.sign_method must be one of {SIGN_METHODS}, "
                f"not {self.sign_method!r}"
            )
        if self.timestamp_format not in TIMESTAMP_FORMATS:
            raise DoudianConfigError(
                f"backend.doudian.timestamp_format must be one of {TIMESTAMP_FORMATS}, "
                f"not {self.timestamp_format!r}"
            )

    @classmethod
    def from_settings(
        cls, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> DoudianConfig:
        """From the ``backend.doudian`` section; secrets from the environment variables
        it names (``app_key_env``, ``app_secret_env``, ``access_token_env``); the base
        URL may be overridden by ``XIAOER_DOUDIAN_BASE_URL``."""
        env = os.environ if environ is None else environ
        names = {
            key: str(raw.get(f"{key}_env") or default)
            for key, default in (
                ("app_key", "XIAOER_DOUDIAN_APP_KEY"),
                ("app_secret", "XIAOER_DOUDIAN_APP_SECRET"),
                ("access_token", "XIAOER_DOUDIAN_ACCESS_TOKEN"),
            )
        }
        missing = [key for key, name in names.items() if not env.get(name, "").strip()]
        if missing:  # every missing one at once, so the operator fixes them in one go
            raise DoudianConfigError(
                f"environment variable{'s' if len(missing) > 1 else ''} "
                f"{', '.join(names[k] for k in missing)} "
                f"{'are' if len(missing) > 1 else 'is'} not set "
                f"(backend.doudian.{', '.join(k + '_env' for k in missing)} in xiaoer.yml)"
            )

        def secret(key: str, default_env: str) -> str:
            return env[names[key]].strip()

        return cls(
            base_url=str(
                env.get(BASE_URL_ENV) or raw.get("base_url") or "https://openapi-fxg.jinritemai.com"
            ),
            app_key=secret("app_key", "XIAOER_DOUDIAN_APP_KEY"),
            app_secret=secret("app_secret", "XIAOER_DOUDIAN_APP_SECRET"),
            access_token=secret("access_token", "XIAOER_DOUDIAN_ACCESS_TOKEN"),
            sign_method=str(raw.get("sign_method") or "hmac-sha256").lower(),
            timestamp_format=str(raw.get("timestamp_format") or "unix").lower(),
            timeout_seconds=float(raw.get("timeout_seconds") or 2.5),
            retries=max(0, int(raw.get("retries", 2))),
            backoff_seconds=float(raw.get("backoff_seconds", 0.2)),
            cache_ttl_seconds=float(raw.get("cache_ttl_seconds", 30.0)),
            buyer_search_param=str(raw.get("buyer_search_param") or "open_id"),
            page_size=min(100, max(1, int(raw.get("page_size", 50)))),
        )


class DoudianClient:
    """Signed calls of the Doudian open API with timeouts and retries.

    Retried (with exponential backoff, ``retries`` times): HTTP 5xx, timeouts, connection
    errors. Not retried: HTTP 4xx and business errors (:class:`DoudianApiError`).
    After the last retry: :class:`DoudianUnavailable` (a :class:`BackendUnavailable`).
    """

    def __init__(
        self,
        config: DoudianConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"DoudianClient(base_url={self.config.base_url!r})"

    def _get_session(self) -> aiohttp.ClientSession:
        # a session belongs to one event loop: make a new one when the loop changed
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32),
                headers={"User-Agent": "xiaoer-doudian/1"},
            )
            self._session_loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def signed_query(self, method: str, param_json: str) -> list[tuple[str, str]]:
        """The query of one call (a fresh timestamp each time)."""
        cfg = self.config
        timestamp = format_timestamp(self._clock(), cfg.timestamp_format)
        return [
            ("app_key", cfg.app_key),
            ("method", method),
            ("timestamp", timestamp),
            ("v", API_VERSION),
            ("sign_method", cfg.sign_method),
            (
                "sign",
                sign(cfg.app_key, cfg.app_secret, method, param_json, timestamp, cfg.sign_method),
            ),
            ("access_token", cfg.access_token),
        ]

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call ``method`` and return the ``data`` object of a successful answer."""
        cfg = self.config
        param_json = encode_params(params or {})
        url = cfg.base_url.rstrip("/") + method_path(method)
        attempts = 1 + max(0, cfg.retries)
        reason = "no attempt"
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            outcome = await self._attempt(method, url, param_json)
            elapsed_ms = (time.monotonic() - started) * 1000
            if isinstance(outcome, Envelope):
                logger.log(
                    logging.INFO if outcome.ok else logging.WARNING,
                    "doudian %s code=%s%s attempt=%d %.0fms",
                    method,
                    outcome.code,
                    f" sub_code={outcome.sub_code}" if outcome.sub_code else "",
                    attempt,
                    elapsed_ms,
                )
                if outcome.ok:
                    return outcome.data
                raise DoudianApiError(
                    method, outcome.code, outcome.msg, outcome.sub_code, outcome.sub_msg
                )
            if isinstance(outcome, BackendError):
                logger.warning(
                    "doudian %s failed: %s attempt=%d %.0fms",
                    method,
                    type(outcome).__name__,
                    attempt,
                    elapsed_ms,
                )
                raise outcome
            reason = outcome
            if attempt < attempts:
                delay = cfg.backoff_seconds * (2 ** (attempt - 1))
                delay *= 1 + random.uniform(0, 0.1)  # a little jitter
                logger.warning(
                    "doudian %s %s attempt=%d/%d %.0fms, retrying in %.2fs",
                    method,
                    reason,
                    attempt,
                    attempts,
                    elapsed_ms,
                    delay,
                )
                await self._sleep(delay)
            else:
                logger.warning(
                    "doudian %s %s attempt=%d/%d %.0fms, giving up",
                    method,
                    reason,
                    attempt,
                    attempts,
                    elapsed_ms,
                )
        raise DoudianUnavailable(method, reason, attempts)

    async def _attempt(
        self, method: str, url: str, param_json: str
    ) -> Envelope | BackendError | str:
        """One HTTP exchange: an envelope, a final error, or the reason to retry (str)."""
        session = self._get_session()
        try:
            async with session.post(
                url,
                params=self.signed_query(method, param_json),
                data=param_json.encode("utf-8"),
                headers={"Content-Type": "application/json;charset=UTF-8"},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except asyncio.TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return f"connection error {type(exc).__name__}"
        if status >= 500:
            return f"HTTP {status}"
        try:
            payload = json.loads(raw.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            payload = None
        envelope = parse_envelope(payload)
        if status >= 400:
            if envelope is not None and not envelope.ok:
                return DoudianApiError(
                    method,
                    envelope.code,
                    envelope.msg,
                    envelope.sub_code,
                    envelope.sub_msg,
                    http_status=status,
                )
            return DoudianApiError(method, str(status), f"HTTP {status}", http_status=status)
        if envelope is None:
            return DoudianUnavailable(method, "answer is not a Doudian envelope")
        return envelope
