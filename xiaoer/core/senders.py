"""Who a conversation belongs to, by its sender id.

The console's sandboxed test chat talks to the real assistant under sender ids that start
with :data:`SANDBOX_PREFIX`; those conversations are the merchant's own tests, never
customers: analytics, leads and learning leave them out.
"""

from __future__ import annotations

SANDBOX_PREFIX = "test-chat:"


def is_sandbox(sender_id: str | None) -> bool:
    """Whether ``sender_id`` is a conversation of the console's test chat."""
    return bool(sender_id) and str(sender_id).startswith(SANDBOX_PREFIX)
