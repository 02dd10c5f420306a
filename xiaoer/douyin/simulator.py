"""A local Douyin platform for trying Xiaoer's Douyin path without Douyin.

It plays the platform's two roles:

* it **delivers webhooks** to Xiaoer exactly as the spec says: signed with
  ``X-Douyin-Signature`` (SHA-1 of ``client_secret + body``), a ``Msg-Id`` per delivery,
  ``content`` as an object or as a JSON-encoded string like the real platform (a string
  for ``im_enter_direct_msg`` and ``new_follow_action``), 5 s to answer and 3 tries in
  all; duplicates (same ``Msg-Id`` or a new one) and BOM-prefixed bodies on request;
* it **receives the send API** (``POST /im/send/msg/?open_id=…``, header
  ``access-token``) and checks what the platform checks: the account, a valid unexpired
  token, the body's shape, that an ``im_replay_msg`` answers a message this customer
  sent within 24 h in this conversation. Accepted messages are recorded per customer,
  shown in the terminal and echoed back as ``im_send_msg`` webhooks like the platform
  does; refused ones are recorded in ``rejected``. ``/oauth/refresh_token/`` issues
  new tokens. Faults (HTTP 5xx, error codes, delays) can be injected.

    with running_simulator() as sim:           # a background thread, a free port
        env = sim.env()                        # what Xiaoer's Douyin channel needs
        sim.webhook_url = ".../webhooks/douyin/webhook"
        sim.say("buyer_demo_001", "我的快递到哪了")
        sim.wait_replies("buyer_demo_001", 1)

``xiaoer simulate`` (xiaoer.douyin.simulator.main) is the terminal front end: an
interactive customer, or a scripted conversation file (docs/douyin.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import requests
import yaml
from sanic import Request, Sanic, response
from sanic.config import Config
from sanic.response import HTTPResponse

from xiaoer.devtools.sanic_thread import SanicThread
from xiaoer.douyin.protocol import (
    EVENT_ENTER,
    EVENT_FOLLOW,
    EVENT_RECEIVE,
    EVENT_SEND,
    EVENT_VERIFY,
    MSG_ID_HEADER,
    MSG_TEXT,
    NO_REPLY_FIELD,
    REFRESH_PATH,
    SCENE_ENTER,
    SCENE_REPLY,
    SEND_PATH,
    build_webhook,
)

DEFAULTS = {
    "client_key": "sim_client_key",
    "client_secret": "sim_client_secret",
    "account_open_id": "sim_shop_account",
    "access_token": "sim_access_token",
    "refresh_token": "sim_refresh_token",
}
DELIVERY_TIMEOUT = 5.0  # the platform waits 5 s for the answer
DELIVERY_TRIES = 3
ERR_TOKEN = (2190008, "access_token过期，请刷新或重新授权")
ERR_PARAM = (2100005, "参数不合法")
ERR_ACCOUNT = (2100004, "open_id不匹配")
ERR_MSG_ID = (28003017, "msg_id无效或已过期")


@dataclass
class Delivery:
    event: str
    msg_id: str
    statuses: list[int] = field(default_factory=list)  # one per try (0: no answer)
    seconds: list[float] = field(default_factory=list)
    answer: Any = None
    server_message_id: str = ""  # of a customer message, to find its answers
    started: float = 0.0  # time.time() of the first try

    @property
    def ok(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == 200

    @property
    def no_reply(self) -> str:
        """Why Xiaoer will not answer this event ("" when it will): its acknowledgement
        says so (a paused bot, no greeting within the cooldown...)."""
        if self.ok and isinstance(self.answer, dict):
            return str(self.answer.get(NO_REPLY_FIELD) or "")
        return ""


@dataclass
class Received:
    """A message the account sent to a customer through the send API."""

    customer: str
    content: dict[str, Any]
    scene: str
    answered: str  # the customer's server_message_id it answers ("" for enter scene)
    server_message_id: str
    at: float

    @property
    def text(self) -> str:
        if self.content.get("msg_type") == MSG_TEXT:
            return str((self.content.get("text") or {}).get("text") or "")
        if self.content.get("msg_type") == 2:
            return f"[图片 {(self.content.get('image') or {}).get('media_id')}]"
        return f"[卡片 {json.dumps(self.content, ensure_ascii=False)}]"


@dataclass
class Fault:
    times: int
    status: int = 500
    error_code: int = 0
    delay: float = 0.0


@dataclass
class Customer:
    open_id: str
    nickname: str
    conversation_id: str
    sent: dict[str, float] = field(default_factory=dict)  # server_message_id -> time


class DouyinSimulator:
    def __init__(
        self,
        webhook_url: str = "",
        *,
        client_key: str = DEFAULTS["client_key"],
        client_secret: str = DEFAULTS["client_secret"],
        account_open_id: str = DEFAULTS["account_open_id"],
        access_token: str = DEFAULTS["access_token"],
        refresh_token: str = DEFAULTS["refresh_token"],
        token_ttl: float = 15 * 24 * 3600,
        echo_sent: bool = True,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.client_key = client_key
        self.client_secret = client_secret
        self.account_open_id = account_open_id
        self.refresh_token = refresh_token
        self.token_ttl = token_ttl
        self.echo_sent = echo_sent
        self.printer = printer
        self.base_url = ""
        self.tokens: dict[str, float] = {access_token: time.time() + token_ttl}
        self.access_token = access_token
        self.refreshes = 0
        self.customers: dict[str, Customer] = {}
        self.received: list[Received] = []
        self.rejected: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.send_calls = 0
        self.faults: list[Fault] = []
        self.down_until = 0.0  # the send API answers 5xx until then (outage)
        self.down_status = 503
        # several Rasa servers behind a load balancer: deliveries go round robin and a
        # retry goes to the next one (webhook_url stays the address of the echoes)
        self.webhook_urls: list[str] = []
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._counter = itertools.count(1)
        self._local = threading.local()  # one HTTP session per calling thread
        self._echo_session: aiohttp.ClientSession | None = None
        self._echoes: set[asyncio.Task[None]] = set()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    # --- configuration for Xiaoer ------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment variables Xiaoer's Douyin channel reads (credentials.yml)."""
        return {
            "XIAOER_DOUYIN_BASE_URL": self.base_url,
            "XIAOER_DOUYIN_CLIENT_KEY": self.client_key,
            "XIAOER_DOUYIN_CLIENT_SECRET": self.client_secret,
            "XIAOER_DOUYIN_ACCOUNT_OPEN_ID": self.account_open_id,
            "XIAOER_DOUYIN_ACCESS_TOKEN": self.access_token,
            "XIAOER_DOUYIN_REFRESH_TOKEN": self.refresh_token,
            "XIAOER_DOUYIN_TOKEN_EXPIRES_AT": str(int(self.tokens[self.access_token])),
        }

    def _show(self, line: str) -> None:
        if self.printer is not None:
            self.printer(line)

    def expire_token(self, token: str | None = None) -> None:
        with self._lock:
            self.tokens[token or self.access_token] = time.time() - 1

    def fail_next(self, times: int = 1, status: int = 500, error_code: int = 0, delay: float = 0):
        """The next ``times`` send-API calls fail (HTTP ``status`` or, with status 200,
        the business ``error_code``), after ``delay`` seconds."""
        with self._lock:
            self.faults.append(Fault(times, status, error_code, delay))

    def outage(self, seconds: float, status: int = 503) -> None:
        """The send API is down for ``seconds``: every call answers HTTP ``status``."""
        with self._lock:
            self.down_until = time.time() + seconds
            self.down_status = status

    def end_outage(self) -> None:
        with self._lock:
            self.down_until = 0.0

    # --- the customer's side: webhooks ----------------------------------------------------
    def customer(self, open_id: str, nickname: str = "") -> Customer:
        with self._lock:
            found = self.customers.get(open_id)
            if found is None:
                conv = "conv-" + hashlib.sha1(open_id.encode()).hexdigest()[:12]
                found = Customer(open_id, nickname or f"抖音用户{open_id[-4:]}", conv)
                self.customers[open_id] = found
            elif nickname:
                found.nickname = nickname
            return found

    def deliver(
        self,
        event: str,
        content: dict[str, Any],
        *,
        from_user_id: str = "",
        to_user_id: str = "",
        content_as_string: bool | None = None,
        duplicate: str = "",
        bom: bool = False,
        msg_id: str | None = None,
        secret: str | None = None,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> Delivery:
        """Sign and POST one event; retried (same Msg-Id) while it gets no 200, 3 tries
        in all. ``duplicate``: "same_msg_id" / "new_msg_id" delivers it once more."""
        if content_as_string is None:
            content_as_string = event in (EVENT_ENTER, EVENT_FOLLOW)
        extra = {"log_id": uuid.uuid4().hex}
        if event == EVENT_RECEIVE:
            extra["data-im-extra"] = "{}"
        body, headers = build_webhook(
            secret if secret is not None else self.client_secret,
            event,
            content,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            client_key=self.client_key,
            content_as_string=content_as_string,
            extra=extra,
            bom=bom,
        )
        started = time.time()
        delivery = self._post(event, body, headers, msg_id or uuid.uuid4().hex, timeout)
        delivery.server_message_id = str(content.get("server_message_id") or "")
        delivery.started = started
        if duplicate:
            again = delivery.msg_id if duplicate == "same_msg_id" else uuid.uuid4().hex
            self._post(event, body, headers, again, timeout)
        return delivery

    def _post(
        self, event: str, body: bytes, headers: dict[str, str], msg_id: str, timeout: float
    ) -> Delivery:
        if not self.webhook_url and not self.webhook_urls:
            raise RuntimeError("the simulator has no webhook_url to deliver to")
        delivery = Delivery(event, msg_id)
        first = next(self._rr)
        refused: set[str] = set()  # servers that refused the connection: not tried again
        for attempt in range(DELIVERY_TRIES):
            url = self.webhook_url
            if self.webhook_urls:
                candidates = [u for u in self.webhook_urls if u not in refused] or self.webhook_urls
                url = candidates[(first + attempt) % len(candidates)]
            started = time.monotonic()
            try:
                r = self._session().post(
                    url,
                    data=body,
                    headers={**headers, MSG_ID_HEADER: msg_id},
                    timeout=timeout,
                )
                status = r.status_code
                try:
                    delivery.answer = r.json()
                except ValueError:
                    delivery.answer = r.text
            except requests.ConnectionError:
                status = 0
                refused.add(url)
            except requests.RequestException:
                status = 0
            delivery.statuses.append(status)
            delivery.seconds.append(time.monotonic() - started)
            if status == 200:
                break
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def _message_content(self, customer: Customer, message_type: str, **fields: Any) -> dict:
        server_message_id = f"sim-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            customer.sent[server_message_id] = time.time()
        return {
            "server_message_id": server_message_id,
            "conversation_short_id": customer.conversation_id,
            "conversation_type": 1,
            "message_type": message_type,
            "create_time": int(time.time() * 1000),
            "user_infos": [
                {"open_id": customer.open_id, "nick_name": customer.nickname, "avatar": ""}
            ],
            **fields,
        }

    def say(self, open_id: str, text: str, nickname: str = "", **kwargs: Any) -> Delivery:
        customer = self.customer(open_id, nickname)
        self._show(f"👤 {customer.nickname}({open_id}): {text}")
        content = self._message_content(customer, "text", text=text)
        return self.deliver(
            EVENT_RECEIVE,
            content,
            from_user_id=open_id,
            to_user_id=self.account_open_id,
            **kwargs,
        )

    def send_image(self, open_id: str, url: str, **kwargs: Any) -> Delivery:
        customer = self.customer(open_id)
        self._show(f"👤 {customer.nickname}({open_id}): [图片] {url}")
        content = self._message_content(
            customer,
            "image",
            resource_url=url,
            resource_type="image",
            resource_width=1080,
            resource_height=1440,
        )
        return self.deliver(
            EVENT_RECEIVE, content, from_user_id=open_id, to_user_id=self.account_open_id,
            **kwargs,
        )  # fmt: skip

    def send_video(self, open_id: str, url: str, item_id: str = "7300000000000000001") -> Delivery:
        customer = self.customer(open_id)
        self._show(f"👤 {customer.nickname}({open_id}): [视频] {url}")
        content = self._message_content(customer, "video", resource_url=url, item_id=item_id)
        return self.deliver(
            EVENT_RECEIVE, content, from_user_id=open_id, to_user_id=self.account_open_id
        )

    def send_lead_card(self, open_id: str, phone: str, name: str = "") -> Delivery:
        customer = self.customer(open_id)
        data = [{"label": "手机号", "value": phone}]
        if name:
            data.insert(0, {"label": "姓名", "value": name})
        self._show(f"👤 {customer.nickname}({open_id}): [留资卡片] {data}")
        content = self._message_content(
            customer, "retain_consult_card", card_id="sim-card-1", card_data=data
        )
        return self.deliver(
            EVENT_RECEIVE, content, from_user_id=open_id, to_user_id=self.account_open_id
        )

    def send_other(self, open_id: str) -> Delivery:
        customer = self.customer(open_id)
        self._show(f"👤 {customer.nickname}({open_id}): [其他类型消息]")
        content = self._message_content(customer, "other")
        return self.deliver(
            EVENT_RECEIVE, content, from_user_id=open_id, to_user_id=self.account_open_id
        )

    def follow(self, open_id: str, nickname: str = "") -> Delivery:
        customer = self.customer(open_id, nickname)
        self._show(f"➕ {customer.nickname}({open_id}) 关注了账号")
        content = {"action_type": 1, "action_time": int(time.time())}
        return self.deliver(
            EVENT_FOLLOW, content, from_user_id=open_id, to_user_id=self.account_open_id
        )

    def enter(self, open_id: str, nickname: str = "", ad_id: str = "") -> Delivery:
        customer = self.customer(open_id, nickname)
        self._show(f"💬 {customer.nickname}({open_id}) 进入了私信")
        content: dict[str, Any] = {"conversation_short_id": customer.conversation_id}
        if ad_id:
            content.update(ad_id=ad_id, creative_id=f"{ad_id}-c1")
        return self.deliver(
            EVENT_ENTER, content, from_user_id=open_id, to_user_id=self.account_open_id
        )

    def merchant_says(self, open_id: str, text: str) -> Delivery:
        """A human answering from the Douyin app (``im_send_msg``)."""
        customer = self.customer(open_id)
        self._show(f"🧑‍💼 商家(抖音App) → {customer.nickname}: {text}")
        content = {
            "server_message_id": f"sim-app-{next(self._counter)}",
            "conversation_short_id": customer.conversation_id,
            "conversation_type": 1,
            "message_type": "text",
            "text": text,
            "create_time": int(time.time() * 1000),
        }
        return self.deliver(
            EVENT_SEND, content, from_user_id=self.account_open_id, to_user_id=open_id
        )

    def verify(self, challenge: int = 12345) -> Delivery:
        return self.deliver(EVENT_VERIFY, {"challenge": challenge})

    # --- what customers received --------------------------------------------------------
    def replies(self, open_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.customer == open_id]

    def wait_replies(self, open_id: str, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until ``open_id`` received at least ``count`` messages in all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = [r for r in self.received if r.customer == open_id]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self._changed.wait(left)

    def wait_quiet(self, open_id: str, since: int, settle: float = 1.0, timeout: float = 30.0):
        """Wait for the bot's answer to a step: the first new message (up to
        ``timeout``), then until nothing more arrives for ``settle`` seconds."""
        got = self.wait_replies(open_id, since + 1, timeout)
        while True:
            more = self.wait_replies(open_id, len(got) + 1, settle)
            if len(more) == len(got):
                return got[since:]
            got = more

    # --- the platform's side: HTTP ------------------------------------------------------
    def make_app(self) -> Sanic:
        config = Config(env_prefix=None)
        config.update(
            REGISTER=False, ACCESS_LOG=False, MOTD=False, KEEP_ALIVE_TIMEOUT=75,
            REQUEST_TIMEOUT=3600, RESPONSE_TIMEOUT=3600,
        )  # fmt: skip
        app = Sanic(f"douyin_simulator_{uuid.uuid4().hex[:8]}", config=config,
                    configure_logging=False)  # fmt: skip
        app.add_route(self._send_api, SEND_PATH, methods=["POST"], name="send")
        app.add_route(self._refresh, REFRESH_PATH, methods=["POST"], name="refresh")
        app.add_route(self._received_api, "/__sim__/received", methods=["GET"], name="received")
        return app

    @staticmethod
    def _answer(code: int = 0, description: str = "", msg_id: str = "") -> dict[str, Any]:
        return {
            "extra": {
                "error_code": code,
                "description": description,
                "sub_error_code": 0,
                "sub_description": "",
                "logid": uuid.uuid4().hex,
                "now": int(time.time() * 1000),
            },
            "data": {"error_code": code, "description": description},
            "msg_id": msg_id,
        }

    def _reject(self, why: str, err: tuple[int, str], body: Any) -> HTTPResponse:
        with self._changed:
            self.rejected.append({"why": why, "body": body, "code": err[0]})
            self._changed.notify_all()
        self._show(f"⛔ 发送接口拒绝：{why}")
        return response.json(self._answer(err[0], f"{err[1]}：{why}"))

    def _check_body(self, body: Any) -> str:
        """What is wrong with a send-API body ("" when it is well formed)."""
        if not isinstance(body, dict):
            return "body is not a JSON object"
        to_user = body.get("to_user_id")
        if not isinstance(to_user, str) or to_user not in self.customers:
            return f"to_user_id {to_user!r} is not a customer of this account"
        scene = body.get("scene")
        if scene not in (SCENE_REPLY, SCENE_ENTER):
            return f"scene {scene!r} unknown"
        content = body.get("content")
        if not isinstance(content, dict):
            return "content is not an object"
        kind = content.get("msg_type")
        if kind == MSG_TEXT:
            text = (content.get("text") or {}).get("text")
            if not isinstance(text, str) or not text.strip():
                return "text.text missing"
        elif kind == 2:
            if not (content.get("image") or {}).get("media_id"):
                return "image.media_id missing"
        elif kind == 8:
            if not (content.get("retain_consult_card") or {}).get("card_id"):
                return "retain_consult_card.card_id missing"
        else:
            return f"msg_type {kind!r} unknown"
        customer = self.customers[to_user]
        conversation = body.get("conversation_id")
        if conversation is not None and conversation != customer.conversation_id:
            return f"conversation_id {conversation!r} is not this customer's conversation"
        if scene == SCENE_REPLY:
            answered = body.get("msg_id")
            sent_at = customer.sent.get(str(answered))
            if sent_at is None:
                return f"msg_id {answered!r} is no message of this customer"
            if time.time() - sent_at > 24 * 3600:
                return "msg_id older than 24 h"
            if conversation is None:
                return "conversation_id missing"
        return ""

    async def _send_api(self, request: Request) -> HTTPResponse:
        with self._lock:
            self.send_calls += 1
            fault = next((f for f in self.faults if f.times > 0), None)
            if fault is not None:
                fault.times -= 1
            elif time.time() < self.down_until:
                fault = Fault(0, self.down_status, 0, 0.0)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            self._show(f"⚠️ 注入故障：HTTP {fault.status} / error_code {fault.error_code}")
            if fault.status != 200:
                return response.json(
                    {"err_no": fault.status, "err_msg": "injected"}, status=fault.status
                )
            return response.json(self._answer(fault.error_code, "injected"))
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return self._reject("body is not JSON", ERR_PARAM, None)
        if request.args.get("open_id") != self.account_open_id:
            return self._reject("open_id is not the account", ERR_ACCOUNT, body)
        token = request.headers.get("access-token") or ""
        with self._lock:
            expires = self.tokens.get(token)
        if expires is None or expires <= time.time():
            return self._reject("access-token invalid or expired", ERR_TOKEN, body)
        with self._lock:
            problem = self._check_body(body)
        if problem:
            return self._reject(problem, ERR_PARAM, body)
        server_message_id = f"sim-out-{next(self._counter)}"
        received = Received(
            customer=body["to_user_id"],
            content=body["content"],
            scene=body["scene"],
            answered=str(body.get("msg_id") or ""),
            server_message_id=server_message_id,
            at=time.time(),
        )
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()
        self._show(f"🤖 → {self.customers[received.customer].nickname}: {received.text}")
        if self.echo_sent and self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._echo(received))
            self._echoes.add(task)
            task.add_done_callback(self._echoes.discard)
        return response.json(self._answer(0, "", server_message_id))

    async def _echo(self, received: Received) -> None:
        """The platform reports every message the account sent (``im_send_msg``)."""
        customer = self.customers[received.customer]
        content = {
            "server_message_id": received.server_message_id,
            "conversation_short_id": customer.conversation_id,
            "conversation_type": 1,
            "message_type": "text" if received.content.get("msg_type") == MSG_TEXT else "image",
            "text": received.text,
            "create_time": int(received.at * 1000),
        }
        body, headers = build_webhook(
            self.client_secret, EVENT_SEND, content, from_user_id=self.account_open_id,
            to_user_id=received.customer, client_key=self.client_key,
        )  # fmt: skip
        headers[MSG_ID_HEADER] = uuid.uuid4().hex
        if self._echo_session is None or self._echo_session.closed:
            self._echo_session = aiohttp.ClientSession()
        try:
            async with self._echo_session.post(
                self.webhook_url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT),
            ) as resp:  # fmt: skip
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass

    async def _refresh(self, request: Request) -> HTTPResponse:
        form = {k: v[0] for k, v in (request.form or {}).items()}
        if not form and request.body:
            try:
                form = json.loads(request.body)
            except ValueError:
                form = {}
        if form.get("client_key") != self.client_key:
            return response.json({"data": {"error_code": 10003, "description": "client_key错误"},
                                  "message": "error"})  # fmt: skip
        if form.get("refresh_token") != self.refresh_token:
            return response.json({"data": {"error_code": 10010, "description": "refresh_token已过期"},
                                  "message": "error"})  # fmt: skip
        token = f"sim_token_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self.tokens[token] = time.time() + self.token_ttl
            self.access_token = token
            self.refreshes += 1
        self._show("🔑 access_token 已刷新")
        return response.json(
            {
                "data": {
                    "access_token": token,
                    "expires_in": int(self.token_ttl),
                    "refresh_token": self.refresh_token,
                    "refresh_expires_in": 30 * 24 * 3600,
                    "open_id": self.account_open_id,
                    "scope": "im.direct_message",
                    "error_code": 0,
                    "description": "",
                },
                "message": "success",
            }
        )

    async def close_sessions(self) -> None:
        """Close the HTTP session used for echoes (when the server stops)."""
        if self._echo_session is not None and not self._echo_session.closed:
            await self._echo_session.close()

    async def _received_api(self, request: Request) -> HTTPResponse:
        with self._lock:
            items = [r.__dict__ for r in self.received]
        return response.json({"received": items, "rejected": self.rejected})


