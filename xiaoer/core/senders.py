"""Who is writing: the one predicate that tells a real customer from the merchant's own
test conversations.

The console's test chat (测试与调整) talks to the real Rasa server through the sandbox
channel (xiaoer/channels/sandbox.py), whose conversations are ``sandbox:<id>``. No other
channel can produce such an id: REST conversations are ``rest:<sender>`` and Douyin ones
are open ids without ``:``. Anything that counts customers (lead capture, handoffs,
analytics, learning) skips a conversation for which :func:`is_sandbox` is true.
"""

from __future__ import annotations

SANDBOX_PREFIX = "sandbox:"


def is_sandbox(sender_id: str | None) -> bool:
    """Whether ``sender_id`` is a test conversation of the console (never a customer)."""
    return bool(sender_id) and str(sender_id).startswith(SANDBOX_PREFIX)


def sandbox_id(name: str) -> str:
    """The conversation id of the test conversation ``name``."""
    return SANDBOX_PREFIX + name
