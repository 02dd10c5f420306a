"""The console's labels: the shared ones of :mod:`xiaoer.core.labels` (one source)."""

from xiaoer.core.labels import (
    CHANNELS,
    FLOWS,
    INTENTS,
    PRIORITIES,
    REASONS,
    SLOTS,
    STATUSES,
    after_sales_reason,
    channel,
    flow,
    intent,
    priority,
    reason,
)

__all__ = [
    "CHANNELS",
    "FLOWS",
    "INTENTS",
    "PRIORITIES",
    "REASONS",
    "SLOTS",
    "STATUSES",
    "after_sales_reason",
    "channel",
    "flow",
    "intent",
    "priority",
    "reason",
]
