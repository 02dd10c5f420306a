"""Doudian (抖店) push messages: order paid / shipped / completed / cancelled and
after-sales changes. A service without Rasa: the Rasa input channel that routes the
webhook here is :class:`xiaoer.channels.doudian.DoudianPushInput`.

* ``POST /webhooks/doudian_push/webhook``; header ``event-sign`` = hex MD5 of
  ``app_key + raw body + app_secret``; body ``[{"tag", "msg_id", "data"}]`` (``data``
  may be a JSON-encoded string). A missing or wrong signature gets 403 and nothing is
  stored or processed (:meth:`DoudianPushService.handle`).
* Every message is recorded first (``doudian_push_seen``, :class:`~xiaoer.doudian.store.PushLedger`),
  keyed by ``msg_id``: a message delivered twice is processed once. The answer
  ``{"code": 0, "msg": "success"}`` comes as soon as processing is done or after
  ``ack_seconds`` at most; processing then goes on in the background, and a message
  whose processing failed is picked up again later (next delivery or server start).
* Processing (:class:`DoudianPushProcessor`): the order's cached copies are dropped (in
  this process and, through ``doudian_order_changes``, in the action server); a proactive
  notification is queued in the outbox (:mod:`xiaoer.notifications.outbox`) when an order
  shipped, an after-sale was approved or a refund succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from xiaoer.core.db import Database
from xiaoer.doudian.protocol import (
    TAG_AFTER_SALE_CLOSED,
    TAG_ORDER_SHIPPED,
    TAG_REFUND_SUCCESS,
    PushMessage,
    as_dict,
    as_int,
    as_str_id,
    fen_to_yuan,
    pick,
)
from xiaoer.doudian.store import (
    CLAIM_LEASE_SECONDS,
    OrderChangeLog,
    PushLedger,
    invalidate_order,
)
from xiaoer.notifications.outbox import NotificationOutbox
from xiaoer.shop.backend import BackendError, ShopBackend

logger = logging.getLogger(__name__)

__all__ = [
    "DoudianPushProcessor",
    "DoudianPushService",
    "PushMessage",
    "build_push",
    "event_sign",
    "parse_push_body",
    "push_credentials",
    "verify_event_sign",
]

# after_sale_status values that mean "the shop approved": 7 return approved (the buyer
# sends the parcel back), 12 success (refund agreed). Approval is read from the status a
# message carries, not from a tag number (public sources disagree on those).
APPROVED_AFTER_SALE_STATUSES = (7, 12)
SUCCESS_ANSWER = {"code": 0, "msg": "success"}


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
    def for_database(
        cls,
        db: Database | str | Path | None = None,
        backend: Callable[[], ShopBackend] | None = None,
    ) -> DoudianPushProcessor:
        """Ledger, change log and notification outbox in ``db`` (default: the project
        database; anything :func:`xiaoer.core.db.database_for` accepts)."""
        return cls(PushLedger(db), NotificationOutbox(db), backend, OrderChangeLog(db))

    @classmethod
    def for_data_dir(
        cls, data_dir: Path, backend: Callable[[], ShopBackend] | None = None
    ) -> DoudianPushProcessor:
        """On the SQLite file ``xiaoer.db`` of ``data_dir`` (tests, tools)."""
        return cls.for_database(Path(data_dir) / "xiaoer.db", backend)

    def backend(self) -> ShopBackend:
        """The shop backend that fills in what a message leaves out (the buyer, the parcel)."""
        if self._backend is None:
            raise LookupError("no shop backend given to the Doudian push processor")
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


# --- the webhook, without a web framework -------------------------------------------------
def push_credentials(
    credentials: Mapping[str, Any] | None,
    section: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(app key, app secret) of the push webhook: given in ``credentials`` (credentials.yml)
    or read from the environment variables they name (``app_key_env``, ``app_secret_env``),
    else those named in the ``backend.doudian`` section, else the default names."""
    creds = credentials or {}
    section = section or {}
    env = os.environ if environ is None else environ

    def value(key: str, default_env: str) -> str:
        if creds.get(key):
            return str(creds[key])
        name = str(creds.get(f"{key}_env") or section.get(f"{key}_env") or default_env)
        found = env.get(name, "").strip()
        if not found:
            raise ValueError(f"doudian_push channel: set {key} or the environment variable {name}")
        return found

    return value("app_key", "XIAOER_DOUDIAN_APP_KEY"), value(
        "app_secret", "XIAOER_DOUDIAN_APP_SECRET"
    )


class DoudianPushService:
    """One push delivery, from the raw request to the answer: the signature is checked,
    the body parsed, the messages recorded (before the answer: once acknowledged, a
    message is never lost), then processed in the background; the answer waits for that
    processing ``ack_seconds`` at most.

    ``processor`` may be given (tests) or is built on first use by ``make_processor``
    (default: :meth:`DoudianPushProcessor.for_database`)."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        processor: DoudianPushProcessor | None = None,
        ack_seconds: float = 2.0,
        make_processor: Callable[[], DoudianPushProcessor] = DoudianPushProcessor.for_database,
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.ack_seconds = ack_seconds
        self._processor = processor
        self._make_processor = make_processor
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"DoudianPushService(app_key={self.app_key!r})"

    @property
    def processor(self) -> DoudianPushProcessor:
        if self._processor is None:
            self._processor = self._make_processor()
        return self._processor

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start(self) -> None:
        """Pick up messages whose processing failed or was cut short (server start)."""
        self._background(self.processor.resume(older_than=0))

    async def drain(self) -> None:
        """Wait for background processing (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def handle(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one delivery with its ``event-sign`` header."""
        if not verify_event_sign(self.app_key, self.app_secret, body, signature):
            logger.warning("doudian push rejected: missing or wrong event-sign")
            return 403, {"code": 40300, "msg": "invalid event-sign"}
        try:
            messages = parse_push_body(body)
        except (ValueError, UnicodeDecodeError):
            logger.warning("doudian push rejected: body is not a list of messages")
            return 400, {"code": 40000, "msg": "invalid body"}
        processor = self.processor
        await asyncio.to_thread(processor.ledger.record, messages)
        task = self._background(processor.process_all(messages))
        await asyncio.wait({task}, timeout=self.ack_seconds)
        self._background(processor.resume())
        return 200, dict(SUCCESS_ANSWER)
