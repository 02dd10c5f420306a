"""The Doudian (抖店) open API's wire format: signing, answers, defensive value parsing,
push messages, and the errors of the package.

Contract: ``/work/shared/spec/douyin-platform.md`` ("Doudian (抖店) open API"); choices
where public sources disagree are listed in ``docs/doudian.md``.

* Every call is ``POST {base}/<method with . replaced by />`` with the query ``app_key``,
  ``method``, ``timestamp``, ``v=2``, ``sign_method``, ``sign`` and ``access_token``; the
  request body is ``param_json`` itself (:func:`encode_params`), signed by :func:`sign`.
* Answers are parsed defensively (:func:`parse_envelope`): ``code`` 10000 (number or
  string) or the older ``err_no`` 0 is success; ids, amounts and booleans may arrive as
  strings, numbers or ids wrapped in literal quotes (``as_*`` helpers).
* Push messages are ``[{"tag", "msg_id", "data"}]`` (:class:`PushMessage`); their
  signature and parsing are in :mod:`xiaoer.doudian.push`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from xiaoer.core.clock import BEIJING
from xiaoer.shop.backend import BackendError, BackendUnavailable

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


class DoudianParseError(BackendUnavailable):
    """An answer had the right envelope but data that cannot be understood."""


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


# --- push messages ----------------------------------------------------------------------
TAG_ORDER_PAID = 101
TAG_ORDER_SHIPPED = 102
TAG_ORDER_COMPLETED = 103
TAG_ORDER_CANCELLED = 106
TAG_AFTER_SALE_APPLIED = 200
TAG_REFUND_SUCCESS = 206
TAG_AFTER_SALE_CLOSED = 207
TAGS = {
    TAG_ORDER_PAID: "order_paid",
    TAG_ORDER_SHIPPED: "order_shipped",
    TAG_ORDER_COMPLETED: "order_completed",
    TAG_ORDER_CANCELLED: "order_cancelled",
    TAG_AFTER_SALE_APPLIED: "after_sale_applied",
    TAG_REFUND_SUCCESS: "refund_success",
    TAG_AFTER_SALE_CLOSED: "after_sale_closed",
}


@dataclass(frozen=True)
class PushMessage:
    """One message of a push delivery (``{"tag", "msg_id", "data"}``)."""

    tag: int
    msg_id: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return TAGS.get(self.tag, f"tag_{self.tag}")

    @property
    def order_id(self) -> str:
        return as_str_id(pick(self.data, "p_id", "shop_order_id", "order_id", "s_id"))

    @property
    def after_sale_id(self) -> str:
        return as_str_id(pick(self.data, "aftersale_id", "after_sale_id"))

    @property
    def is_after_sale(self) -> bool:
        return 200 <= self.tag < 300
