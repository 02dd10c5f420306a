"""Doudian (抖店) push messages: order paid / shipped / completed / cancelled and
after-sales changes, received as a Rasa input channel.

* ``POST /webhooks/doudian_push/webhook``; header ``event-sign`` = hex MD5 of
  ``app_key + raw body + app_secret``; body ``[{"tag", "msg_id", "data"}]`` (``data``
  may be a JSON-encoded string). A missing or wrong signature gets 403 and nothing is
  stored or processed.
* Every message is recorded first (``doudian_push_seen`` in ``xiaoer.db``), keyed by
  ``msg_id``: a message delivered twice is processed once. The answer
  ``{"code": 0, "msg": "success"}`` comes as soon as processing is done or after
  ``ack_seconds`` at most; processing then goes on in the background, and a message
  whose processing failed is picked up again later (next delivery or server start).
* Processing: the order's cached copies are dropped (in this process and, through
  ``doudian_order_changes``, in the action server); a proactive notification is queued
  in the outbox (:mod:`xiaoer.notifications.outbox`) when an order shipped, an after-sale was approved
  or a refund succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.core import logsafe
from xiaoer.doudian.backend import (
    OrderChangeLog,
    as_dict,
    as_int,
    as_str_id,
    fen_to_yuan,
    invalidate_order,
    pick,
)
from xiaoer.notifications.outbox import NotificationOutbox
from xiaoer.shop.backend import BackendError, ShopBackend

logger = logging.getLogger(__name__)
logsafe.install()  # Rasa imports the channels after configuring its logging

TAG_ORDER_PAID = 101
TAG_ORDER_SHIPPED = 102
TAG_ORDER_COMPLETED = 103
TAG_ORDER_CANCELLED = 106
TAG_AFTER_SALE_APPLIED = 200
TAG_REFUND_SUCCESS = 206
TAG_AFTER_SALE_CLOSED = 207
TAGS = {
    TAG_ORDER_PAID: "order_paid",
    TAG_ORDER_SHIPPED: "order_shipped",
    TAG_ORDER_COMPLETED: "order_completed",
    TAG_ORDER_CANCELLED: "order_cancelled",
    TAG_AFTER_SALE_APPLIED: "after_sale_applied",
    TAG_REFUND_SUCCESS: "refund_success",
    TAG_AFTER_SALE_CLOSED: "after_sale_closed",
}
# after_sale_status values that mean "the shop approved": 7 return approved (the buyer
# sends the parcel back), 12 success (refund agreed). Approval is read from the status a
# message carries, not from a tag number (public sources disagree on those).
APPROVED_AFTER_SALE_STATUSES = (7, 12)
SUCCESS_ANSWER = {"code": 0, "msg": "success"}
CLAIM_LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 5


# --- signature and body -----------------------------------------------------------------
def event_sign(app_key: str, body: bytes, app_secret: str) -> str:
    """Hex MD5 of ``app_key + body + app_secret`` (the ``event-sign`` header)."""
    return hashlib.md5(app_key.encode("utf-8") + body + app_secret.encode("utf-8")).hexdigest()


def verify_event_sign(app_key: str, app_secret: str, body: bytes, given: str | None) -> bool:
    if not given or not app_key or not app_secret:
        return False
    # compared as bytes: a non-ASCII header is simply wrong (compare_digest raises on
    # non-ASCII str, which was a 500)
    expected = event_sign(app_key, body, app_secret).encode("ascii")
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "surrogateescape"))


@dataclass(frozen=True)
class PushMessage:
    tag: int
    msg_id: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return TAGS.get(self.tag, f"tag_{self.tag}")

    @property
    def order_id(self) -> str:
        return as_str_id(pick(self.data, "p_id", "shop_order_id", "order_id", "s_id"))

    @property
    def after_sale_id(self) -> str:
        return as_str_id(pick(self.data, "aftersale_id", "after_sale_id"))

    @property
    def is_after_sale(self) -> bool:
        return 200 <= self.tag < 300


def parse_push_body(body: bytes) -> list[PushMessage]:
    """``[{"tag", "msg_id", "data"}]`` (a single object is accepted too)."""
    payload = json.loads(body.decode("utf-8-sig"))
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise ValueError("push body is not a list")
    messages = []
    for entry in payload:
        if not isinstance(entry, dict):
            raise ValueError("push message is not an object")
        tag = as_int(entry.get("tag"))
        if tag is None:
            raise ValueError("push message without tag")
        data = as_dict(entry.get("data"))
        msg_id = as_str_id(entry.get("msg_id"))
        if not msg_id:  # no id: the content identifies the message
            raw = json.dumps([tag, data], sort_keys=True, ensure_ascii=False)
            msg_id = "sha1:" + hashlib.sha1(raw.encode("utf-8")).hexdigest()
        messages.append(PushMessage(tag, msg_id, data))
    return messages


def build_push(
    app_key: str, app_secret: str, messages: Iterable[tuple[int, str, dict[str, Any] | str]]
) -> tuple[bytes, dict[str, str]]:
    """A signed push delivery as Doudian sends it (body, headers): for tests and tools."""
    body = json.dumps(
        [{"tag": str(tag), "msg_id": msg_id, "data": data} for tag, msg_id, data in messages],
        ensure_ascii=False,
    ).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "app-id": app_key,
        "event-sign": event_sign(app_key, body, app_secret),
    }
    return body, headers


# --- the ledger of received messages -----------------------------------------------------
class PushLedger:
    """``doudian_push_seen``: every message received, whether it was processed."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS doudian_push_seen (
      msg_id TEXT PRIMARY KEY,
      tag INTEGER NOT NULL,
      order_id TEXT,
      data TEXT NOT NULL,
      received_at REAL NOT NULL,
      claimed_at REAL,
      processed_at REAL,
      attempts INTEGER NOT NULL DEFAULT 0,
      error TEXT
    );
    CREATE INDEX IF NOT EXISTS doudian_push_unprocessed ON doudian_push_seen (processed_at);
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.executescript(self.SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5)

    def record(self, messages: Iterable[PushMessage], now: float | None = None) -> list[str]:
        """Store messages not seen before; returns their ids."""
        now = time.time() if now is None else now
        new = []
        with closing(self._connect()) as conn, conn:
            for m in messages:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO doudian_push_seen (msg_id, tag, order_id, data, "
                    "received_at) VALUES (?,?,?,?,?)",
                    (m.msg_id, m.tag, m.order_id, json.dumps(m.data, ensure_ascii=False), now),
                )
                if cur.rowcount == 1:
                    new.append(m.msg_id)
        return new

    def claim(self, msg_id: str, now: float | None = None) -> bool:
        """Take a message for processing: False when it was processed, gave up, or is
        being processed by someone else (a concurrent duplicate delivery)."""
        now = time.time() if now is None else now
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "UPDATE doudian_push_seen SET claimed_at = ? WHERE msg_id = ? "
                "AND processed_at IS NULL AND attempts < ? "
                "AND (claimed_at IS NULL OR claimed_at < ?)",
                (now, msg_id, MAX_ATTEMPTS, now - CLAIM_LEASE_SECONDS),
            )
            return cur.rowcount == 1

    def done(self, msg_id: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE doudian_push_seen SET processed_at = ?, error = NULL WHERE msg_id = ?",
                (time.time(), msg_id),
            )

    def failed(self, msg_id: str, error: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE doudian_push_seen SET claimed_at = NULL, attempts = attempts + 1, "
                "error = ? WHERE msg_id = ?",
                (error, msg_id),
            )

    def unprocessed(self, older_than: float = 0.0) -> list[PushMessage]:
        """Messages still to process (received at least ``older_than`` seconds ago)."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT msg_id, tag, data FROM doudian_push_seen WHERE processed_at IS NULL "
                "AND attempts < ? AND received_at <= ? ORDER BY received_at",
                (MAX_ATTEMPTS, time.time() - older_than),
            ).fetchall()
        return [PushMessage(int(tag), msg_id, as_dict(data)) for msg_id, tag, data in rows]

    def state(self, msg_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM doudian_push_seen WHERE msg_id = ?", (msg_id,)
            ).fetchone()
        return dict(row) if row else None

    def count(self) -> int:
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM doudian_push_seen").fetchone()[0])


# --- processing ------------------------------------------------------------------------
class DoudianPushProcessor:
    """Turns recorded push messages into cache invalidations and notifications."""

    def __init__(
        self,
        ledger: PushLedger,
        outbox: NotificationOutbox,
        backend: Callable[[], ShopBackend] | None = None,
        change_log: OrderChangeLog | None = None,
    ) -> None:
        self.ledger = ledger
        self.outbox = outbox
        self.change_log = change_log
        self._backend = backend

    @classmethod
    def for_data_dir(
        cls, data_dir: Path, backend: Callable[[], ShopBackend] | None = None
    ) -> DoudianPushProcessor:
        path = Path(data_dir) / "xiaoer.db"
        return cls(PushLedger(path), NotificationOutbox(path), backend, OrderChangeLog(path))

    def backend(self) -> ShopBackend:
        if self._backend is None:
            from xiaoer.shop.factory import get_backend

            return get_backend()
        return self._backend()

    async def receive(self, messages: list[PushMessage]) -> int:
        """Record a delivery, then process each of its messages that is not done yet.
        Returns how many were processed now."""
        await asyncio.to_thread(self.ledger.record, messages)
        return await self.process_all(messages)

    async def process_all(self, messages: Iterable[PushMessage]) -> int:
        processed = 0
        for message in messages:
            if not await asyncio.to_thread(self.ledger.claim, message.msg_id):
                logger.info("doudian push %s (%s) already handled", message.kind, message.tag)
                continue
            try:
                await self.process(message)
            except Exception as exc:  # noqa: BLE001 - kept for a later attempt
                logger.warning(
                    "doudian push %s failed: %s (kept for a retry)",
                    message.kind,
                    type(exc).__name__,
                )
                await asyncio.to_thread(self.ledger.failed, message.msg_id, type(exc).__name__)
                continue
            await asyncio.to_thread(self.ledger.done, message.msg_id)
            processed += 1
        return processed

    async def resume(self, older_than: float = CLAIM_LEASE_SECONDS) -> int:
        """Process messages recorded earlier whose processing failed or was cut short."""
        pending = await asyncio.to_thread(self.ledger.unprocessed, older_than)
        return await self.process_all(pending) if pending else 0

    async def process(self, message: PushMessage) -> None:
        order_id = message.order_id
        logger.info("doudian push %s (%s)", message.kind, message.tag)
        if order_id:
            invalidate_order(order_id)
            if self.change_log is not None:
                await asyncio.to_thread(self.change_log.touch, order_id)
        if message.tag == TAG_ORDER_SHIPPED and order_id:
            await self._shipped(message, order_id)
        elif message.is_after_sale and order_id:
            await self._after_sale(message, order_id)

    async def _order_facts(self, message: PushMessage, order_id: str) -> tuple[str, str, str]:
        """(buyer id, courier, tracking number) from the message, else from the order."""
        logistics = as_dict(message.data.get("logistics_msg"))
        buyer = as_str_id(pick(message.data, "open_id", "buyer_open_id", "doudian_open_id"))
        tracking = as_str_id(
            pick(logistics, "tracking_no", "logistics_code", "track_no")
            or pick(message.data, "tracking_no", "logistics_code")
        )
        courier = str(pick(logistics, "company_name") or pick(message.data, "company_name") or "")
        complete = bool(tracking and courier) if message.tag == TAG_ORDER_SHIPPED else True
        if buyer and complete:
            return buyer, courier, tracking
        try:
            order = await self.backend().get_order(order_id)
        except BackendError:
            if buyer:
                return buyer, courier, tracking
            raise
        if order is None:
            return buyer, courier, tracking
        shipment = order.shipment
        if shipment and (not tracking or tracking == shipment.tracking_no):
            courier = courier or shipment.courier
            tracking = tracking or shipment.tracking_no
        return buyer or order.buyer_id, courier, tracking

    async def _notify(
        self, buyer: str, kind: str, order_id: str, text: str, dedupe_key: str
    ) -> None:
        added = await asyncio.to_thread(self.outbox.add, buyer, kind, order_id, text, dedupe_key)
        logger.info("notification %s %s", kind, "queued" if added else "already queued")

    async def _shipped(self, message: PushMessage, order_id: str) -> None:
        buyer, courier, tracking = await self._order_facts(message, order_id)
        if not buyer:
            logger.warning("doudian push order_shipped: buyer unknown, no notification")
            return
        via = f"{courier}，运单号{tracking}" if courier else f"运单号{tracking}"
        if not tracking:
            via = "物流信息稍后可查"
        text = f"您的订单{order_id}已发货（{via}）。想了解物流进度，随时问我就好。"
        await self._notify(
            buyer, "order_shipped", order_id, text, f"order_shipped:{order_id}:{tracking}"
        )

    async def _after_sale(self, message: PushMessage, order_id: str) -> None:
        status = as_int(pick(message.data, "aftersale_status", "after_sale_status"))
        refund_status = as_int(message.data.get("refund_status"))
        case_id = message.after_sale_id
        case = f"（售后单号{case_id}）" if case_id else ""
        if message.tag == TAG_REFUND_SUCCESS or refund_status == 3:
            amount_raw = pick(message.data, "refund_amount", "refund_total_amount")
            amount = f"¥{fen_to_yuan(amount_raw)}" if amount_raw is not None else "退款"
            kind = "refund_success"
            text = (
                f"您的订单{order_id}的退款已成功{case}，{amount}将原路退回，"
                "到账时间以支付渠道为准。"
            )
        elif message.tag != TAG_AFTER_SALE_CLOSED and status in APPROVED_AFTER_SALE_STATUSES:
            kind = "after_sale_approved"
            if status == 7:
                text = (
                    f"您的订单{order_id}的售后申请{case}商家已同意，"
                    "请按退货地址寄回商品并在售后详情页填写运单号。"
                )
            else:
                text = f"您的订单{order_id}的售后申请{case}商家已同意，退款正在处理中。"
        else:
            return
        buyer, _courier, _tracking = await self._order_facts(message, order_id)
        if not buyer:
            logger.warning("doudian push %s: buyer unknown, no notification", kind)
            return
        # an approval of the return (7) and the later one of the refund (12) are two news
        step = f":{status}" if kind == "after_sale_approved" else ""
        await self._notify(buyer, kind, order_id, text, f"{kind}:{order_id}:{case_id}{step}")


# --- the Rasa input channel ------------------------------------------------------------
class DoudianPushInput(InputChannel):
    """Receives Doudian push messages (credentials.yml:
    ``xiaoer.doudian.push.DoudianPushInput: {app_key_env: ..., app_secret_env: ...}``).
    Push messages never reach the assistant as user messages."""

    @classmethod
    def name(cls) -> str:
        return "doudian_push"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        try:
            from xiaoer.core.config import get_settings

            section = get_settings().doudian
        except Exception:  # noqa: BLE001 - the settings only give default variable names
            section = {}

        def value(key: str, default_env: str) -> str:
            if creds.get(key):
                return str(creds[key])
            name = str(creds.get(f"{key}_env") or section.get(f"{key}_env") or default_env)
            found = os.environ.get(name, "").strip()
            if not found:
                raise ValueError(
                    f"doudian_push channel: set {key} or the environment variable {name}"
                )
            return found

        return cls(
            value("app_key", "XIAOER_DOUDIAN_APP_KEY"),
            value("app_secret", "XIAOER_DOUDIAN_APP_SECRET"),
            ack_seconds=float(creds.get("ack_seconds", 2.0)),
        )

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        processor: DoudianPushProcessor | None = None,
        ack_seconds: float = 2.0,
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.ack_seconds = ack_seconds
        self._processor = processor
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"DoudianPushInput(app_key={self.app_key!r})"

    @property
    def processor(self) -> DoudianPushProcessor:
        if self._processor is None:
            from xiaoer.core.config import get_settings

            self._processor = DoudianPushProcessor.for_data_dir(get_settings().data_dir)
        return self._processor

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for background processing (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("doudian_push_webhook", __name__)

        @webhook.listener("after_server_start")
        async def resume(app: Any, loop: Any) -> None:
            self._background(self.processor.resume(older_than=0))

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.body or b""
            if not verify_event_sign(
                self.app_key, self.app_secret, body, request.headers.get("event-sign")
            ):
                logger.warning("doudian push rejected: missing or wrong event-sign")
                return response.json({"code": 40300, "msg": "invalid event-sign"}, status=403)
            try:
                messages = parse_push_body(body)
            except (ValueError, UnicodeDecodeError):
                logger.warning("doudian push rejected: body is not a list of messages")
                return response.json({"code": 40000, "msg": "invalid body"}, status=400)
            processor = self.processor
            # recorded before the answer: once acknowledged, a message is never lost
            await asyncio.to_thread(processor.ledger.record, messages)
            task = self._background(processor.process_all(messages))
            await asyncio.wait({task}, timeout=self.ack_seconds)
            self._background(processor.resume())
            return response.json(SUCCESS_ANSWER)

        return webhook