@contextmanager
def running_simulator(
    port: int = 0, host: str = "127.0.0.1", **kwargs: Any
) -> Iterator[DouyinSimulator]:
    sim = DouyinSimulator(**kwargs)
    server = SanicThread(
        sim.make_app, name="Douyin simulator", host=host, port=port, on_stop=sim.close_sessions
    )
    server.start()
    sim.base_url = f"http://{server.host}:{server.port}"
    try:
        yield sim
    finally:
        server.stop()


# --- the terminal front end ------------------------------------------------------------
HELP = """命令 / commands:
  直接输入文字          作为顾客发送私信
  /image <url>          发送图片          /video <url>   发送视频
  /card <手机号>        发送留资卡片      /other         发送不支持的消息类型
  /follow               关注账号          /enter         进入私信会话
  /merchant <文字>      商家在抖音App里回复（机器人会暂停）
  /dup <文字>           同一条消息投递两次（测试去重）
  /as <open_id> [昵称]  切换顾客（buyer_demo_001 / buyer_demo_002 是演示店铺的买家）
  /quit                 退出"""


@dataclass
class StepResult:
    """What a step brought the customer, and why nothing when Xiaoer said it will not
    answer (``silence``: printed at once instead of waiting for a reply)."""

    replies: list[Received]
    silence: str = ""


