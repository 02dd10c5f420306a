"""The worker: leases (one runner at a time per exclusive job, taken over when the holder
dies), failing jobs isolated, clean stop, the registry of job modules."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xiaoer.worker.jobs import Job
from xiaoer.worker.leases import LeaseStore
from xiaoer.worker.registry import RegistryError, load_jobs
from xiaoer.worker.runner import Runner

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_for(
    seconds: float, *runners: Runner, actions: list[tuple[float, Callable[[], Any]]] | None = None
) -> None:
    """Run ``runners`` side by side for ``seconds``; ``actions``: (at second, callable)."""

    async def main() -> None:
        tasks = [asyncio.create_task(r.run()) for r in runners]
        started = time.monotonic()
        for at, action in sorted(actions or [], key=lambda a: a[0]):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
            action()
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
        for r in runners:
            r.stop()
        await asyncio.gather(*tasks)

    asyncio.run(main())


# --- leases ----------------------------------------------------------------------------------
def test_a_free_lease_goes_to_exactly_one_of_many_asking_at_once(project_db):
    stores = [LeaseStore(project_db, holder=f"w{i}") for i in range(8)]
    barrier = threading.Barrier(len(stores))
    results: dict[str, bool] = {}

    def ask(store: LeaseStore) -> None:
        barrier.wait()
        results[store.holder] = store.acquire("leads.crm", 30)

    threads = [threading.Thread(target=ask, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [holder for holder, won in results.items() if won]
    assert len(winners) == 1, results
    assert stores[0].holder_of("leads.crm") == winners[0]


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(project_db):
    clock = Clock()
    dead = LeaseStore(project_db, holder="dead", clock=clock)
    alive = LeaseStore(project_db, holder="alive", clock=clock)
    assert dead.acquire("douyin.outbox", 30)
    assert dead.acquire("douyin.outbox", 30)  # renewing one's own lease
    clock.now += 29
    assert not alive.acquire("douyin.outbox", 30)  # still held
    clock.now += 2  # the holder stopped renewing 31 s ago
    assert alive.holder_of("douyin.outbox") is None
    assert alive.acquire("douyin.outbox", 30)
    assert not dead.acquire("douyin.outbox", 30)  # it came back: the lease is gone
    assert dead.holder_of("douyin.outbox") == "alive"
    assert not dead.release("douyin.outbox")  # nor can it release someone else's
    assert alive.release("douyin.outbox") and dead.acquire("douyin.outbox", 30)


def test_two_workers_never_run_the_same_job_at_the_same_time(project_db):
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    ran: list[str] = []

    def job_of(worker: str) -> Callable[[], None]:
        def job() -> None:  # a plain function: the runner puts it in a thread
            running.append(worker)
            if len(running) > 1:
                overlaps.append(tuple(running))
            time.sleep(0.02)
            ran.append(worker)
            running.remove(worker)

        return job

    first, second = (
        Runner(
            [Job(name="leads.crm", every=0.01, run=job_of(name))],
            leases=LeaseStore(project_db, holder=name),
            lease_seconds=0.6,
        )
        for name in ("first", "second")
    )
    # both ask at once; after 1 s the holder stops (releasing its lease), the other goes on
    holder: list[Runner] = []

    def stop_the_holder() -> None:
        holder.append(first if first.held else second)
        holder[0].stop()

    run_for(2.0, first, second, actions=[(1.0, stop_the_holder)])
    assert overlaps == []
    assert first.runs["leads.crm"] > 0 and second.runs["leads.crm"] > 0
    # while the first holder lived, only it ran the job
    before = ran[: holder[0].runs["leads.crm"]]
    assert set(before) == {"first" if holder[0] is first else "second"}
    assert LeaseStore(project_db).holder_of("leads.crm") is None  # released at the stop


def test_a_worker_takes_over_the_job_of_a_worker_that_died(project_db):
    # a worker died holding the lease (it never released it): another waits for the expiry
    assert LeaseStore(project_db, holder="dead").acquire("notifications.deliver", 1.0)
    ran: list[float] = []
    started = time.monotonic()

    async def deliver() -> None:
        ran.append(time.monotonic() - started)

    alive = Runner(
        [Job(name="notifications.deliver", every=0.05, run=deliver)],
        leases=LeaseStore(project_db, holder="alive"),
        lease_seconds=1.0,
    )
    run_for(2.5, alive)
    assert ran, "the job never ran after the lease expired"
    assert ran[0] >= 0.9  # not while the dead worker's lease was valid
    assert alive.runs["notifications.deliver"] >= 5


def test_a_long_run_keeps_its_lease(project_db):
    """The lease is renewed during a run longer than its lifetime: nobody else starts it."""
    ran: list[str] = []

    def slow_of(worker: str) -> Callable[[], None]:
        def slow() -> None:
            ran.append(worker)
            time.sleep(1.5)

        return slow

    runners = [
        Runner(
            [Job(name="leads.rescore", every=10, run=slow_of(name))],
            leases=LeaseStore(project_db, holder=name),
            lease_seconds=0.6,
        )
        for name in ("a", "b")
    ]
    run_for(1.2, *runners)
    assert len(ran) == 1, ran


# --- failures and stop -------------------------------------------------------------------------
def test_a_failing_job_does_not_stop_the_others(tmp_path, caplog):
    done: list[str] = []

    async def broken_async() -> None:
        raise RuntimeError("Rasa is down")

    def broken_sync() -> None:
        raise ValueError("bad row")

    def fine() -> None:
        done.append("fine")

    runner = Runner(
        [
            Job(name="broken.async", every=0.05, run=broken_async),
            Job(name="broken.sync", every=0.05, run=broken_sync),
            Job(name="fine", every=0.05, run=fine),
        ],
        leases=LeaseStore(tmp_path / "xiaoer.db"),
        max_backoff=0.4,
    )
    with caplog.at_level(logging.ERROR, logger="xiaoer.worker.runner"):
        run_for(1.5, runner)
    assert runner.runs["fine"] >= 15 and len(done) == runner.runs["fine"]
    # the broken ones were retried, less and less often (0.1, 0.2, 0.4, 0.4 ... s)
    assert 3 <= runner.failures["broken.async"] <= 8
    assert 3 <= runner.failures["broken.sync"] <= 8
    assert runner.runs["broken.async"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("job broken.sync failed" in m for m in messages)
    assert any(r.exc_info and "bad row" in str(r.exc_info[1]) for r in caplog.records)


def test_a_job_that_recovers_runs_at_its_own_pace_again(tmp_path):
    calls: list[float] = []

    def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise ConnectionError("database away")

    runner = Runner(
        [Job(name="flaky", every=0.05, run=flaky, exclusive=False)],
        leases=LeaseStore(tmp_path / "xiaoer.db"),
    )
    run_for(1.0, runner)
    assert runner.failures["flaky"] == 2 and runner.runs["flaky"] >= 8


def test_the_worker_process_stops_cleanly_on_sigterm(tmp_path):
    env = {
        **os.environ,
        "XIAOER_DATA_DIR": str(tmp_path / "var"),
        "XIAOER_DATABASE_URL": f"sqlite:///{tmp_path / 'xiaoer.db'}",
        "XIAOER_API_TOKEN": "test-token",
        "XIAOER_RASA_URL": "http://127.0.0.1:9",  # nothing there: deliveries just wait
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.cli", "worker", "--only", "leads.rescore",
         "notifications.deliver"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if LeaseStore(env["XIAOER_DATABASE_URL"]).holder_of("leads.rescore"):
                break
        assert LeaseStore(env["XIAOER_DATABASE_URL"]).holder_of("leads.rescore")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log
    assert "worker stopped" in log
    assert LeaseStore(env["XIAOER_DATABASE_URL"]).holder_of("leads.rescore") is None


# --- the registry ------------------------------------------------------------------------------
def test_every_job_module_of_the_registry_declares_its_jobs(caplog):
    with caplog.at_level(logging.WARNING, logger="xiaoer.worker.registry"):
        jobs = load_jobs()
    names = {job.name for job in jobs}
    assert {
        "events.follow", "leads.crm", "leads.assign", "leads.rescore",
        "notifications.deliver", "handoff.reannounce", "learning.follow", "learning.outcomes",
        "training.retrain",
    } <= names  # fmt: skip
    missing = [r.getMessage() for r in caplog.records]
    assert all("xiaoer.douyin.jobs" in m for m in missing), missing


def test_a_missing_job_module_is_skipped_with_a_clear_line(caplog):
    with caplog.at_level(logging.WARNING, logger="xiaoer.worker.registry"):
        jobs = load_jobs(["xiaoer.leads.jobs", "xiaoer.nowhere.jobs"])
    assert [j.name for j in jobs] == ["leads.crm", "leads.assign", "leads.rescore"]
    assert any("job module xiaoer.nowhere.jobs not found" in r.getMessage() for r in caplog.records)


def test_a_broken_job_module_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "brokenjobs.py").write_text("import not_a_module_anywhere\nJOBS = []\n")
    (tmp_path / "twicejobs.py").write_text(
        "from xiaoer.worker.jobs import Job\n" "JOBS = [Job('x', 1, print), Job('x', 2, print)]\n"
    )
    (tmp_path / "nojobs.py").write_text("JOBS = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        load_jobs(["brokenjobs"])  # exists, but something it needs does not
    with pytest.raises(RegistryError, match="declared twice: x"):
        load_jobs(["twicejobs"])
    with pytest.raises(RegistryError, match="nojobs.JOBS"):
        load_jobs(["nojobs"])


def test_a_job_needs_a_name_and_a_positive_period():
    with pytest.raises(ValueError):
        Job(name="", every=1, run=print)
    with pytest.raises(ValueError):
        Job(name="x", every=0, run=print)
