"""Per-customer ordering: one task per customer works off that customer's recorded events.

The webhook is answered as soon as an event is recorded; :meth:`CustomerWorkers.schedule`
then makes sure one task (never two) processes the customer's unprocessed events, one at
a time, in the order the customer sent them (``create_time``). Most deliveries arrive in
order and are answered at once; when a customer's message arrives after a later one of
theirs (its ``create_time`` older than one this server already received), deliveries are
being reordered for that customer: from then on (for :data:`DISORDER_MEMORY_SECONDS`)
their messages wait ``reorder_window_seconds`` so that a late delivery can overtake. Each event is claimed in the
store first, so two Rasa servers never process one event twice; a failed event is kept
(``attempts``) and the customer's later events wait for it.

Every Rasa server holds a lease (``worker_leases``, ``douyin.server:<host>:<pid>:<id>``)
renewed every third of ``douyin.server_lease_seconds`` (15 s): its heartbeat. Events carry
the server that recorded and the one that claimed them, so when a server dies (SIGKILL,
a lost machine) its lease expires and another server's recovery sweep (every
``sweep_seconds``) takes its events over at once — without waiting for the 2-minute claim
lease. Events left unprocessed by a server that stopped are taken up at start too. The
sweep runs in the Rasa servers (processing needs the agent); the worker's
``douyin.inbound`` job reports messages that wait with no server to take them.
Customers are processed by at most ``max_concurrent_conversations`` at once per server,
so a burst does not slow everyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from xiaoer.core.outage import log_unavailable, unavailable_service

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
SERVER_LEASE_PREFIX = "douyin.server:"
WAIT_FOR_OTHER_SERVER_SECONDS = 0.5
# after a delivery arrived out of order, the customer's messages wait the reorder window
# this long (the platform's deliveries for them are being reordered)
DISORDER_MEMORY_SECONDS = 600.0
# after the database was down, turns wait this long once it is back: the servers import
# the webhooks they kept in their spools (each within a second) before any is answered
SETTLE_SECONDS = 2.0
MAX_REMEMBERED_CUSTOMERS = 50_000


class CustomerWorkers:
    def __init__(self, service: EventProcessor) -> None:
        self.service = service
        self._workers: dict[str, asyncio.Task[Any]] = {}
        self._dirty: set[str] = set()
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self.processed = 0
        self._backoff: dict[str, float] = {}
        self._newest: dict[str, int] = {}  # the newest create_time received per customer
        self._disordered: dict[str, float] = {}  # customer -> when one came out of order
        self._arrived: dict[str, float] = {}  # customer -> when their last message came
        # after the database was down: turns wait until then (monotonic), so that every
        # server's spool is imported first and a customer's messages keep their order
        self.hold_until = 0.0
        self.outage_seen = False
        from xiaoer.worker.leases import new_holder

        # this server's name in the events it records and claims, and its lease's
        self.holder = f"{SERVER_LEASE_PREFIX}{new_holder()}"

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """The heartbeat; take up what an earlier run left, then sweep periodically."""
        lease = self.service.settings.server_lease_seconds
        self._background(self._start_recovery())
        self._loops = [
            asyncio.ensure_future(_every(lease / 3, self.heartbeat, "heartbeat")),
            asyncio.ensure_future(
                _every(
                    self.service.settings.sweep_interval_seconds,
                    lambda: self.recover(older_than=RECOVER_AFTER_SECONDS),
                    "recovery sweep",
                )
            ),
        ]

    async def _start_recovery(self) -> None:
        try:
            await self.heartbeat()
        except Exception:  # noqa: BLE001 - logged; the heartbeat loop tries again
            logger.exception("douyin: the first heartbeat failed")
        await self.recover(older_than=0)

    async def heartbeat(self) -> None:
        """Renew this server's lease: its claims stay its own while it lives."""
        from xiaoer.worker.leases import LeaseStore

        store = LeaseStore(self.service.store.db, holder=self.holder)
        seconds = self.service.settings.server_lease_seconds
        try:
            await asyncio.to_thread(store.acquire, self.holder, seconds)
        except Exception:
            self.outage_seen = True
            raise
        self.database_back()

    def database_back(self) -> None:
        """A store call worked: after an outage, turns wait :data:`SETTLE_SECONDS`."""
        if self.outage_seen:
            self.outage_seen = False
            self.hold_until = time.monotonic() + SETTLE_SECONDS

    async def aclose(self) -> None:
        for task in self._loops:
            task.cancel()
        self._loops = []
        from xiaoer.worker.leases import LeaseStore

        try:  # a clean stop: the other servers take what is left at their next sweep
            store = LeaseStore(self.service.store.db, holder=self.holder)
            await asyncio.to_thread(store.release, self.holder)
        except Exception:  # noqa: BLE001 - the lease then expires by itself
            logger.warning("douyin: the server's lease was not released (it expires)")

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

    # --- arrival order ------------------------------------------------------------------
    def note_arrival(self, sender_id: str, create_time: int) -> None:
        """A customer's message was recorded: remember when one arrives out of order."""
        self._arrived[sender_id] = time.monotonic()
        newest = self._newest.get(sender_id)
        if newest is not None and create_time < newest:
            if sender_id not in self._disordered:
                logger.info(
                    "douyin message of %s arrived after a later one: its next messages wait "
                    "%.1f s for late deliveries",
                    sender_id, self.service.settings.reorder_window_seconds,
                )  # fmt: skip
            if len(self._disordered) >= MAX_REMEMBERED_CUSTOMERS:
                self._disordered.clear()
            self._disordered[sender_id] = time.monotonic()
            return
        if len(self._newest) >= MAX_REMEMBERED_CUSTOMERS and sender_id not in self._newest:
            self._newest.clear()  # a bound on memory: the oldest knowledge goes first
            self._arrived.clear()
        self._newest[sender_id] = create_time

    def reorder_window(self, sender_id: str) -> float:
        """How long the customer's next turn still waits: 0 unless one of their
        messages arrived out of order lately; then up to ``reorder_window_seconds`` after
        their last message arrived."""
        since = self._disordered.get(sender_id)
        if since is None:
            return 0.0
        now = time.monotonic()
        if now - since > DISORDER_MEMORY_SECONDS:
            del self._disordered[sender_id]
            return 0.0
        window = self.service.settings.reorder_window_seconds
        return max(0.0, self._arrived.get(sender_id, now) + window - now)

    # --- the per-customer workers ---------------------------------------------------------
    def schedule(self, sender_id: str) -> None:
        self._dirty.add(sender_id)
        if sender_id not in self._workers:
            self._workers[sender_id] = asyncio.ensure_future(self._work(sender_id))

    async def _work(self, sender_id: str) -> None:
        store = self.service.store
        try:
            while sender_id in self._dirty:
                window = max(self.reorder_window(sender_id), self.hold_until - time.monotonic())
                if window > 0:  # a late delivery (or a spooled one) may still come
                    await asyncio.sleep(window)
                self._dirty.discard(sender_id)
                for event in await asyncio.to_thread(store.pending_for, sender_id):
                    if not await asyncio.to_thread(store.claim, event.id, self.holder):
                        state = await asyncio.to_thread(store.event_state, event.event_key)
                        if not state or state["processed_at"] is not None:
                            continue  # answered meanwhile
                        # another server answers an earlier message of this customer: the
                        # later ones wait for it (or for its lease to expire), in order
                        self._dirty.add(sender_id)
                        await asyncio.sleep(WAIT_FOR_OTHER_SERVER_SECONDS)
                        break
                    if event.claimed_by and event.claimed_by != self.holder:
                        logger.warning(
                            "douyin %s of %s taken over from %s (that server stopped "
                            "before answering it)",
                            event.event, sender_id, event.claimed_by,
                        )  # fmt: skip
                    try:
                        async with self._slots():
                            await self.service.process(event)
                    except Exception as exc:  # noqa: BLE001 - retried by the sweep
                        service = unavailable_service(exc)
                        if service is not None:
                            # a store is down: no attempt counted, this server tries again
                            # (its claim stays its own) with a growing pause
                            log_unavailable(logger, service, "douyin message", exc)
                            self._retry_later(sender_id)
                            break
                        logger.exception(
                            "douyin %s of %s failed (kept for a retry)", event.event, sender_id
                        )
                        await asyncio.to_thread(store.failed, event.id, type(exc).__name__)
                        break  # later messages wait: the order is kept
                    self._backoff.pop(sender_id, None)
                    await asyncio.to_thread(store.done, event.id)
                    self.processed += 1
        except Exception as exc:  # a store call of the loop itself (the database is down)
            service = unavailable_service(exc)
            if service is None:
                raise
            log_unavailable(logger, service, "douyin queue", exc)
            self._retry_later(sender_id)
        finally:
            # no await between the last check of _dirty and this removal
            self._workers.pop(sender_id, None)
            if sender_id in self._dirty:
                self.schedule(sender_id)

    def _retry_later(self, sender_id: str) -> None:
        """Schedule the customer again after a pause that doubles up to 30 s."""
        delay = min(30.0, self._backoff.get(sender_id, 0.5) * 2)
        self._backoff[sender_id] = delay

        async def later() -> None:
            await asyncio.sleep(delay)
            self.schedule(sender_id)

        self._background(later())

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
        except Exception as exc:  # noqa: BLE001 - the loop must survive a bad round
            service = unavailable_service(exc)
            if service is not None:
                log_unavailable(logger, service, f"douyin {what}", exc)
            else:
                logger.exception("douyin %s failed", what)
