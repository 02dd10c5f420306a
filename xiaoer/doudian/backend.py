"""The Doudian (抖店) open API: a signed async client and the ShopBackend built on it.

Contract: ``/work/shared/spec/douyin-platform.md`` ("Doudian (抖店) open API"); choices
where public sources disagree are listed in ``docs/doudian.md``.

* Every call is ``POST {base}/<method with . replaced by />`` with the query ``app_key``,
  ``method``, ``timestamp``, ``v=2``, ``sign_method``, ``sign`` and ``access_token``; the
  request body is ``param_json`` itself (``Content-Type: application/json``), as the
  official SDKs send it. The fake also accepts a form field or a query ``param_json``.
* Answers are parsed defensively: ``code`` 10000 (number or string) or the older
  ``err_no`` 0 is success; ids, amounts and booleans may arrive as strings, numbers or
  ids wrapped in literal quotes.
* Logs carry the method name, the answer code, the attempt and the duration only: never
  parameters (order ids, buyer ids), the signature, the secret or the access token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import aiohttp

from xiaoer.core.config import Settings
from xiaoer.shop.backend import BackendError, BackendUnavailable, ShopBackend
from xiaoer.shop.models import (
    BEIJING,
    AfterSaleCase,
    AfterSaleType,
    Buyer,
    Order,
    OrderItem,
    OrderStatus,
    Product,
    Recipient,
    Shipment,
    SizeChart,
    Trace,
)
from xiaoer.shop.policies import ShopPolicies

logger = logging.getLogger(__name__)

API_VERSION = "2"
SIGN_METHODS = ("hmac-sha256", "md5")
TIMESTAMP_FORMATS = ("unix", "datetime")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SUCCESS_CODE = 10000
BASE_URL_ENV = "XIAOER_DOUDIAN_BASE_URL"  # overrides backend.doudian.base_url (e.g. the fake)


# --- errors -------------------------------------------------------------------------
class DoudianConfigError(ValueError):
    """The Doudian settings are incomplete (e.g. an environment variable is missing)."""


class DoudianApiError(BackendError):
    """Doudian answered with an error code (a business error, bad credentials, ...).

    Never retried. ``code`` / ``sub_code`` / ``msg`` / ``sub_msg`` are Doudian's own.
    """

    def __init__(
        self,
        method: str,
        code: str,
        msg: str = "",
        sub_code: str = "",
        sub_msg: str = "",
        http_status: int = 200,
    ) -> None:
        self.method = method
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.http_status = http_status
        detail = f" ({sub_code}: {sub_msg})" if sub_code or sub_msg else ""
        super().__init__(f"{method}: Doudian error {code} {msg}{detail}".strip())

    @property
    def is_not_found(self) -> bool:
        """The record asked for does not exist: a business error (5xxxx) whose message
        says so (the API has no dedicated code; credential errors never count)."""
        code = as_int(self.code, 0) or 0
        if not 50000 <= code < 60000:
            return False
        text = f"{self.msg} {self.sub_msg}".lower()
        return any(word in text for word in NOT_FOUND_WORDS)


NOT_FOUND_WORDS = ("不存在", "未找到", "查询不到", "not exist", "not found")


class DoudianUnavailable(BackendUnavailable):
    """Doudian could not be reached, timed out or answered 5xx / garbage (after retries)."""

    def __init__(self, method: str, reason: str, attempts: int = 1) -> None:
        self.method = method
        self.reason = reason
        self.attempts = attempts
        super().__init__(f"{method}: Doudian unavailable ({reason}) after {attempts} attempt(s)")


# --- signing ------------------------------------------------------------------------
def encode_params(params: Mapping[str, Any]) -> str:
    """``param_json``: keys sorted (at every level), no spaces, UTF-8 kept, no HTML escaping."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_payload(
    app_key: str, app_secret: str, method: str, param_json: str, timestamp: str
) -> str:
    """The string that is signed (secret + alternating names and values + secret)."""
    return (
        f"{app_secret}app_key{app_key}method{method}param_json{param_json}"
        f"timestamp{timestamp}v{API_VERSION}{app_secret}"
    )


