"""Which modules declare background jobs: the one list the worker reads.

To add a job, declare it in its domain's ``jobs`` module (``JOBS = [Job(...)]``, see
:mod:`xiaoer.worker.jobs`) and name that module here once.
"""

from __future__ import annotations

import importlib
import logging

from xiaoer.worker.jobs import Job

log = logging.getLogger(__name__)

JOB_MODULES: list[str] = [
    "xiaoer.worker.events",  # event follower: lead capture from every customer message
    "xiaoer.leads.jobs",  # CRM deliveries, lead assignment, re-scoring
    "xiaoer.notifications.jobs",  # proactive notifications (shipped, refunded) to buyers
    "xiaoer.handoff.jobs",  # customers left waiting for an agent are told they still wait
    "xiaoer.analytics.jobs",  # analytics store from the event stream (its own cursor)
    "xiaoer.douyin.jobs",  # Douyin replies the platform did not take: resend; pause expiry
    "xiaoer.learning.jobs",  # the inbox of misunderstood messages; reply variants' outcomes
    "xiaoer.training.jobs",  # retraining (knowledge base) and hot swap of the model
]


class RegistryError(RuntimeError):
    """The job modules declare something the worker cannot run."""


def load_jobs(modules: list[str] | None = None) -> list[Job]:
    """The jobs of every module in ``modules`` (default :data:`JOB_MODULES`), in order.

    A module that does not exist is skipped with a warning (its jobs do not run); a module
    that exists but fails to import, lacks ``JOBS`` or declares a job name twice is an
    error: a worker must not run silently without some of its jobs."""
    jobs: list[Job] = []
    for name in JOB_MODULES if modules is None else modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # the module exists; something it imports is missing
            log.warning("job module %s not found: its jobs do not run in this worker", name)
            continue
        declared = getattr(module, "JOBS", None)
        if not isinstance(declared, list) or not all(isinstance(j, Job) for j in declared):
            raise RegistryError(f"{name}.JOBS must be a list of xiaoer.worker.jobs.Job")
        jobs.extend(declared)
    names = [job.name for job in jobs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RegistryError(f"job names declared twice: {', '.join(twice)}")
    return jobs
