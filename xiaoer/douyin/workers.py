"""Per-customer ordering: one task per customer works off that customer's recorded events.

The webhook is answered as soon as an event is recorded; :meth:`CustomerWorkers.schedule`
then makes sure one task (never two) processes the customer's unprocessed events, one at
a time, in the order the customer sent them (``create_time``; a short
``reorder_window_seconds`` lets a late delivery overtake). Each event is claimed in the
store first, so two Rasa servers never process one event twice; a failed event is kept
(``attempts``) and the customer's later events wait for it.

Events left unprocessed — a server stopped or died while they waited — are taken up at
start and by a periodic recovery sweep in the Rasa server (it needs the agent, so it is
not a job of the worker process). Customers are processed by at most
``max_concurrent_conversations`` at once per server, so a burst does not slow everyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from xiaoer.douyin.settings import ChannelSettings
    from xiaoer.douyin.store import DouyinStore, StoredEvent


class EventProcessor(Protocol):
    """What the workers need of the channel's service: its store, settings and the
    processing of one stored event."""

    store: DouyinStore
    settings: ChannelSettings

    async def process(self, stored: StoredEvent) -> None: ...


logger = logging.getLogger(__name__)

RECOVER_AFTER_SECONDS = 60.0  # an event this old and unprocessed is taken up by the sweep


class CustomerWorkers:
    def __init__(self, service: EventProcessor) -> None:
        self.service = service
        self._workers: dict[str, asyncio.Task[Any]] = {}
        self._dirty: set[str] = set()
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self.processed = 0

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Take up what an earlier run left, then sweep periodically."""
        self._background(self.recover(older_than=0))
        self._loops = [
            asyncio.ensure_future(
                _every(
                    self.service.settings.sweep_interval_seconds,
                    lambda: self.recover(older_than=RECOVER_AFTER_SECONDS),
                    "recovery sweep",
                )
            )
        ]

    async def aclose(self) -> None:
        for task in self._loops:
            task.cancel()
        self._loops = []

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._workers or self._tasks) and time.monotonic() < deadline:
            await asyncio.gather(
                *list(self._workers.values()), *list(self._tasks), return_exceptions=True
            )

    async def recover(self, older_than: float) -> None:
        """Schedule every customer with events unprocessed for ``older_than`` seconds."""
        store = self.service.store
        for sender_id in await asyncio.to_thread(store.senders_with_pending, older_than):
            self.schedule(sender_id)

    # --- the per-customer workers ---------------------------------------------------------
    def schedule(self, sender_id: str) -> None:
        self._dirty.add(sender_id)
        if sender_id not in self._workers:
            self._workers[sender_id] = asyncio.ensure_future(self._work(sender_id))

    async def _work(self, sender_id: str) -> None:
        store = self.service.store
        try:
            await asyncio.sleep(self.service.settings.reorder_window_seconds)
            while sender_id in self._dirty:
                self._dirty.discard(sender_id)
                for event in await asyncio.to_thread(store.pending_for, sender_id):
                    if not await asyncio.to_thread(store.claim, event.id):
                        continue
                    try:
                        async with self._slots():
                            await self.service.process(event)
                    except Exception as exc:  # noqa: BLE001 - retried by the sweep
                        logger.exception(
                            "douyin %s of %s failed (kept for a retry)", event.event, sender_id
                        )
                        await asyncio.to_thread(store.failed, event.id, type(exc).__name__)
                        break  # later messages wait: the order is kept
                    await asyncio.to_thread(store.done, event.id)
                    self.processed += 1
        finally:
            # no await between the last check of _dirty and this removal
            self._workers.pop(sender_id, None)
            if sender_id in self._dirty:
                self.schedule(sender_id)

    def _slots(self) -> asyncio.Semaphore:
        """Bounds the conversations processed at once: the rest wait their turn (their
        webhooks are answered anyway), so that a burst does not slow everyone down."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.service.settings.max_concurrent)
        return self._semaphore


async def _every(interval: float, job: Callable[[], Awaitable[Any]], what: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the loop must survive a bad round
            logger.exception("douyin %s failed", what)