def sign(
    app_key: str,
    app_secret: str,
    method: str,
    param_json: str,
    timestamp: str,
    sign_method: str = "hmac-sha256",
) -> str:
    """Hex HMAC-SHA256 (keyed with the secret) or MD5 of :func:`sign_payload`."""
    payload = sign_payload(app_key, app_secret, method, param_json, timestamp).encode("utf-8")
    if sign_method == "hmac-sha256":
        return hmac.new(app_secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    if sign_method == "md5":
        return hashlib.md5(payload).hexdigest()
    raise DoudianConfigError(f"unknown sign_method {sign_method!r} (expected: {SIGN_METHODS})")


def format_timestamp(epoch_seconds: float, timestamp_format: str = "unix") -> str:
    """Unix seconds (the SDKs) or ``yyyy-MM-dd HH:mm:ss`` in Beijing time (older guide)."""
    if timestamp_format == "unix":
        return str(int(epoch_seconds))
    if timestamp_format == "datetime":
        return datetime.fromtimestamp(int(epoch_seconds), BEIJING).strftime(DATETIME_FORMAT)
    raise DoudianConfigError(
        f"unknown timestamp_format {timestamp_format!r} (expected: {TIMESTAMP_FORMATS})"
    )


def parse_timestamp(value: str) -> float | None:
    """The inverse of :func:`format_timestamp` for either format (None when invalid)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return datetime.strptime(value, DATETIME_FORMAT).replace(tzinfo=BEIJING).timestamp()
    except ValueError:
        return None


def method_path(method: str) -> str:
    """``order.orderDetail`` → ``/order/orderDetail``."""
    return "/" + method.strip("/").replace(".", "/")


# --- defensive value parsing -----------------------------------------------------------
def as_str_id(value: Any) -> str:
    """An id as a string: numbers, strings, strings wrapped in literal quotes."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def as_int(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = as_str_id(value)
    if not text:
        return default
    try:
        return int(Decimal(text))
    except (InvalidOperation, ValueError):
        return default


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return as_str_id(value).lower() in ("true", "1", "yes", "y", "t")


def fen_to_yuan(value: Any) -> Decimal:
    """Money in fen (number or string) → Decimal yuan with two places."""
    text = as_str_id(value) or "0"
    try:
        fen = Decimal(text)
    except InvalidOperation:
        fen = Decimal(0)
    return (fen / 100).quantize(Decimal("0.01"))


def as_time(value: Any) -> datetime | None:
    """Unix seconds or milliseconds (number or string) or ``yyyy-MM-dd HH:mm:ss``
    (Beijing time); 0 and empty values are None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = as_str_id(value)
        if not text:
            return None
        try:
            seconds = float(Decimal(text))
        except InvalidOperation:
            for fmt in (DATETIME_FORMAT, "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
                try:
                    return datetime.strptime(text[:19], fmt).replace(tzinfo=BEIJING)
                except ValueError:
                    continue
            return None
    if seconds <= 0:
        return None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(seconds, timezone.utc).astimezone(BEIJING)


def pick(record: Mapping[str, Any] | None, *names: str) -> Any:
    """The first present, non-empty value among several spellings of a field."""
    if not isinstance(record, Mapping):
        return None
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object that may arrive encoded as a string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


# --- answers ------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    ok: bool
    code: str
    msg: str
    sub_code: str
    sub_msg: str
    data: dict[str, Any]


def parse_envelope(payload: Any) -> Envelope | None:
    """Read Doudian's answer envelope; None when it is not one (garbage).

    ``code`` (10000 = ok, number or string) and the older ``err_no`` (0 = ok) with
    ``message`` are both understood; when both are present, both must say ok.
    """
    if not isinstance(payload, dict):
        return None
    code_raw, err_no_raw = payload.get("code"), payload.get("err_no")
    if code_raw is None and err_no_raw is None:
        return None
    code = as_int(code_raw) if code_raw is not None else None
    err_no = as_int(err_no_raw) if err_no_raw is not None else None
    code_ok = code_raw is None or code == SUCCESS_CODE
    err_ok = err_no_raw is None or err_no == 0
    ok = code_ok and err_ok
    if not code_ok:
        shown = as_str_id(code_raw)
    elif not err_ok:
        shown = as_str_id(err_no_raw)
    else:
        shown = str(SUCCESS_CODE) if code_raw is not None else "0"
    return Envelope(
        ok=ok,
        code=shown,
        msg=str(pick(payload, "msg", "message", "err_msg") or ""),
        sub_code=str(payload.get("sub_code") or ""),
        sub_msg=str(payload.get("sub_msg") or ""),
        data=as_dict(payload.get("data")),
    )


# --- the client ---------------------------------------------------------------------
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

        def secret(key: str, default_env: str) -> str:
            name = str(raw.get(f"{key}_env") or default_env)
            value = env.get(name, "").strip()
            if not value:
                raise DoudianConfigError(
                    f"environment variable {name} is not set "
                    f"(backend.doudian.{key}_env in xiaoer.yml)"
                )
            return value

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


# --- mapping Doudian records to the domain model ----------------------------------------
ORDER_STATUSES: dict[int, OrderStatus] = {
    1: OrderStatus.UNPAID,
    103: OrderStatus.UNPAID,  # partly paid
    105: OrderStatus.PAID,
    2: OrderStatus.PAID,  # preparing
    101: OrderStatus.SHIPPED,  # partly shipped
    3: OrderStatus.SHIPPED,
    4: OrderStatus.CANCELLED,
    5: OrderStatus.COMPLETED,
}
COLOR_SPEC_NAMES = ("颜色", "颜色分类", "颜色类别", "color")
SIZE_SPEC_NAMES = ("尺码", "尺寸", "鞋码", "规格", "size")
SIGNED_WORDS = ("已签收", "签收人", "代签收", "已妥投")
NOT_SIGNED_WORDS = ("待签收", "未签收", "拒签", "拒收")
ENCRYPTED_PREFIXES = ("#", "$", "~")  # Doudian's encrypted receiver fields


class DoudianParseError(BackendUnavailable):
    """An answer had the right envelope but data that cannot be understood."""


def is_signed_for(trace: Trace) -> bool:
    return any(w in trace.text for w in SIGNED_WORDS) and not any(
        w in trace.text for w in NOT_SIGNED_WORDS
    )


def parse_traces(data: Mapping[str, Any]) -> tuple[Trace, ...]:
    """Route nodes of ``logistics.trackNoRouteDetail`` (``route_node_list`` or
    ``route__node_list``, possibly nested in ``track_info``), oldest first."""
    nodes: list[Any] = []
    for holder in (data, as_dict(data.get("track_info")), as_dict(data.get("data"))):
        found = pick(holder, "route_node_list", "route__node_list", "tracks", "track_list")
        if found is not None:
            nodes = as_list(found)
            break
    traces = []
    for node in nodes:
        node = as_dict(node)
        text = str(pick(node, "content", "context", "desc", "description") or "").strip()
        when = as_time(pick(node, "timestamp", "time", "track_time", "update_time"))
        if text and when:
            traces.append(Trace(when, text))
    return tuple(sorted(traces, key=lambda t: t.time))


def _spec_value(specs: Any, names: Sequence[str]) -> str | None:
    for spec in as_list(specs):
        spec = as_dict(spec)
        if str(spec.get("name") or "").strip().lower() in names:
            value = str(spec.get("value") or "").strip()
            return value or None
    return None


def parse_item(raw: Mapping[str, Any]) -> OrderItem:
    quantity = as_int(pick(raw, "item_num", "num", "quantity"), 1) or 1
    unit = pick(raw, "goods_price", "sku_price", "price")
    if unit is not None:
        unit_price = fen_to_yuan(unit)
    else:
        unit_price = (fen_to_yuan(pick(raw, "origin_amount", "order_amount")) / quantity).quantize(
            Decimal("0.01")
        )
    specs = raw.get("spec")
    return OrderItem(
        product_id=as_str_id(pick(raw, "out_product_id", "product_id")),
        product_name=str(pick(raw, "product_name", "name") or ""),
        color=_spec_value(specs, COLOR_SPEC_NAMES),
        size=_spec_value(specs, SIZE_SPEC_NAMES),
        quantity=quantity,
        unit_price=unit_price,
    )


def _plain(value: Any) -> str:
    text = str(value or "").strip()
    return "" if text.startswith(ENCRYPTED_PREFIXES) else text


def _address(addr: Any) -> str:
    if isinstance(addr, str):
        return _plain(addr)
    addr = as_dict(addr)
    parts = []
    for key in ("province", "city", "town", "street"):
        part = addr.get(key)
        parts.append(str(as_dict(part).get("name") or "") if isinstance(part, dict) else "")
    parts.append(_plain(addr.get("detail")))
    return "".join(parts)


def parse_recipient(raw: Mapping[str, Any]) -> Recipient | None:
    name = _plain(raw.get("post_receiver")) or _plain(raw.get("mask_post_receiver"))
    phone = _plain(raw.get("post_tel")) or _plain(raw.get("mask_post_tel"))
    address = _address(raw.get("post_addr")) or _address(raw.get("mask_post_addr"))
    if not (name or phone or address):
        return None
    return Recipient(name, phone, address)


def parse_shipment(raw: Mapping[str, Any]) -> tuple[Shipment, str] | None:
    """The latest parcel of ``logistics_info`` and its courier code (for the route call)."""
    parcels = [as_dict(p) for p in as_list(raw.get("logistics_info"))]
    parcels = [p for p in parcels if as_str_id(p.get("tracking_no"))]
    if not parcels:
        return None
    parcel = max(parcels, key=lambda p: as_int(p.get("ship_time"), 0) or 0)
    code = as_str_id(pick(parcel, "company", "company_code", "logistics_code"))
    shipment = Shipment(
        courier=str(pick(parcel, "company_name", "company") or ""),
        tracking_no=as_str_id(parcel.get("tracking_no")),
        shipped_at=as_time(parcel.get("ship_time")),
    )
    return shipment, code


def parse_order(raw: Mapping[str, Any], traces: Sequence[Trace] = (), buyer_id: str = "") -> Order:
    """A ``shop_order_detail`` (or an entry of ``shop_order_list``) → :class:`Order`.

    ``order_status`` 3 / 101 (shipped) becomes DELIVERED when the answer has a receipt
    time or the latest trace says the parcel was signed for; 5 is COMPLETED.
    """
    order_id = as_str_id(pick(raw, "order_id", "shop_order_id"))
    code = as_int(raw.get("order_status"))
    if code not in ORDER_STATUSES:
        raise DoudianParseError(f"unknown order_status {raw.get('order_status')!r}")
    status = ORDER_STATUSES[code]
    items = tuple(parse_item(as_dict(i)) for i in as_list(raw.get("sku_order_list")))
    total_raw = pick(raw, "order_amount", "pay_amount")
    total = (
        fen_to_yuan(total_raw)
        if total_raw is not None
        else sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
    )
    shipment = None
    found = parse_shipment(raw)
    traces = tuple(sorted(traces, key=lambda t: t.time))
    if found:
        base, _code = found
        shipment = Shipment(base.courier, base.tracking_no, base.shipped_at, traces)
    receipt = as_time(pick(raw, "receipt_time", "sign_time", "logistics_receipt_time"))
    signed = next((t for t in reversed(traces) if is_signed_for(t)), None)
    latest_signed = bool(traces) and signed is traces[-1]
    delivered_at = receipt or (signed.time if signed else None)
    if status == OrderStatus.SHIPPED and (receipt or latest_signed):
        status = OrderStatus.DELIVERED
    if status not in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        delivered_at = None
    created = as_time(raw.get("create_time"))
    if created is None:
        raise DoudianParseError("order without create_time")
    return Order(
        order_id=order_id,
        buyer_id=_raw_buyer(raw) or buyer_id,
        status=status,
        items=items,
        total=total,
        created_at=created,
        paid_at=as_time(raw.get("pay_time")) if status != OrderStatus.UNPAID else None,
        delivered_at=delivered_at,
        shipment=shipment,
        recipient=parse_recipient(raw),
    )


AFTER_SALE_TYPES = {
    0: AfterSaleType.RETURN_REFUND,
    1: AfterSaleType.REFUND_ONLY,
    2: AfterSaleType.REFUND_ONLY,  # refund before shipping
    3: AfterSaleType.EXCHANGE,
}
# after_sale_status → (machine status, what the customer reads)
AFTER_SALE_STATUSES: dict[int, tuple[str, str]] = {
    6: ("applied", "售后申请已提交，等待商家处理"),
    7: ("awaiting_return", "商家已同意退货，请按退货地址寄回商品"),
    11: ("return_shipped", "退货已寄出，等待商家收货"),
    12: ("success", "售后成功"),
    27: ("rejected", "商家已拒绝售后申请"),
    28: ("failed", "售后失败"),
    29: ("return_refused", "商家拒绝收货"),
    51: ("cancelled", "售后已取消"),
    53: ("completed", "售后已完成"),
}
FINAL_AFTER_SALE_STATUSES = (27, 28, 29, 51)
REFUND_STATUSES: dict[int, tuple[str, str, str]] = {
    2: ("refunding", "退款处理中", "预计1-3个工作日内退回原支付账户"),
    3: ("refunded", "退款成功", "已原路退回，到账时间以支付渠道为准"),
    4: ("refund_failed", "退款失败，请联系人工客服处理", ""),
}


def after_sale_state(after_sale_status: Any, refund_status: Any) -> tuple[str, str, str]:
    """(machine status, status words, expected) of an after-sales case.

    A closing status (rejected, failed, return refused, cancelled) wins; otherwise a
    refund in progress / done / failed says most; otherwise the after-sale status.
    """
    status = as_int(after_sale_status)
    refund = as_int(refund_status)
    if status not in FINAL_AFTER_SALE_STATUSES and refund in REFUND_STATUSES:
        return REFUND_STATUSES[refund]
    if status in AFTER_SALE_STATUSES:
        machine, words = AFTER_SALE_STATUSES[status]
        return machine, words, ""
    return "unknown", "售后处理中", ""


def parse_after_sale(
    info: Mapping[str, Any], order_info: Mapping[str, Any] | None = None
) -> AfterSaleCase:
    """A case from ``afterSale.List`` (``aftersale_*`` fields) or ``afterSale.Detail``
    (``after_sale_*`` fields): both spellings are read everywhere."""
    order_info = order_info or {}
    case_type = as_int(pick(info, "after_sale_type", "aftersale_type"), 0)
    machine, words, expected = after_sale_state(
        pick(info, "after_sale_status", "aftersale_status"), info.get("refund_status")
    )
    opened = as_time(pick(info, "apply_time", "create_time"))
    if opened is None:
        raise DoudianParseError("after-sales case without apply_time")
    return AfterSaleCase(
        case_id=as_str_id(pick(info, "after_sale_id", "aftersale_id")),
        order_id=as_str_id(
            pick(order_info, "shop_order_id", "order_id")
            or pick(info, "shop_order_id", "order_id", "related_order_id")
        ),
        case_type=AFTER_SALE_TYPES.get(case_type or 0, AfterSaleType.RETURN_REFUND),
        status=machine,
        status_words=words,
        amount=fen_to_yuan(pick(info, "refund_amount", "apply_amount", "amount")),
        opened_at=opened,
        reason=str(pick(info, "reason", "reason_text", "after_sale_reason", "apply_reason") or ""),
        expected=expected,
    )


# --- the order cache ----------------------------------------------------------------
class OrderChangeLog:
    """Orders changed by push messages (``doudian_order_changes`` in ``xiaoer.db``).

    The push channel runs in the Rasa server, the backend in the action server: the
    backend checks this table before it trusts a cached order.
    """

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS doudian_order_changes ("
        "order_id TEXT PRIMARY KEY, changed_at REAL NOT NULL)"
    )

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.execute(self.SCHEMA)

    def touch(self, order_id: str, when: float | None = None) -> None:
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.execute(
                "INSERT INTO doudian_order_changes VALUES (?, ?) "
                "ON CONFLICT(order_id) DO UPDATE SET changed_at = excluded.changed_at",
                (order_id, time.time() if when is None else when),
            )

    def changed_since(self, since: float, order_id: str | None = None) -> bool:
        """Whether ``order_id`` (any order when None) changed after ``since``."""
        with closing(sqlite3.connect(self.path, timeout=5)) as conn:
            if order_id is None:
                row = conn.execute("SELECT MAX(changed_at) FROM doudian_order_changes").fetchone()
            else:
                row = conn.execute(
                    "SELECT changed_at FROM doudian_order_changes WHERE order_id = ?",
                    (order_id,),
                ).fetchone()
        return bool(row and row[0] is not None and row[0] >= since)


_LIVE_CACHES: weakref.WeakSet[OrderCache] = weakref.WeakSet()


class OrderCache:
    """A short-lived in-memory cache of orders and of buyers' order lists."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl_seconds
        self._clock = clock
        self._orders: dict[str, tuple[float, Order]] = {}
        self._lists: dict[tuple[str, int], tuple[float, list[Order]]] = {}
        _LIVE_CACHES.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get_order(self, order_id: str) -> tuple[float, Order] | None:
        hit = self._orders.get(order_id)
        if hit and self._clock() - hit[0] < self.ttl:
            return hit
        self._orders.pop(order_id, None)
        return None

    def put_order(self, order: Order, fetched_at: float) -> None:
        if self.enabled and order.order_id:
            self._orders[order.order_id] = (fetched_at, order)

    def get_list(self, buyer_id: str, limit: int) -> tuple[float, list[Order]] | None:
        hit = self._lists.get((buyer_id, limit))
        if hit and self._clock() - hit[0] < self.ttl:
            return hit
        self._lists.pop((buyer_id, limit), None)
        return None

    def put_list(self, buyer_id: str, limit: int, orders: list[Order], fetched_at: float) -> None:
        if self.enabled:
            self._lists[(buyer_id, limit)] = (fetched_at, list(orders))

    def invalidate(self, order_id: str) -> None:
        self._orders.pop(order_id, None)
        # a changed or new order may belong to any buyer's list: lists are cheap to refetch
        self._lists.clear()

    def clear(self) -> None:
        self._orders.clear()
        self._lists.clear()


def invalidate_order(order_id: str) -> None:
    """Drop ``order_id`` from every order cache of this process (push messages)."""
    for cache in list(_LIVE_CACHES):
        cache.invalidate(order_id)


# --- the backend --------------------------------------------------------------------
class DoudianShopBackend(ShopBackend):
    """Orders and after-sales from the Doudian open API; products and size charts from a
    local catalogue (the API has neither variants' stock nor size charts for buyers).

    Changes (cancel, change address, open an after-sales case) are the buyer's own
    actions on the platform: they keep the base class behaviour (NotSupportedByBackend),
    so that the actions record the request and hand it to an agent.
    """

    name = "doudian"
    MAX_PAGES = 10

    def __init__(
        self,
        config: DoudianConfig,
        policies: ShopPolicies,
        catalogue: ShopBackend,
        change_log: OrderChangeLog | None = None,
        client: DoudianClient | None = None,
    ) -> None:
        self.config = config
        self.client = client or DoudianClient(config)
        self.catalogue = catalogue
        self.change_log = change_log
        self.cache = OrderCache(config.cache_ttl_seconds)
        self._policies = policies

    @classmethod
    def from_settings(
        cls, settings: Settings, policies: ShopPolicies, **kwargs: Any
    ) -> DoudianShopBackend:
        from xiaoer.shop.sqlite_backend import SqliteShopBackend

        config = DoudianConfig.from_settings(settings.doudian)
        # the local catalogue: the demo shop's tables (seeded if empty)
        catalogue = SqliteShopBackend(settings.sqlite_path, policies)
        change_log = OrderChangeLog(settings.data_dir / "xiaoer.db")
        return cls(config, policies, catalogue, change_log, **kwargs)

    def __repr__(self) -> str:
        return f"DoudianShopBackend(base_url={self.config.base_url!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    def policies(self) -> ShopPolicies:
        return self._policies

    # --- cache helpers ----------------------------------------------------------------
    async def _still_fresh(self, fetched_at: float, order_id: str | None) -> bool:
        if self.change_log is None:
            return True
        log = self.change_log
        try:
            changed = await asyncio.to_thread(log.changed_since, fetched_at, order_id)
        except sqlite3.Error:
            return False
        return not changed

    # --- orders -----------------------------------------------------------------------
    async def _traces(self, raw: Mapping[str, Any]) -> tuple[Trace, ...]:
        found = parse_shipment(raw)
        if not found:
            return ()
        shipment, company = found
        try:
            data = await self.client.call(
                "logistics.trackNoRouteDetail",
                {"logistics_code": company, "track_no": shipment.tracking_no},
            )
        except BackendError as exc:
            # the order is still worth telling without its route
            logger.warning("doudian route unavailable: %s", type(exc).__name__)
            return ()
        return parse_traces(data)

    async def _order_from(self, raw: Mapping[str, Any], buyer_id: str = "") -> Order:
        code = as_int(raw.get("order_status"))
        needs_route = code in (3, 101, 5) and parse_shipment(raw) is not None
        traces = await self._traces(raw) if needs_route else ()
        return parse_order(raw, traces, buyer_id)

    async def get_order(self, order_id: str) -> Order | None:
        order_id = as_str_id(order_id)
        if not order_id:
            return None
        hit = self.cache.get_order(order_id) if self.cache.enabled else None
        if hit and await self._still_fresh(hit[0], order_id):
            return hit[1]
        fetched_at = time.time()
        try:
            data = await self.client.call("order.orderDetail", {"shop_order_id": order_id})
        except DoudianApiError as exc:
            if exc.is_not_found:
                return None
            raise
        raw = as_dict(pick(data, "shop_order_detail", "order_detail", "order"))
        if not raw:
            return None
        order = await self._order_from(raw)
        self.cache.put_order(order, fetched_at)
        return order

    async def _search(
        self, buyer_id: str, want: int, stop: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Raw ``shop_order_list`` entries of a buyer, newest first, up to ``want``."""
        found: list[dict[str, Any]] = []
        size = min(self.config.page_size, max(want, 1))
        for page in range(self.MAX_PAGES):
            data = await self.client.call(
                "order.searchList",
                {
                    self.config.buyer_search_param: buyer_id,
                    "order_asc": False,
                    "order_by": "create_time",
                    "page": page,
                    "size": size,
                },
            )
            batch = [as_dict(o) for o in as_list(pick(data, "shop_order_list", "list"))]
            found.extend(batch)
            if stop and any(stop(o) for o in batch):
                break
            total = as_int(data.get("total"))
            more = data.get("has_more")
            if not batch or len(found) >= want:
                break
            if more is not None and not as_bool(more):
                break
            if more is None and (total is None or len(found) >= total or len(batch) < size):
                break
        return found

    async def orders_by_buyer(self, buyer_id: str, limit: int = 10) -> list[Order]:
        if not buyer_id:
            return []
        hit = self.cache.get_list(buyer_id, limit) if self.cache.enabled else None
        if hit and await self._still_fresh(hit[0], None):
            return hit[1]
        fetched_at = time.time()
        raws = await self._search(buyer_id, limit)
        gate = asyncio.Semaphore(4)

        async def one(raw: dict[str, Any]) -> Order | None:
            async with gate:
                try:
                    return await self._order_from(raw, buyer_id)
                except DoudianParseError as exc:  # one odd order must not hide the others
                    logger.warning("doudian order skipped: %s", exc)
                    return None

        orders = [o for o in await asyncio.gather(*(one(r) for r in raws)) if o is not None]
        # never show a buyer someone else's order, even if the search ignored the buyer
        orders = [o for o in orders if o.buyer_id == buyer_id]
        orders.sort(key=lambda o: (o.created_at, o.order_id), reverse=True)
        orders = orders[:limit]
        self.cache.put_list(buyer_id, limit, orders, fetched_at)
        for order in orders:
            self.cache.put_order(order, fetched_at)
        return orders

    async def get_buyer(self, buyer_id: str) -> Buyer | None:
        """Returning = at least one completed (status 5) order; None when the buyer has
        no order in this shop (like the SQLite shop's unknown buyer)."""
        if not buyer_id:
            return None
        raws = await self._search(buyer_id, 100, stop=lambda o: as_int(o.get("order_status")) == 5)
        raws = [o for o in raws if _raw_buyer(o) in (buyer_id, "")]
        if not raws:
            return None
        return Buyer(buyer_id, any(as_int(o.get("order_status")) == 5 for o in raws))

    # --- products: the local catalogue -------------------------------------------------
    async def get_product(self, product_id: str) -> Product | None:
        return await self.catalogue.get_product(product_id)

    async def list_products(self) -> list[Product]:
        return await self.catalogue.list_products()

    async def get_size_chart(self, product_id: str) -> SizeChart | None:
        return await self.catalogue.get_size_chart(product_id)

    # --- after-sales ------------------------------------------------------------------
    async def after_sales_for_order(self, order_id: str) -> list[AfterSaleCase]:
        order_id = as_str_id(order_id)
        if not order_id:
            return []
        cases: list[AfterSaleCase] = []
        for page in range(self.MAX_PAGES):
            try:
                data = await self.client.call(
                    "afterSale.List", {"order_id": order_id, "page": page, "size": 20}
                )
            except DoudianApiError as exc:
                if exc.is_not_found:
                    return []
                raise
            items = [as_dict(i) for i in as_list(pick(data, "items", "list"))]
            for item in items:
                info = as_dict(pick(item, "aftersale_info", "after_sale_info")) or item
                cases.append(parse_after_sale(info, as_dict(item.get("order_info"))))
            if not items or not as_bool(data.get("has_more")):
                break
        cases = [c for c in cases if c.order_id in (order_id, "")]
        return sorted(_unique_cases(cases), key=lambda c: c.opened_at)

    async def get_after_sale(self, case_id: str) -> AfterSaleCase | None:
        case_id = as_str_id(case_id)
        if not case_id:
            return None
        try:
            data = await self.client.call("afterSale.Detail", {"after_sale_id": case_id})
        except DoudianApiError as exc:
            if exc.is_not_found:
                return None
            raise
        process = as_dict(data.get("process_info"))
        info = as_dict(pick(process, "after_sale_info", "aftersale_info")) or as_dict(
            pick(data, "after_sale_info", "aftersale_info")
        )
        if not info:
            return None
        return parse_after_sale(info, as_dict(data.get("order_info")))


def _raw_buyer(raw: Mapping[str, Any]) -> str:
    return as_str_id(pick(raw, "open_id", "doudian_open_id", "buyer_open_id"))


def _unique_cases(cases: Iterable[AfterSaleCase]) -> list[AfterSaleCase]:
    seen: dict[str, AfterSaleCase] = {}
    for case in cases:
        seen.setdefault(case.case_id, case)
    return list(seen.values())
