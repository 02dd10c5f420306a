"""Masking of personal data in logs, installed once at the logging layer.

``install()`` masks every record at creation (a log record factory), so loggers and
handlers configured later (Rasa's, Sanic's) are covered too; the filter on the handlers
that exist at install time is kept for records created by other factories."""

from __future__ import annotations

import logging
import re
from typing import Any

_PHONE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_TOKEN = re.compile(
    r"(?i)(token|secret|password|access[-_]token)([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,]+)"
)


def mask_pii(text: str) -> str:
    text = _PHONE.sub(lambda m: f"{m.group(2)}****{m.group(4)}", text)
    return _TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken record must not break logging
        return
    masked = mask_pii(message)
    if masked != message:
        record.msg, record.args = masked, None


class PiiMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


_installed = False


def install() -> None:
    """Mask every log record of this process (idempotent)."""
    global _installed
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            handler.addFilter(PiiMaskingFilter())
    if not any(isinstance(f, PiiMaskingFilter) for f in root.filters):
        root.addFilter(PiiMaskingFilter())
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)
