"""Who a conversation belongs to, by its sender id: the one predicate that tells a real
customer from the merchant's own test conversations.

The console's test chat (测试与调整) talks to the real Rasa server through the sandbox
channel (xiaoer/channels/sandbox.py), whose conversations are ``test-chat:<id>``
(:data:`SANDBOX_PREFIX`). No other channel can produce such an id: REST conversations are
``rest:<sender>`` and Douyin ones are open ids without ``:``. Anything that counts customers
(lead capture, handoffs, urges, analytics, learning) leaves out a conversation for which
:func:`is_sandbox` is true.
"""

from __future__ import annotations

SANDBOX_PREFIX = "test-chat:"


def is_sandbox(sender_id: str | None) -> bool:
    """Whether ``sender_id`` is a conversation of the console's test chat (never a customer)."""
    return bool(sender_id) and str(sender_id).startswith(SANDBOX_PREFIX)


def sandbox_id(name: str) -> str:
    """The conversation id of the test conversation ``name``."""
    return SANDBOX_PREFIX + name
