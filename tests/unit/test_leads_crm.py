"""CRM webhook: signed POSTs to a real local HTTP server, retries, the outbox."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from xiaoer.leads import CapturedContact, get_lead_store
from xiaoer.leads.crm import CrmOutbox, CrmSettings, verify

SECRET = "crm-test-secret"


class Crm:
    """A CRM endpoint that records what it receives and can be told to fail."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_with = 0  # HTTP status to answer with, 0 = accept
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if crm.fail_with:
                    self.send_response(crm.fail_with)
                    self.end_headers()
                    return
                ok = verify(SECRET, body, self.headers.get("X-Xiaoer-Signature", ""))
                crm.received.append(
                    {"ok": ok, "headers": dict(self.headers), "body": json.loads(body)}
                )
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/xiaoer"


@pytest.fixture()
def crm() -> Iterator[Crm]:
    c = Crm()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def outbox(data_dir, url: str) -> CrmOutbox:
    settings = CrmSettings(url=url, secret_env="XIAOER_TEST_CRM_SECRET", retry_base_seconds=0)
    return CrmOutbox(data_dir / "xiaoer.db", settings)


def lead(phone: str = "13912345678", sender: str = "crm-1"):
    result = get_lead_store().record_message(
        sender, text=f"电话 {phone}", intent="provide_contact", message_id=phone,
        contacts=[CapturedContact("phone", phone)],
    )  # fmt: skip
    assert result.lead is not None
    return result.lead


def test_new_lead_is_posted_signed(data_dir, crm, monkeypatch):
    monkeypatch.setenv("XIAOER_TEST_CRM_SECRET", SECRET)
    box = outbox(data_dir, crm.url)
    created = lead()
    box.enqueue(created, created=True)
    assert box.deliver_due() == 1
    [got] = crm.received
    assert got["ok"] is True  # HMAC-SHA256 of the raw body with the shared secret
    assert got["headers"]["X-Xiaoer-Event"] == "lead.created"
    assert got["body"]["event"] == "lead.created"
    assert got["body"]["lead"]["phones"] == ["13912345678"]
    assert got["body"]["lead"]["category"] == "purchase"
    assert box.rows(pending_only=True) == []


def test_failed_delivery_stays_in_the_outbox_and_is_retried(data_dir, crm, monkeypatch):
    monkeypatch.setenv("XIAOER_TEST_CRM_SECRET", SECRET)
    box = outbox(data_dir, crm.url)
    created = lead()
    box.enqueue(created, created=True)
    crm.fail_with = 503
    assert box.deliver_due() == 0
    [row] = box.rows(pending_only=True)
    assert row.attempts == 1 and row.last_error == "HTTP 503"
    assert box.deliver_due() == 0  # retried (no backoff in this test), fails again
    assert box.rows(pending_only=True)[0].attempts == 2
    crm.fail_with = 0
    assert box.deliver_due() == 1  # delivered later
    assert box.rows(pending_only=True) == []
    assert [r["body"]["delivery_id"] for r in crm.received] == [row.id]


def test_backoff_doubles_and_an_unreachable_crm_keeps_everything(data_dir, monkeypatch):
    monkeypatch.setenv("XIAOER_TEST_CRM_SECRET", SECRET)
    settings = CrmSettings(
        url="http://127.0.0.1:9/unreachable", secret_env="XIAOER_TEST_CRM_SECRET",
        retry_base_seconds=60, timeout_seconds=1,
    )  # fmt: skip
    box = CrmOutbox(data_dir / "xiaoer.db", settings)
    box.enqueue(lead(), created=True)
    assert box.deliver_due() == 0
    [row] = box.rows(pending_only=True)
    assert row.attempts == 1 and row.last_error
    assert box.deliver_due() == 0  # not due yet: waits 60 s, then 120 s ...
    assert box.rows(pending_only=True)[0].attempts == 1


def test_missing_secret_is_not_sent_unsigned(data_dir, crm, monkeypatch):
    monkeypatch.delenv("XIAOER_TEST_CRM_SECRET", raising=False)
    box = outbox(data_dir, crm.url)
    box.enqueue(lead(), created=True)
    assert box.deliver_due() == 0
    assert crm.received == []
    assert "XIAOER_TEST_CRM_SECRET" in box.rows(pending_only=True)[0].last_error


def test_no_url_means_no_outbox(data_dir):
    box = outbox(data_dir, "")
    assert box.enqueue(lead(), created=True) is None
    assert box.rows() == []