def play_step(
    sim: DouyinSimulator,
    customer: str,
    step: dict[str, Any],
    settle: float,
    show: Callable[[str], None] | None = None,
) -> StepResult:
    """One step of a scripted conversation: what the customer received. When Xiaoer's
    acknowledgement says no reply is coming, ``show`` gets the reason at once and the step
    waits only ``settle`` seconds, not for the reply timeout."""
    before = len(sim.replies(customer))
    expect_reply = True
    delivery: Delivery | None = None
    if "say" in step:
        delivery = sim.say(
            customer, str(step["say"]), duplicate="same_msg_id" if step.get("duplicate") else ""
        )
    elif "image" in step:
        delivery = sim.send_image(customer, str(step["image"]))
    elif "video" in step:
        delivery = sim.send_video(customer, str(step["video"]))
    elif "card" in step:
        delivery = sim.send_lead_card(customer, str(step["card"]))
    elif "other" in step:
        delivery = sim.send_other(customer)
    elif "follow" in step:
        delivery = sim.follow(customer)
    elif "enter" in step:
        delivery = sim.enter(customer)
    elif "merchant" in step:
        sim.merchant_says(customer, str(step["merchant"]))
        expect_reply = False
    elif "wait" in step:
        time.sleep(float(step["wait"]))
        expect_reply = False
    else:
        raise ValueError(f"unknown step {step!r}")
    silence = delivery.no_reply if delivery is not None else ""
    if silence and show is not None:
        show(silence)
    if silence or not expect_reply:
        time.sleep(settle)
        return StepResult(sim.replies(customer)[before:], silence)
    timeout = float(step.get("timeout", 30))
    return StepResult(sim.wait_quiet(customer, before, settle=settle, timeout=timeout))


