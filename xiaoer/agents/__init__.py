"""Agent accounts, roles, skill groups and shifts: a service the console and actions share."""

from xiaoer.agents.store import (
    DEFAULT_GROUPS,
    ROLES,
    Agent,
    AgentError,
    AgentStore,
    get_agent_store,
)

__all__ = ["DEFAULT_GROUPS", "ROLES", "Agent", "AgentError", "AgentStore", "get_agent_store"]
