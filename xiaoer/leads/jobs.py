"""Background jobs of lead management (run by the worker, ``xiaoer worker``).

Plain functions: the worker runs them in a thread (SQLite/PostgreSQL and the CRM webhook
block). Lead capture itself follows Rasa's event stream (``events.follow`` in
:mod:`xiaoer.worker.events`).
"""

from __future__ import annotations

from xiaoer.leads.assign import assign_pending
from xiaoer.leads.crm import get_crm_outbox
from xiaoer.leads.store import get_lead_store
from xiaoer.worker.jobs import Job


def deliver_crm() -> None:
    """Leads due for the CRM webhook (``leads.crm``), with the outbox's own retry delays."""
    get_crm_outbox().deliver_due()


def assign_leads() -> None:
    """Open unassigned leads to the agents who can take them now."""
    assign_pending(get_lead_store())


def rescore_leads() -> None:
    """Recency decays: open leads are re-scored."""
    get_lead_store().refresh_scores()


JOBS = [
    Job(name="leads.crm", every=1.0, run=deliver_crm),
    Job(name="leads.assign", every=15.0, run=assign_leads),
    Job(name="leads.rescore", every=300.0, run=rescore_leads),
]
