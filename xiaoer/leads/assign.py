"""Round-robin assignment of leads to agents who are on shift, with a per-agent cap.

Eligible: active agents on shift whose role is in ``leads.assignment.roles`` and who
hold fewer open (new / contacted) leads than ``max_open_per_agent``. When agents of the
lead category's skill group (``leads.assignment.groups``, e.g. wholesale -> 售前) are
eligible, only they take part. The pointer (last agent served, per group) is stored, so
the rotation survives restarts. A lead nobody can take stays unassigned and is assigned
by ``assign_pending`` when an agent comes on shift or gets below the cap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xiaoer.agents import Agent
from xiaoer.core.config import get_settings
from xiaoer.leads.store import Lead, LeadStore

log = logging.getLogger(__name__)


AgentLike = Agent


@dataclass(frozen=True)
class AssignmentRules:
    max_open_per_agent: int = 20
    roles: list[str] = field(default_factory=lambda: ["agent"])
    groups: dict[str, str] = field(
        default_factory=lambda: {
            "purchase": "售前",
            "wholesale": "售前",
            "after_sales": "售后",
            "complaint": "投诉",
        }
    )

    @classmethod
    def from_settings(cls, section: dict[str, Any] | None = None) -> AssignmentRules:
        if section is None:
            section = get_settings().section("leads").get("assignment") or {}
        base = cls()
        return cls(
            max_open_per_agent=int(section.get("max_open_per_agent", base.max_open_per_agent)),
            roles=list(section.get("roles") or base.roles),
            groups={**base.groups, **(section.get("groups") or {})},
        )


def current_agents() -> list[AgentLike]:
    """The agents of the console's agent service."""
    from xiaoer.agents import get_agent_store

    return list(get_agent_store().list_agents())


def pick_agent(
    store: LeadStore,
    lead: Lead,
    agents: Sequence[AgentLike],
    rules: AssignmentRules,
    counts: dict[int, int] | None = None,
) -> AgentLike | None:
    counts = store.open_counts() if counts is None else counts
    eligible = sorted(
        (
            a
            for a in agents
            if a.active
            and a.on_shift
            and a.role in rules.roles
            and counts.get(a.id, 0) < rules.max_open_per_agent
        ),
        key=lambda a: a.id,
    )
    group = rules.groups.get(lead.category)
    in_group = [a for a in eligible if group and group in (a.groups or [])]
    pool = in_group or eligible
    if not pool:
        return None
    chosen = store.rotate(f"rr:{group if in_group else '*'}", [a.id for a in pool])
    return next(a for a in pool if a.id == chosen)


def assign_lead(
    store: LeadStore,
    lead: Lead,
    agents: Sequence[AgentLike] | None = None,
    rules: AssignmentRules | None = None,
) -> Lead:
    """Give an unassigned lead to the next eligible agent (unchanged if none)."""
    if lead.assignee_id is not None or lead.status not in ("new", "contacted"):
        return lead
    agents = current_agents() if agents is None else agents
    rules = rules or AssignmentRules.from_settings()
    agent = pick_agent(store, lead, agents, rules)
    if agent is None:
        return lead
    # one conditional UPDATE: a lead taken meanwhile (another worker, the console) stays
    # theirs, and the agent's cap is checked again in the same transaction
    assigned = store.assign_if_unassigned(
        lead.id, agent.id, author="system", max_open=rules.max_open_per_agent
    )
    if assigned is None:
        return lead
    if assigned.assignee_id == agent.id:
        log.info("lead %s assigned to agent %s", lead.id, agent.id)
    return assigned


def assign_pending(
    store: LeadStore,
    agents: Sequence[AgentLike] | None = None,
    rules: AssignmentRules | None = None,
) -> list[Lead]:
    """Assign every open unassigned lead that someone can take now, oldest first."""
    agents = current_agents() if agents is None else agents
    rules = rules or AssignmentRules.from_settings()
    assigned: list[Lead] = []
    for lead in sorted(store.list_leads(unassigned=True), key=lambda x: (x.created_at, x.id)):
        if lead.status not in ("new", "contacted"):
            continue
        updated = assign_lead(store, lead, agents, rules)
        if updated.assignee_id is None:
            break  # nobody can take more now
        assigned.append(updated)
    return assigned
