"""Doudian push messages: signature, de-duplication, cache invalidation, notifications."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import subprocess
import sys
import uuid
from datetime import datetime

import aiohttp
import pytest
from rasa.core.channels.channel import register
from sanic import Sanic

from xiaoer.channels.doudian import DoudianPushInput
from xiaoer.core.clock import BEIJING
from xiaoer.core.config import load_settings
from xiaoer.doudian.backend import DoudianShopBackend
from xiaoer.doudian.client import DoudianConfig
from xiaoer.doudian.fake import running_fake_doudian
from xiaoer.doudian.push import (
    DoudianPushProcessor,
    PushMessage,
    build_push,
    event_sign,
    parse_push_body,
    verify_event_sign,
)
from xiaoer.doudian.store import OrderChangeLog, PushLedger
from xiaoer.notifications.outbox import NotificationOutbox
from xiaoer.shop.backend import BackendUnavailable
from xiaoer.shop.models import OrderStatus
from xiaoer.shop.policies import ShopPolicies
from xiaoer.shop.sqlite_backend import SqliteShopBackend, seed_demo_shop

D = datetime(2026, 11, 1, 12, 0, tzinfo=BEIJING)
APP_KEY, APP_SECRET = "push_app_key", "push_app_secret"
SHIPPED = "6938271045123400002"
DELIVERED = "6938271045123400003"
PAID = "6938271045123400001"


@pytest.fixture()
def fake():
    with running_fake_doudian(now=D) as server:
        yield server


@pytest.fixture()
async def backend(fake, tmp_path):
    policies = ShopPolicies.from_settings(load_settings().shop)
    shop_db = tmp_path / "shop.db"
    seed_demo_shop(shop_db, now=D)
    config = DoudianConfig(
        fake.base_url,
        fake.app_key,
        fake.app_secret,
        fake.access_token,
        timeout_seconds=1.0,
        retries=0,
    )
    built = DoudianShopBackend(
        config,
        policies,
        SqliteShopBackend(shop_db, policies),
        OrderChangeLog(tmp_path / "var" / "xiaoer.db"),
    )
    yield built
    await built.aclose()


@pytest.fixture()
def processor(tmp_path, backend):
    return DoudianPushProcessor.for_data_dir(tmp_path / "var", backend=lambda: backend)


@pytest.fixture()
async def push_url(processor, monkeypatch):
    """The channel in a real Sanic server, registered the way Rasa registers channels."""
    # test mode: Sanic 21.12 rewrites its HTTP class once per process otherwise
    monkeypatch.setattr(Sanic, "test_mode", True)
    channel = DoudianPushInput(APP_KEY, APP_SECRET, processor=processor)
    app = Sanic(f"doudian_push_test_{uuid.uuid4().hex[:8]}")
    register([channel], app, "/webhooks/")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.after_start()
    yield f"http://127.0.0.1:{port}/webhooks/doudian_push/webhook"
    await channel.drain()
    await server.before_stop()
    server.close()
    await server.wait_closed()
    await server.after_stop()
    sock.close()


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def shipped_message(msg_id: str = "msg-102-1") -> tuple[int, str, str]:
    data = {
        "p_id": int(SHIPPED),
        "s_ids": [int(SHIPPED + "1")],
        "shop_id": 4463798,
        "order_status": 3,
        "logistics_msg": {"express_company_id": 7, "logistics_code": "SF1234567890123"},
        "update_time": 1761950000,
    }
    return 102, msg_id, json.dumps(data)  # data as a JSON-encoded string


# --- signature and body -----------------------------------------------------------------
def test_event_sign_vector():
    body = b'[{"tag":"102","msg_id":"1","data":"{}"}]'
    expected = hashlib.md5(APP_KEY.encode() + body + APP_SECRET.encode()).hexdigest()
    assert event_sign(APP_KEY, body, APP_SECRET) == expected
    assert verify_event_sign(APP_KEY, APP_SECRET, body, expected.upper())
    assert not verify_event_sign(APP_KEY, APP_SECRET, body, None)
    assert not verify_event_sign(APP_KEY, APP_SECRET, body + b" ", expected)
    assert not verify_event_sign(APP_KEY, "other", body, expected)


def test_push_bodies_with_data_as_object_or_string():
    body = json.dumps(
        [
            {"tag": "102", "msg_id": "a", "data": '{"p_id": 6938271045123400002}'},
            {"tag": 206, "msg_id": 7, "data": {"p_id": "6938271045123400003", "aftersale_id": 9}},
        ]
    ).encode()
    first, second = parse_push_body(b"\xef\xbb\xbf" + body)
    assert (first.tag, first.msg_id, first.order_id) == (102, "a", SHIPPED)
    assert (second.tag, second.msg_id, second.order_id, second.after_sale_id) == (
        206,
        "7",
        DELIVERED,
        "9",
    )
    assert second.is_after_sale and first.kind == "order_shipped"
    single = parse_push_body(b'{"tag": 101, "data": {"p_id": 1}}')
    assert single[0].msg_id.startswith("sha1:")  # no msg_id: the content identifies it
    for bad in (b"not json", b'"text"', b"[1]", b'[{"msg_id": "x"}]'):
        with pytest.raises(ValueError):
            parse_push_body(bad)


# --- the channel ------------------------------------------------------------------------
async def test_shipped_is_processed_once_even_when_delivered_twice(
    push_url, processor, fake, caplog
):
    caplog.set_level(logging.DEBUG)
    body, headers = build_push(APP_KEY, APP_SECRET, [shipped_message()])
    assert await post(push_url, body, headers) == (200, {"code": 0, "msg": "success"})
    assert await post(push_url, body, headers) == (200, {"code": 0, "msg": "success"})

    assert processor.ledger.count() == 1
    state = processor.ledger.state("msg-102-1")
    assert state["processed_at"] is not None and state["attempts"] == 0
    notes = processor.outbox.pending()
    assert len(notes) == 1
    note = notes[0]
    assert (note.buyer_id, note.kind, note.order_id) == ("buyer_demo_001", "order_shipped", SHIPPED)
    assert "SF1234567890123" in note.text and "顺丰速运" in note.text and "已发货" in note.text
    assert note.sent_at is None
    # the order was looked up once (the buyer is not in the push message)
    assert len(fake.calls_of("order.orderDetail")) == 1
    assert "order_shipped" in caplog.text and "already handled" in caplog.text
    for secret in (APP_SECRET, headers["event-sign"], "SF1234567890123", "buyer_demo_001"):
        assert secret not in caplog.text


async def test_the_same_event_under_a_new_msg_id_notifies_once(push_url, processor):
    for msg_id in ("first", "second"):
        body, headers = build_push(APP_KEY, APP_SECRET, [shipped_message(msg_id)])
        assert (await post(push_url, body, headers))[0] == 200
    assert processor.ledger.count() == 2
    assert len(processor.outbox.pending()) == 1


@pytest.mark.parametrize("signature", [None, "0" * 32, "wrong"])
async def test_a_bad_signature_is_rejected_and_nothing_is_stored(
    push_url, processor, fake, signature
):
    body, headers = build_push(APP_KEY, APP_SECRET, [shipped_message()])
    if signature is None:
        del headers["event-sign"]
    else:
        headers["event-sign"] = signature
    status, answer = await post(push_url, body, headers)
    assert status == 403 and answer["code"] != 0
    assert processor.ledger.count() == 0
    assert processor.outbox.all() == []
    assert fake.calls == []


@pytest.mark.parametrize("signature", ["签名".encode(), "é".encode("latin-1"), b"\xff" * 32])
async def test_a_non_ascii_signature_is_403_not_500(push_url, processor, fake, signature):
    """Issue 11: a non-ASCII event-sign header crashed the comparison (HTTP 500)."""
    body, headers = build_push(APP_KEY, APP_SECRET, [shipped_message()])
    url = push_url.removeprefix("http://")
    hostport, path = url.split("/", 1)
    host, port = hostport.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"app-id: {headers['app-id']}\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    writer.write(head + b"event-sign: " + signature + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert processor.ledger.count() == 0
    assert processor.outbox.all() == []
    assert fake.calls == []


async def test_a_body_signed_with_another_secret_is_rejected(push_url, processor):
    body, headers = build_push(APP_KEY, "someone_else", [shipped_message()])
    assert (await post(push_url, body, headers))[0] == 403
    assert processor.ledger.count() == 0


async def test_a_signed_but_malformed_body_is_refused(push_url, processor):
    body = b'{"no": "tag"}'
    headers = {"event-sign": event_sign(APP_KEY, body, APP_SECRET)}
    assert (await post(push_url, body, headers))[0] == 400
    assert processor.ledger.count() == 0


async def test_refund_and_approval_notify_the_buyer(push_url, processor):
    refund = {"p_id": DELIVERED, "aftersale_id": "AS20261101", "refund_amount": 3990}
    applied = {"p_id": DELIVERED, "aftersale_id": "AS2", "aftersale_status": 6}
    approved = {"p_id": DELIVERED, "aftersale_id": "AS3", "aftersale_status": 7}
    closed = {"p_id": DELIVERED, "aftersale_id": "AS4", "aftersale_status": 7}
    messages = [
        (206, "m1", refund),
        (200, "m2", applied),
        (203, "m3", approved),
        (207, "m4", closed),
    ]
    body, headers = build_push(APP_KEY, APP_SECRET, messages)
    assert (await post(push_url, body, headers))[0] == 200
    notes = {n.kind: n for n in processor.outbox.pending(buyer_id="buyer_demo_001")}
    assert set(notes) == {"refund_success", "after_sale_approved"}
    assert "¥39.90" in notes["refund_success"].text and "AS20261101" in notes["refund_success"].text
    assert "商家已同意" in notes["after_sale_approved"].text
    assert "寄回" in notes["after_sale_approved"].text
    assert processor.ledger.count() == 4


async def test_pushes_invalidate_the_order_cache(push_url, processor, backend, fake, tmp_path):
    assert (await backend.get_order(PAID)).status == OrderStatus.PAID
    fake.update_order(PAID, order_status=4)
    assert (await backend.get_order(PAID)).status == OrderStatus.PAID  # cached
    body, headers = build_push(
        APP_KEY, APP_SECRET, [(106, "cancel-1", {"p_id": PAID, "order_status": 4})]
    )
    assert (await post(push_url, body, headers))[0] == 200
    assert (await backend.get_order(PAID)).status == OrderStatus.CANCELLED
    assert processor.outbox.all() == []  # a cancellation queues no notification
    # the change is visible to other processes (the action server) too
    assert OrderChangeLog(tmp_path / "var" / "xiaoer.db").changed_since(0, PAID)


async def test_a_failed_message_is_kept_and_processed_later(tmp_path):
    class Flaky:
        down = True

        async def get_order(self, order_id):
            if self.down:
                raise BackendUnavailable("down")
            return None

    flaky = Flaky()
    processor = DoudianPushProcessor.for_data_dir(tmp_path, backend=lambda: flaky)
    message = PushMessage(102, "m-1", {"p_id": SHIPPED, "open_id": "buyer_demo_001"})
    message_without_buyer = PushMessage(102, "m-2", {"p_id": SHIPPED})
    assert await processor.receive([message, message_without_buyer]) == 1
    state = processor.ledger.state("m-2")
    assert state["processed_at"] is None and state["attempts"] == 1
    assert [n.order_id for n in processor.outbox.pending()] == [SHIPPED]

    flaky.down = False
    assert await processor.resume(older_than=0) == 1
    assert processor.ledger.state("m-2")["processed_at"] is not None
    assert await processor.resume(older_than=0) == 0


def test_from_credentials(monkeypatch):
    channel = DoudianPushInput.from_credentials({"app_key": "k", "app_secret": "s"})
    assert (channel.app_key, channel.app_secret) == ("k", "s")
    assert channel.name() == "doudian_push"
    monkeypatch.setenv("MY_KEY", "k2")
    monkeypatch.setenv("MY_SECRET", "s2")
    channel = DoudianPushInput.from_credentials(
        {"app_key_env": "MY_KEY", "app_secret_env": "MY_SECRET"}
    )
    assert (channel.app_key, channel.app_secret) == ("k2", "s2")
    assert "s2" not in repr(channel)
    monkeypatch.delenv("XIAOER_DOUDIAN_APP_SECRET", raising=False)
    monkeypatch.setenv("XIAOER_DOUDIAN_APP_KEY", "k3")
    with pytest.raises(ValueError, match="XIAOER_DOUDIAN_APP_SECRET"):
        DoudianPushInput.from_credentials(None)


# --- the outbox -------------------------------------------------------------------------
def test_notification_outbox(project_db):  # on SQLite and PostgreSQL
    outbox = NotificationOutbox(project_db)
    first = outbox.add("buyer_demo_001", "order_shipped", SHIPPED, "已发货", "k1")
    assert first is not None and first.id > 0
    assert outbox.add("buyer_demo_001", "order_shipped", SHIPPED, "已发货", "k1") is None
    second = outbox.add("buyer_demo_002", "refund_success", None, "退款成功")
    assert [n.id for n in outbox.pending()] == [first.id, second.id]
    assert [n.id for n in outbox.pending(buyer_id="buyer_demo_002")] == [second.id]
    assert outbox.mark_sent(first.id) is True
    assert outbox.mark_sent(first.id) is False
    assert [n.id for n in outbox.pending()] == [second.id]
    reopened = NotificationOutbox(project_db.url)  # persistent
    assert reopened.all()[0].sent_at is not None
    with pytest.raises(ValueError):
        outbox.add("", "order_shipped", SHIPPED, "x")


def test_the_ledger_claims_a_message_once(tmp_path):
    ledger = PushLedger(tmp_path / "xiaoer.db")
    message = PushMessage(101, "x", {"p_id": PAID})
    assert ledger.record([message, message]) == ["x"]
    assert ledger.claim("x") is True
    assert ledger.claim("x") is False  # a concurrent duplicate delivery
    ledger.done("x")
    assert ledger.claim("x", now=10**10) is False  # done stays done


async def test_concurrent_duplicate_deliveries_notify_once(push_url, processor):
    body, headers = build_push(APP_KEY, APP_SECRET, [shipped_message("dup")])
    results = await asyncio.gather(*(post(push_url, body, headers) for _ in range(4)))
    assert all(status == 200 for status, _ in results)
    await asyncio.sleep(0)
    assert len(processor.outbox.all()) == 1


def test_the_push_service_runs_without_rasa():
    """The push service and the rest of the Doudian package import neither Rasa nor Sanic:
    only the channel (xiaoer.channels.doudian) adapts it to Rasa."""
    code = (
        "import sys\n"
        "import xiaoer.doudian.backend, xiaoer.doudian.push\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rasa', 'sanic'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
