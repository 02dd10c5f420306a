"""Leads (线索): customers who left a contact, merged across conversations, scored,
assigned to agents, exported and pushed to the merchant's CRM.

The interface the console uses: ``get_lead_store().contacts_for(sender_id)`` ->
``[{"kind": "phone"|"wechat", "value": ..., "masked": ...}]`` and
``get_lead_store().lead_for(sender_id)`` -> ``Lead | None`` (``category``, ``score``,
``status``, ``assignee_id``...).
"""

from xiaoer.leads.rules import (
    CATEGORY_LABELS,
    SCORE_LABELS,
    STATUS_LABELS,
    LeadRules,
)
from xiaoer.leads.store import (
    CapturedContact,
    CaptureResult,
    Lead,
    LeadStore,
    Note,
    get_lead_store,
    mask_contact,
)

__all__ = [
    "CATEGORY_LABELS",
    "SCORE_LABELS",
    "STATUS_LABELS",
    "CaptureResult",
    "CapturedContact",
    "Lead",
    "LeadRules",
    "LeadStore",
    "Note",
    "get_lead_store",
    "mask_contact",
]
