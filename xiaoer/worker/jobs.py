"""What a background job is: the one type every ``jobs`` module declares.

A domain declares its jobs in a module that exposes ``JOBS`` (a list of :class:`Job`); the
worker (``xiaoer worker``) imports the modules listed in :mod:`xiaoer.worker.registry` and
runs each job every ``every`` seconds. A job's ``run`` is either a coroutine function
(awaited on the worker's event loop) or a plain function (run in a thread so that blocking
database or HTTP calls never stall the other jobs).

With ``exclusive=True`` (the default) at most one worker process at a time runs the job:
the worker holds a lease row in the project database while it runs it (see
:mod:`xiaoer.worker.leases`). A job must be idempotent and safe to interrupt: a worker may
die in the middle of a run, and the next holder of the lease runs it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """One periodic background job."""

    name: str
    every: float
    run: Callable[[], Awaitable[None] | None]
    exclusive: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a job needs a name")
        if not self.every > 0:
            raise ValueError(f"job {self.name!r}: every must be > 0 seconds, not {self.every!r}")
