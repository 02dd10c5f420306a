"""Who may see what in the console: the one place for visibility and contact masking.

* Conversations (handoffs): admins see all; an agent sees those of their skill groups,
  those without a group, and those they hold.
* Leads (with their transcripts and notes): admins see all; an agent sees the leads
  assigned to them and the leads of their skill groups (the category's group in
  ``leads.assignment.groups``, e.g. wholesale -> 售前).
* Contacts: phones and WeChat ids are shown in full only to roles listed in
  ``leads.full_contacts_roles`` (xiaoer.yml, default admin); every page, JSON answer and
  export that shows customer text or contacts passes it through ``shown()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xiaoer.agents import Agent
from xiaoer.leads.export import can_see_contacts, mask_text

if TYPE_CHECKING:
    from xiaoer.handoff.store import HandoffRequest
    from xiaoer.leads.store import Lead


def full_contacts(agent: Agent | None) -> bool:
    """Whether this agent sees full phone numbers and WeChat ids."""
    return agent is not None and agent.active and can_see_contacts(agent.role)


def shown(agent: Agent | None, text: Any) -> str:
    """Customer text as this agent may see it: phones and WeChat ids masked unless the
    role may see them."""
    value = "" if text is None else str(text)
    return value if full_contacts(agent) else mask_text(value)


def shown_contact(agent: Agent | None, contact: dict[str, Any]) -> str:
    """A captured contact (``{"value", "masked"}``) as this agent may see it."""
    return str(contact["value"] if full_contacts(agent) else contact["masked"])


def can_see_handoff(agent: Agent, request: HandoffRequest) -> bool:
    """Admins (supervisors) see every queue; agents their groups', ungrouped ones and
    their own."""
    if agent.is_admin or request.agent_id == agent.id:
        return True
    return not request.group_name or request.group_name in agent.groups


def lead_group(lead: Lead) -> str | None:
    from xiaoer.leads.assign import AssignmentRules

    return AssignmentRules.from_settings().groups.get(lead.category)


def can_see_lead(agent: Agent, lead: Lead) -> bool:
    if agent.is_admin or (lead.assignee_id is not None and lead.assignee_id == agent.id):
        return True
    group = lead_group(lead)
    return bool(group) and group in agent.groups


def visible_leads(agent: Agent, leads: Iterable[Lead]) -> list[Lead]:
    if agent.is_admin:
        return list(leads)
    from xiaoer.leads.assign import AssignmentRules

    groups = AssignmentRules.from_settings().groups
    return [
        lead
        for lead in leads
        if lead.assignee_id == agent.id or groups.get(lead.category) in agent.groups
    ]
