"""The worker's loop: every job every ``every`` seconds, side by side, on one event loop.

- A coroutine job is awaited on the loop; a plain function runs in a thread, so blocking
  database or HTTP calls never hold the other jobs up.
- A job that raises is logged and retried later, with a growing pause (doubling from
  ``every`` up to ``max(every, max_backoff)``); the other jobs go on as if nothing happened.
- An exclusive job runs only while this worker holds its lease (:mod:`xiaoer.worker.leases`):
  the lease is taken (or renewed) before each run and renewed by a keeper every third of its
  lifetime, so a long run keeps it; a worker that does not hold it asks again later.
- :meth:`Runner.stop` (SIGTERM / SIGINT in :func:`serve`) lets running jobs finish for up
  to ``grace`` seconds, cancels what is left and releases the leases, so another worker
  takes over at once instead of after the lease expires.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

from xiaoer.core.outage import log_unavailable, unavailable_service
from xiaoer.worker.jobs import Job
from xiaoer.worker.leases import LeaseStore

log = logging.getLogger(__name__)


class Runner:
    def __init__(
        self,
        jobs: Iterable[Job],
        *,
        leases: LeaseStore | None = None,
        lease_seconds: float = 30.0,
        max_backoff: float = 60.0,
        grace: float = 10.0,
    ) -> None:
        self.jobs = list(jobs)
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._leases = leases
        self.lease_seconds = lease_seconds
        self.max_backoff = max_backoff
        self.grace = grace
        self.runs: dict[str, int] = dict.fromkeys(names, 0)  # finished runs, per job
        self.failures: dict[str, int] = dict.fromkeys(names, 0)  # failed runs, per job
        self.held: set[str] = set()  # leases this worker holds now
        self._renewed: dict[str, float] = {}  # monotonic time of each lease's last renewal
        self._stop: asyncio.Event | None = None

    @property
    def leases(self) -> LeaseStore:
        if self._leases is None:  # the project database, opened only when a job needs it
            self._leases = LeaseStore()
        return self._leases

    # --- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler on the loop)."""
        if self._stop is not None:
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the worker is asked to stop."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            pass

    async def run(self) -> None:
        """Run every job until :meth:`stop`."""
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]
        keeper = None
        if any(job.exclusive for job in self.jobs):
            keeper = asyncio.create_task(self._keep_leases(), name="leases")
        log.info(
            "worker started: %s",
            ", ".join(f"{j.name} every {j.every:g}s" for j in self.jobs) or "no jobs",
        )
        await self._stop.wait()
        log.info("worker stopping: waiting up to %gs for running jobs", self.grace)
        done, pending = await asyncio.wait(tasks, timeout=self.grace) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        for name in sorted(self.held):
            try:
                await asyncio.to_thread(self.leases.release, name)
            except Exception:  # noqa: BLE001 - it expires by itself
                log.warning("lease %s not released (it expires in %gs)", name, self.lease_seconds)
        self.held.clear()
        log.info("worker stopped")

    # --- one job -------------------------------------------------------------------------
    async def _hold(self, job: Job) -> bool:
        """Whether this worker may run ``job`` now (takes or renews its lease)."""
        if not job.exclusive:
            return True
        fresh = time.monotonic() - self._renewed.get(job.name, -1e9) < self.lease_seconds / 3
        if job.name in self.held and fresh:
            return True  # renewed moments ago (frequent jobs do not write on every run)
        try:
            held = await asyncio.to_thread(self.leases.acquire, job.name, self.lease_seconds)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment
            service = unavailable_service(exc)
            if service is not None:
                log_unavailable(log, service, f"lease {job.name}", exc)
            else:
                log.exception("lease %s: the database did not answer", job.name)
            held = False
        if held and job.name not in self.held:
            log.info("lease %s taken: this worker runs the job", job.name)
        elif not held and job.name in self.held:
            log.warning("lease %s lost to another worker", job.name)
        self._mark(job.name, held)
        return held

    def _mark(self, name: str, held: bool) -> None:
        if held:
            self.held.add(name)
            self._renewed[name] = time.monotonic()
        else:
            self.held.discard(name)
            self._renewed.pop(name, None)

    async def _run_once(self, job: Job) -> None:
        result: Any
        if inspect.iscoroutinefunction(job.run):
            result = job.run()
        else:
            result = await asyncio.to_thread(job.run)
        if inspect.isawaitable(result):
            await result

    async def _loop(self, job: Job) -> None:
        failed_in_a_row = 0
        while not self.stopping:
            if not await self._hold(job):
                # another worker runs it: ask again before its lease could have expired
                await self._sleep(min(job.every, self.lease_seconds / 2))
                continue
            started = time.monotonic()
            try:
                await self._run_once(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one job's failure never stops the others
                failed_in_a_row += 1
                self.failures[job.name] += 1
                delay = min(job.every * 2**failed_in_a_row, max(job.every, self.max_backoff))
                service = unavailable_service(exc)
                if service is not None:  # a store is down: one line, no traceback
                    log_unavailable(log, service, f"job {job.name}", exc)
                else:
                    log.exception(
                        "job %s failed (%d in a row); next try in %gs",
                        job.name, failed_in_a_row, delay,
                    )  # fmt: skip
                await self._sleep(delay)
                continue
            if failed_in_a_row:
                log.info("job %s runs again after %d failure(s)", job.name, failed_in_a_row)
            failed_in_a_row = 0
            self.runs[job.name] += 1
            await self._sleep(job.every - (time.monotonic() - started))

    async def _keep_leases(self) -> None:
        """Renew the held leases every third of their lifetime (also during long runs)."""
        while not self.stopping:
            await self._sleep(self.lease_seconds / 3)
            for name in sorted(self.held):
                if self.stopping:
                    return
                try:
                    kept = await asyncio.to_thread(self.leases.acquire, name, self.lease_seconds)
                except Exception:  # noqa: BLE001
                    log.exception("lease %s: renewal failed", name)
                    continue
                if not kept:
                    log.warning("lease %s lost to another worker", name)
                self._mark(name, kept)


async def serve(runner: Runner) -> None:
    """Run ``runner`` until SIGTERM or SIGINT (a supervisor's stop, Ctrl-C)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    try:
        await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
