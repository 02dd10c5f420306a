"""The worker's retraining job (``training.retrain``): takes queued runs one at a time."""

from __future__ import annotations

from xiaoer.worker.jobs import Job


def retrain() -> None:
    """Carry out every queued retraining run (a plain function: the worker runs it in a
    thread; training itself is a child process)."""
    from xiaoer.training.runner import run_next

    while run_next() is not None:
        pass


JOBS = [Job(name="training.retrain", every=3.0, run=retrain)]
