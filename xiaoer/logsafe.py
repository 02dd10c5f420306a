"""Masking of personal data in logs, installed once at the logging layer."""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_TOKEN = re.compile(
    r"(?i)(token|secret|password|access[-_]token)([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,]+)"
)


def mask_pii(text: str) -> str:
    text = _PHONE.sub(lambda m: f"{m.group(2)}****{m.group(4)}", text)
    return _TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class PiiMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must not break logging
            return True
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install() -> None:
    """Attach the filter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            handler.addFilter(PiiMaskingFilter())
    if not any(isinstance(f, PiiMaskingFilter) for f in root.filters):
        root.addFilter(PiiMaskingFilter())
