"""Background jobs of proactive notifications (run by the worker, ``xiaoer worker``)."""

from __future__ import annotations

from xiaoer.notifications.sender import RasaNotifier
from xiaoer.worker.jobs import Job


async def deliver_notifications() -> None:
    """Queued notifications (Doudian push: shipped, after-sale approved, refunded) into the
    buyers' conversations through Rasa's HTTP API."""
    await RasaNotifier().deliver()


JOBS = [
    Job(name="notifications.deliver", every=5.0, run=deliver_notifications),
]