def play_script(sim: DouyinSimulator, path: Path, settle: float = 1.0) -> int:
    """Play a conversation file (YAML: ``customer``, ``nickname``, ``steps``) and print
    what the customer received. Returns the number of steps without any answer."""
    script = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    customer = str(script.get("customer") or "sim_customer_001")
    sim.customer(customer, str(script.get("nickname") or ""))
    silent = 0
    for number, step in enumerate(script.get("steps") or [], 1):
        result = play_step(sim, customer, step, settle)
        got = result.replies
        print(f"--- 第{number}步 {json.dumps(step, ensure_ascii=False)}")
        for message in got:
            print(f"    顾客收到: {message.text}")
        if not got and result.silence:  # explained: no reply was due
            print(f"    {result.silence}")
        elif not got and "merchant" not in step and "wait" not in step:
            silent += 1
            print("    （没有收到回复）")
    return silent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xiaoer simulate", description="A local fake Douyin platform for Xiaoer."
    )
    parser.add_argument(
        "--webhook", default="http://localhost:5005/webhooks/douyin/webhook",
        help="Xiaoer's Douyin webhook URL",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=8780, help="the simulator's own port")
    parser.add_argument("--customer", default="buyer_demo_001")
    parser.add_argument("--script", type=Path, help="play a conversation file and exit")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds of quiet per turn")
    parser.add_argument("--env", action="store_true", help="print the environment and exit")
    args = parser.parse_args(argv)
    from xiaoer.core.security import process_start

    process_start(check=False)  # the simulator keeps nothing in var/
    if args.env:  # for eval "$(xiaoer simulate --env)" in Xiaoer's terminal
        offline = DouyinSimulator()
        offline.base_url = f"http://127.0.0.1:{args.port}"
        print("\n".join(f"export {k}={v}" for k, v in offline.env().items()))
        return 0
    printer = None if args.script else (lambda line: print(line, flush=True))
    with running_simulator(port=args.port, webhook_url=args.webhook, printer=printer) as sim:
        exports = "\n".join(f"  export {k}={v}" for k, v in sim.env().items())
        print(f"抖音模拟平台已启动：{sim.base_url}  →  webhook {args.webhook}\n"
              f"店小二需要这些环境变量（启动 xiaoer up 之前设置）：\n{exports}", flush=True)  # fmt: skip
        if args.script:
            silent = play_script(sim, args.script, args.settle)
            rejected = len(sim.rejected)
            print(f"完成：{len(sim.received)} 条回复，{silent} 步无回复，{rejected} 条被平台拒绝")
            return 1 if silent or rejected else 0
        print(HELP)
        customer = args.customer
        while True:
            try:
                line = input(f"[{customer}]> ").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if not line:
                continue
            command, _, rest = line.partition(" ")
            try:
                if command == "/quit":
                    return 0
                if command == "/as":
                    customer, _, nickname = rest.strip().partition(" ")
                    sim.customer(customer, nickname)
                    continue
                steps: dict[str, dict[str, Any]] = {
                    "/image": {"image": rest}, "/video": {"video": rest}, "/card": {"card": rest},
                    "/other": {"other": True}, "/follow": {"follow": True},
                    "/enter": {"enter": True}, "/merchant": {"merchant": rest},
                    "/dup": {"say": rest, "duplicate": True},
                }  # fmt: skip
                step = steps.get(command, {"say": line})
                if command.startswith("/") and command not in steps:
                    print(HELP)
                    continue
                show = lambda note: print(note, flush=True)  # noqa: E731
                got = play_step(sim, customer, step, args.settle, show=show).replies
                if not got and sim.deliveries and not sim.deliveries[-1].ok:
                    delivery = sim.deliveries[-1]
                    print(f"（投递失败：HTTP {delivery.statuses} {delivery.answer}）")
            except RuntimeError as exc:
                print(f"error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
