"""Background jobs of the human handoff (run by the worker, ``xiaoer worker``)."""

from __future__ import annotations

import logging

from xiaoer.core.config import get_settings
from xiaoer.handoff.desk import HandoffDesk
from xiaoer.worker.jobs import Job

log = logging.getLogger(__name__)


async def reannounce_waiting() -> None:
    """Customers left waiting beyond ``handoff.reannounce_after_minutes`` hear, honestly,
    that they still wait (once per timeout)."""
    told = await HandoffDesk().reannounce_due()
    if told:
        log.info("re-announced %s waiting conversation(s)", told)


def _check_seconds() -> float:
    """How often waiting conversations are checked (``console.reannounce_check_seconds``)."""
    return float(get_settings().section("console").get("reannounce_check_seconds") or 30)


JOBS = [
    Job(name="handoff.reannounce", every=_check_seconds(), run=reannounce_waiting),
]
