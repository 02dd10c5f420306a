"""The Doudian state in the project database (SQLite and PostgreSQL): the push ledger and
the order change log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from xiaoer.doudian.protocol import PushMessage
from xiaoer.doudian.store import (
    CLAIM_LEASE_SECONDS,
    MAX_ATTEMPTS,
    OrderChangeLog,
    PushLedger,
)

ORDER = "6938271045123400002"


def test_the_ledger_records_each_message_once_and_keeps_its_data(project_db):
    ledger = PushLedger(project_db)
    shipped = PushMessage(102, "m-1", {"p_id": ORDER, "note": "顺丰"})
    assert ledger.record([shipped, shipped, PushMessage(101, "m-2", {})], now=100.0) == [
        "m-1",
        "m-2",
    ]
    assert ledger.record([shipped]) == []
    assert ledger.count() == 2
    state = ledger.state("m-1")
    assert state is not None
    assert (state["tag"], state["order_id"], state["received_at"]) == (102, ORDER, 100.0)
    assert (state["attempts"], state["processed_at"], state["error"]) == (0, None, None)
    assert ledger.state("unknown") is None
    # the default constructor uses the same (project) database
    assert PushLedger().count() == 2


def test_a_claim_is_taken_once_released_on_failure_and_given_up_after_max_attempts(project_db):
    ledger = PushLedger(project_db)
    ledger.record([PushMessage(102, "m-1", {"p_id": ORDER})], now=100.0)
    assert ledger.claim("m-1", now=200.0) is True
    assert ledger.claim("m-1", now=200.0 + CLAIM_LEASE_SECONDS - 1) is False  # being processed
    assert ledger.claim("m-1", now=200.0 + CLAIM_LEASE_SECONDS + 1) is True  # cut short: free
    ledger.failed("m-1", "BackendUnavailable")
    state = ledger.state("m-1")
    assert (state["attempts"], state["claimed_at"], state["error"]) == (
        1,
        None,
        "BackendUnavailable",
    )
    assert [m.msg_id for m in ledger.unprocessed()] == ["m-1"]
    assert ledger.unprocessed()[0].data == {"p_id": ORDER}
    for _ in range(MAX_ATTEMPTS - 1):
        assert ledger.claim("m-1") is True
        ledger.failed("m-1", "BackendUnavailable")
    assert ledger.claim("m-1") is False  # given up
    assert ledger.unprocessed() == []


def test_done_stays_done(project_db):
    ledger = PushLedger(project_db)
    ledger.record([PushMessage(206, "m-1", {"p_id": ORDER})])
    assert ledger.claim("m-1")
    ledger.done("m-1")
    assert ledger.state("m-1")["processed_at"] is not None
    assert ledger.claim("m-1", now=10**10) is False
    assert ledger.unprocessed() == []


def test_concurrent_claims_of_one_message_give_it_to_one_claimer(project_db):
    ledger = PushLedger(project_db)
    ledger.record([PushMessage(102, "dup", {"p_id": ORDER})])
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: PushLedger(project_db).claim("dup"), range(8)))
    assert results.count(True) == 1


def test_the_change_log_tells_which_orders_changed_since_when(project_db):
    log = OrderChangeLog(project_db)
    assert log.changed_since(0) is False
    log.touch(ORDER, when=100.0)
    assert log.changed_since(100.0, ORDER) and log.changed_since(50.0)
    assert not log.changed_since(101.0, ORDER)
    assert not log.changed_since(0, "another order")
    log.touch(ORDER, when=200.0)  # a later change of the same order replaces the time
    assert log.changed_since(150.0, ORDER)
    assert OrderChangeLog().changed_since(150.0, ORDER)  # another process sees it
