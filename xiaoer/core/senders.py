"""Who a conversation belongs to, from its sender id.

The console's test chat talks to the assistant as ``test-chat:<agent>``: such sandboxed
conversations are never learned from (inbox, reply variants) nor counted as customers.
"""

from __future__ import annotations

SANDBOX_PREFIX = "test-chat:"


def is_sandbox(sender_id: str | None) -> bool:
    """Whether ``sender_id`` is a sandboxed test conversation (the console's test chat)."""
    return bool(sender_id) and str(sender_id).startswith(SANDBOX_PREFIX)
