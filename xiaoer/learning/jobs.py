"""The learning jobs of the worker.

* ``learning.follow``: the learning follower of Rasa's event broker, with its own cursor
  (``learning``; resetting it replays the stream into the inbox and the variants'
  outcomes, both idempotent), separate from lead capture's: the inbox
  (:mod:`xiaoer.learning.inbox`) and the reply variants' exposures and outcomes
  (:mod:`xiaoer.learning.variants`).
* ``learning.outcomes``: exposures nobody answered within ``learning.left_after_minutes``
  close as ``left`` (or ``paid`` when the buyer paid an order after them, asked of the
  shop backend).
"""

from __future__ import annotations

import logging
import threading

from xiaoer.worker.events import EventFollower, Handler, broker_db, endpoints_file
from xiaoer.worker.jobs import Job

log = logging.getLogger(__name__)

CURSOR = "learning"
ROWS_PER_RUN = 1000

_follower: EventFollower | None = None
_lock = threading.Lock()


def handlers() -> list[Handler]:
    from xiaoer.learning.inbox import handle_event
    from xiaoer.learning.variants import OutcomeTracker

    return [handle_event, OutcomeTracker()]


def follower() -> EventFollower | None:
    global _follower
    with _lock:
        if _follower is None:
            db = broker_db(endpoints_file())
            if db is None:
                return None
            _follower = EventFollower(db, handlers=handlers(), name=CURSOR)
            log.info("learning follows %s from id %s", _follower.where(), _follower.last_id)
        return _follower


def follow() -> None:
    current = follower()
    if current is not None:
        current.poll(max_rows=ROWS_PER_RUN)


def close_outcomes() -> None:
    from xiaoer.learning.variants import backend_paid_check, close_stale

    closed = close_stale(paid=backend_paid_check)
    if closed:
        log.info("reply variants: %s exposures closed without an answer", closed)


JOBS = [
    Job(name="learning.follow", every=1.0, run=follow),
    Job(name="learning.outcomes", every=60.0, run=close_outcomes),
]
