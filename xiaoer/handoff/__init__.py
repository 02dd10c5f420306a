"""Human handoff: the queue of conversations waiting for an agent, and its settings."""

from xiaoer.handoff.store import HandoffRequest, HandoffStore, get_handoff_store

__all__ = ["HandoffRequest", "HandoffStore", "get_handoff_store"]
