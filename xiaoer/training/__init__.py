"""Retraining and hot swap (docs/knowledge.md): the contract every caller uses.

Anything that changes training data (knowledge-base entries, accepted inbox examples)
calls :func:`request_retrain`; the worker's ``training.retrain`` job
(:mod:`xiaoer.training.jobs`) trains the project's data and the knowledge base in the
background, checks the new model, loads it into every running Rasa server one after
another (Rasa's ``PUT /model``) and rolls back on failure. States: queued -> training ->
checking -> swapping -> live | failed | rolled_back.
"""

from __future__ import annotations

import time
from typing import Any

from xiaoer.training.store import FINAL, get_training_store


def request_retrain(requested_by: str, reason: str) -> int:
    """Queue a run (or join the one already queued); its id."""
    return get_training_store().request(requested_by, reason)


def get_run(run_id: int) -> dict[str, Any] | None:
    """id, state, state_label, progress (Chinese), percent, model, error, times."""
    return get_training_store().get(run_id)


def latest_runs(limit: int = 20) -> list[dict[str, Any]]:
    return get_training_store().latest(limit)


def wait_live(run_id: int, timeout: float, poll: float = 1.0) -> dict[str, Any]:
    """Wait until the run is over (live: the running assistant answers with its model;
    failed; rolled_back). TimeoutError when it is not over in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run = get_run(run_id)
        if run is None:
            raise KeyError(f"no training run {run_id}")
        if run["state"] in FINAL:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"training run {run_id} still {run['state']} after {timeout:.0f} s")
        time.sleep(poll)


def retrain_needed() -> bool:
    """Whether the knowledge base changed since the model now live was trained."""
    from xiaoer.knowledge.store import get_knowledge_store

    live = get_training_store().last_live()
    return live is None or live.get("kb_fingerprint") != get_knowledge_store().fingerprint()


__all__ = ["get_run", "latest_runs", "request_retrain", "retrain_needed", "wait_live"]
