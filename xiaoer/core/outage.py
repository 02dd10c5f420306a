"""A store that is down (PostgreSQL, SQLite, Redis): name it, say it once, answer politely.

While PostgreSQL or Redis restarts, every request that touches it fails. Without care each
failure logs a full traceback (hundreds a second under load) and the customer gets a bare
HTTP 500. :func:`unavailable_service` recognises the errors of a store that cannot be
reached; the channels then answer 503 with a polite message in Chinese and log ONE line
per service at most every :data:`LOG_EVERY_SECONDS` (with how many requests failed since),
naming the service. Nothing is kept in memory instead: the request fails, the caller (the
customer's client, the Douyin platform's retries) sends it again, and everything works
again once the store is back (the engines check their connections before use:
``pool_pre_ping``).
"""

from __future__ import annotations

import logging
import threading
import time

LOG_EVERY_SECONDS = 10.0
CUSTOMER_MESSAGE = (
    "抱歉亲，系统正在维护，您的消息没能处理😣 请稍等一两分钟再发一次，给您带来不便非常抱歉～"
)

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def unavailable_service(exc: BaseException) -> str | None:
    """The store an error says is unreachable ("PostgreSQL", "SQLite", "Redis"), or None
    for any other error (a bug: logged with its traceback by the caller)."""
    for error in _chain(exc):
        module = type(error).__module__ or ""
        name = type(error).__name__
        if module.startswith("redis") and name in (
            "ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError",
        ):  # fmt: skip
            return "Redis"
        if name == "LockError" and module.startswith("rasa"):
            return "Redis"  # the lock store could not be reached or answered in time
        if module.startswith(("sqlalchemy", "psycopg2")) and name in (
            "OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError",
        ):  # fmt: skip
            return "SQLite" if "sqlite" in str(error).lower() else "PostgreSQL"
    return None


def log_unavailable(logger: logging.Logger, service: str, what: str, exc: BaseException) -> None:
    """One WARNING per service per :data:`LOG_EVERY_SECONDS`, without a traceback."""
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(service, 0.0)
        if now - last < LOG_EVERY_SECONDS:
            _suppressed[service] = _suppressed.get(service, 0) + 1
            return
        _last_logged[service] = now
        suppressed = _suppressed.pop(service, 0)
    more = f" ({suppressed} more failure(s) since the last line)" if suppressed else ""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    logger.warning("%s unavailable: %s failed: %s%s", service, what, first, more)
