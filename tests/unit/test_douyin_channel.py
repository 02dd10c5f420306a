"""The Douyin channel in a real Sanic server (in-process) against the simulator: the
webhook contract, dedupe, ordering, the send API, the outbox and token refresh. The
assistant is a fake here (tests/e2e/test_douyin_conversation.py uses the real one)."""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from rasa.shared.core.events import BotUttered, ConversationPaused, ConversationResumed
from sanic import Sanic

from xiaoer.channels.douyin import DouyinInput
from xiaoer.douyin.client import DouyinConfig
from xiaoer.douyin.greetings import GreetingSettings
from xiaoer.douyin.jobs import resend_outbox
from xiaoer.douyin.protocol import build_webhook, signature, verify_signature
from xiaoer.douyin.settings import ChannelSettings, config_from_credentials
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator
from xiaoer.douyin.store import DouyinStore

POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sim-client")


class FakeAssistant:
    """Stands in for Rasa's agent: answers every message with two utterances (merged
    into one platform message), buttons for "选项"; records concurrency per customer."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.active: dict[str, int] = defaultdict(int)
        self.max_parallel = 0
        self.delay = 0.0
        self.bridge: FakeBridge | None = None  # a paused conversation gets no answer

    async def __call__(self, message: UserMessage) -> None:
        sid = message.sender_id
        if self.bridge is not None and self.bridge.paused[sid]:
            self.seen.append((sid, message.text, dict(message.metadata or {})))
            return
        self.active[sid] += 1
        self.max_parallel = max(self.max_parallel, self.active[sid])
        self.seen.append((sid, message.text, dict(message.metadata or {})))
        try:
            await asyncio.sleep(self.delay)
            out = message.output_channel
            if message.text == "选项":
                await out.send_response(
                    sid,
                    {
                        "text": "请选择订单",
                        "buttons": [
                            {
                                "title": "T恤 · 待发货",
                                "payload": '/inform_order_id{"order_id": "1"}',
                            },
                            {
                                "title": "跑鞋 · 已发货",
                                "payload": '/inform_order_id{"order_id": "2"}',
                            },
                        ],
                    },
                )
                return
            await out.send_response(sid, {"text": f"收到：{message.text}"})
            await out.send_response(sid, {"text": "还有什么可以帮您？"})
        finally:
            self.active[sid] -= 1


class FakeBridge:
    """Stands in for the tracker operations (append events, trigger an intent)."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.paused: dict[str, bool] = defaultdict(bool)
        self.triggers: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []

    async def append(self, sender_id, build, metadata) -> bool:
        was = self.paused[sender_id]
        for event in build(was):
            self.events[sender_id].append(event)
            if isinstance(event, ConversationPaused):
                self.paused[sender_id] = True
            if isinstance(event, ConversationResumed):
                self.paused[sender_id] = False
        return was

    async def trigger(self, sender_id, intent, entities, metadata, output) -> None:
        self.triggers.append((sender_id, intent, entities, metadata))
        await output.send_response(sender_id, {"text": f"欢迎{metadata.get('nickname') or ''}"})


class Harness:
    def __init__(self, url: str, channel: DouyinInput, sim: DouyinSimulator, store: DouyinStore):
        self.url = url
        self.channel = channel
        self.sim = sim
        self.store = store

    async def run(self, fn, *args, **kwargs):
        """Simulator calls block (requests): off the loop that serves the channel, in a
        pool of their own (the channel's store calls use the default executor)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(POOL, functools.partial(fn, *args, **kwargs))

    async def replies(self, customer: str, count: int, timeout: float = 10.0) -> list[str]:
        got = await self.run(self.sim.wait_replies, customer, count, timeout)
        return [r.text for r in got]


def make_config(sim: DouyinSimulator, **overrides: Any) -> DouyinConfig:
    values: dict[str, Any] = dict(
        base_url=sim.base_url,
        client_key=sim.client_key,
        client_secret=sim.client_secret,
        account_open_id=sim.account_open_id,
        access_token=sim.access_token,
        refresh_token=sim.refresh_token,
        token_expires_at=sim.tokens[sim.access_token],
        timeout_seconds=2.0,
        retries=2,
        backoff_seconds=0.01,
    )
    values.update(overrides)
    return DouyinConfig(**values)


async def start_server(channel: DouyinInput, assistant: FakeAssistant):
    Sanic.test_mode = True
    app = Sanic(f"douyin_test_{uuid.uuid4().hex[:8]}")
    register([channel], app, "/webhooks/")
    # the handler registered by Rasa calls app.ctx.agent.handle_message
    app.ctx.agent = type("Agent", (), {"handle_message": staticmethod(assistant)})()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.after_start()
    return server, sock, f"http://127.0.0.1:{port}/webhooks/douyin/webhook"


async def stop_server(server, sock, channel: DouyinInput) -> None:
    await channel.drain(10)
    await server.before_stop()
    for conn in list(server.connections):  # idle keep-alive connections of the clients
        conn.close_if_idle()
    server.close()
    await server.wait_closed()
    await server.after_stop()
    sock.close()


@pytest.fixture()
def sim():
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture()
def assistant() -> FakeAssistant:
    return FakeAssistant()


@pytest.fixture()
def bridge() -> FakeBridge:
    return FakeBridge()


@pytest.fixture()
def store(tmp_path: Path) -> DouyinStore:
    return DouyinStore(tmp_path / "douyin.db")


SETTINGS = ChannelSettings(reorder_window_seconds=0.05, outbox_interval_seconds=0.2,
                           sweep_interval_seconds=0.5, max_body_bytes=64 * 1024)  # fmt: skip


@pytest.fixture()
async def h(sim, assistant, bridge, store):
    assistant.bridge = bridge
    channel = DouyinInput(make_config(sim), settings=SETTINGS, store=store, bridge=bridge)
    server, sock, url = await start_server(channel, assistant)
    sim.webhook_url = url
    yield Harness(url, channel, sim, store)
    await stop_server(server, sock, channel)


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def signed(sim: DouyinSimulator, event: str, content: dict[str, Any], **kwargs: Any):
    return build_webhook(sim.client_secret, event, content, client_key=sim.client_key, **kwargs)


def text_content(sim: DouyinSimulator, customer: str, text: str, smid: str, at_ms: int) -> dict:
    conv = sim.customer(customer)
    conv.sent[smid] = time.time()
    return {
        "server_message_id": smid,
        "conversation_short_id": conv.conversation_id,
        "conversation_type": 1,
        "message_type": "text",
        "text": text,
        "create_time": at_ms,
        "user_infos": [{"open_id": "masked_id", "nick_name": "小美"}],
    }


# --- signature and the webhook contract ---------------------------------------------------
def test_signature_is_sha1_of_secret_and_body():
    body = b'{"event":"verify_webhook"}'
    import hashlib

    assert signature("s3cret", body) == hashlib.sha1(b"s3cret" + body).hexdigest()
    assert verify_signature("s3cret", body, signature("s3cret", body))
    assert verify_signature("s3cret", body, signature("s3cret", body).upper())
    assert not verify_signature("s3cret", body + b" ", signature("s3cret", body))
    assert not verify_signature("s3cret", body, None)
    assert not verify_signature("", body, signature("", body))
    # undecodable header bytes reach the channel as surrogates: refused, never a 500
    assert not verify_signature("s3cret", body, "\udce9\udcff")
    assert not verify_signature("s3cret", body, "签名")


async def test_verify_webhook_is_answered_with_the_challenge(h: Harness):
    delivery = await h.run(h.sim.verify, 987654)
    assert delivery.statuses == [200]
    assert delivery.answer == {"challenge": 987654}


@pytest.mark.parametrize("header", [None, "0" * 40, "not-hex"])
async def test_missing_or_wrong_signature_is_refused_and_nothing_stored(h: Harness, header):
    content = text_content(h.sim, "buyer_x", "你好", "m-sig", int(time.time() * 1000))
    body, headers = signed(h.sim, "im_receive_msg", content, from_user_id="buyer_x")
    headers.pop("X-Douyin-Signature")
    if header:
        headers["X-Douyin-Signature"] = header
    status, answer = await post(h.url, body, headers)
    assert status == 403 and answer["error"] == "invalid_signature"
    await h.channel.drain(5)
    assert h.store.count_events() == 0 and h.sim.received == []


async def test_a_body_signed_with_another_secret_is_refused(h: Harness):
    got = await h.run(
        h.sim.deliver, "im_receive_msg", {"text": "x"}, from_user_id="b", secret="other"
    )
    assert got.statuses == [403, 403, 403]  # the platform retried, still refused
    assert h.store.count_events() == 0


@pytest.mark.parametrize("as_string", [False, True], ids=["object", "json-string"])
async def test_content_as_object_or_json_string(h: Harness, assistant, as_string):
    await h.run(h.sim.say, "buyer_a", "在吗", content_as_string=as_string, bom=as_string)
    assert await h.replies("buyer_a", 1) == ["收到：在吗\n还有什么可以帮您？"]
    sid, text, metadata = assistant.seen[0]
    assert (sid, text) == ("buyer_a", "在吗")
    assert metadata["buyer_id"] == "buyer_a" and metadata["nickname"]
    reply = h.sim.replies("buyer_a")[0]
    assert reply.scene == "im_replay_msg"
    assert reply.answered == metadata["douyin"]["server_message_id"]
    assert h.sim.rejected == []


async def test_nickname_with_masked_user_infos(h: Harness, assistant):
    # one entry with a masked id: the only user of a private chat, so its nickname
    content = text_content(h.sim, "buyer_m", "你好", "m-nick", int(time.time() * 1000))
    await h.run(h.sim.deliver, "im_receive_msg", content, from_user_id="buyer_m")
    await h.replies("buyer_m", 1)
    assert assistant.seen[0][2]["nickname"] == "小美"
    # several entries, none matching: no nickname (normal), still answered
    content = text_content(h.sim, "buyer_m", "在吗", "m-nick2", int(time.time() * 1000))
    content["user_infos"] = [{"open_id": "a***", "nick_name": "甲"}, {"open_id": "b***"}]
    await h.run(h.sim.deliver, "im_receive_msg", content, from_user_id="buyer_m")
    await h.replies("buyer_m", 2)
    assert assistant.seen[1][2]["nickname"] == "小美"  # remembered from earlier


# --- event types -------------------------------------------------------------------------
async def test_an_image_reaches_the_assistant_as_an_attachment(h: Harness, assistant):
    await h.run(h.sim.send_image, "buyer_i", "https://img.example/crack.jpg")
    await h.replies("buyer_i", 1)
    _, text, metadata = assistant.seen[0]
    assert text == "[图片]"
    assert metadata["attachments"][0]["url"] == "https://img.example/crack.jpg"
    assert metadata["attachments"][0]["type"] == "image"


async def test_a_lead_card_passes_its_phone_in_text_and_metadata(h: Harness, assistant):
    await h.run(h.sim.send_lead_card, "buyer_l", "13912345678", "王女士")
    await h.replies("buyer_l", 1)
    _, text, metadata = assistant.seen[0]
    assert "13912345678" in text and text.startswith("[留资卡片]")
    assert {"label": "手机号", "value": "13912345678"} in metadata["lead_card"]["card_data"]


@pytest.mark.parametrize("kind", ["video", "other"])
async def test_video_and_other_types_get_a_polite_answer_and_are_recorded(
    h: Harness, assistant, bridge, kind
):
    if kind == "video":
        await h.run(h.sim.send_video, "buyer_v", "https://v.example/1.mp4")
    else:
        await h.run(h.sim.send_other, "buyer_v")
    [reply] = await h.replies("buyer_v", 1)
    assert reply == SETTINGS.replies[kind]
    assert assistant.seen == []  # not guessed at by NLU
    recorded = bridge.events["buyer_v"]
    assert recorded[0].text in ("[视频]", "[other]")
    assert any(isinstance(e, BotUttered) and e.text == reply for e in recorded)


async def test_a_human_answer_from_the_app_pauses_the_bot(h: Harness, assistant, bridge, store):
    await h.run(h.sim.say, "buyer_h", "你好")
    await h.replies("buyer_h", 1)
    await asyncio.sleep(0.5)  # the platform's echo of the bot's own reply comes back
    assert not bridge.paused["buyer_h"], "the bot's own message must not pause it"
    await h.run(h.sim.merchant_says, "buyer_h", "我是店长，这单我来处理")
    await h.channel.drain(5)
    assert bridge.paused["buyer_h"]
    human = [e for e in bridge.events["buyer_h"] if isinstance(e, BotUttered)]
    assert human[-1].text == "我是店长，这单我来处理"
    assert human[-1].metadata["douyin_sent_by"] == "human"
    assert store.conversation("buyer_h").paused_until > time.time()
    # the pause ends: the next message resumes the bot first
    store.update_conversation("buyer_h", paused_until=time.time() - 1)
    await h.run(h.sim.say, "buyer_h", "还在吗")
    await h.replies("buyer_h", 2)
    assert isinstance(bridge.events["buyer_h"][-1], ConversationResumed)


async def test_follow_and_enter_trigger_a_greeting(h: Harness, bridge, monkeypatch):
    from xiaoer.douyin import greetings

    always = greetings.GreetingSettings(quiet_events=())
    h.channel.service.greetings = always
    await h.run(h.sim.follow, "fan_1", "小新")
    [greeting] = await h.replies("fan_1", 1)
    assert greeting.startswith("欢迎")
    sender, intent, entities, metadata = bridge.triggers[0]
    assert (sender, intent, entities) == (
        "fan_1", "EXTERNAL_douyin_greet", {"douyin_event": "new_follow_action"},
    )  # fmt: skip
    assert h.sim.replies("fan_1")[0].scene == "im_enter_direct_msg"
    # entering the chat right after: no second greeting (cooldown)
    await h.run(h.sim.enter, "fan_1")
    await h.channel.drain(5)
    assert len(bridge.triggers) == 1
    await h.run(h.sim.enter, "fan_2", "", "ad-77")
    await h.replies("fan_2", 1)
    assert bridge.triggers[-1][3]["ad_id"] == "ad-77"
    assert h.sim.rejected == []


async def test_unknown_events_are_acknowledged_and_ignored(h: Harness):
    got = await h.run(h.sim.deliver, "im_group_msg", {"x": 1}, from_user_id="u")
    assert got.statuses == [200]
    assert h.store.count_events() == 0


# --- duplicates, order, concurrency ------------------------------------------------------
async def test_duplicate_deliveries_are_processed_once(h: Harness, assistant):
    await h.run(h.sim.say, "buyer_d", "第一条", duplicate="same_msg_id")
    await h.run(h.sim.say, "buyer_d", "第二条", duplicate="new_msg_id")
    await h.replies("buyer_d", 2)
    await h.channel.drain(5)
    assert [t for _, t, _ in assistant.seen] == ["第一条", "第二条"]
    assert len(h.sim.replies("buyer_d")) == 2


async def test_duplicates_after_a_restart_are_recognised(sim, assistant, bridge, store):
    content = text_content(sim, "buyer_r", "重启前", "m-restart", int(time.time() * 1000))
    for _round in range(2):  # two server lives on the same data folder
        channel = DouyinInput(make_config(sim), settings=SETTINGS, store=store, bridge=bridge)
        server, sock, url = await start_server(channel, assistant)
        sim.webhook_url = url
        got = await asyncio.get_running_loop().run_in_executor(
            POOL, functools.partial(sim.deliver, "im_receive_msg", content, from_user_id="buyer_r")
        )
        assert got.statuses == [200]
        await channel.drain(5)
        await stop_server(server, sock, channel)
    assert [t for _, t, _ in assistant.seen] == ["重启前"]
    assert len(sim.replies("buyer_r")) == 1


async def test_out_of_order_deliveries_are_processed_in_the_customers_order(h: Harness, assistant):
    # a window wide enough for a slow machine: the two deliveries below are 0.2 s apart,
    # but each one's HTTP round trip took more than the rest of a 0.5 s window in CI
    h.channel.settings = ChannelSettings(reorder_window_seconds=2.0)
    now = int(time.time() * 1000)
    # a delivery older than one already received: the platform reorders this customer's
    # messages (the earlier one could not be answered first: the later one was answered)
    late = text_content(h.sim, "buyer_o", "更早的", "m-o0", now - 2000)
    await h.run(h.sim.say, "buyer_o", "刚发的")
    await h.replies("buyer_o", 1)
    await h.run(h.sim.deliver, "im_receive_msg", late, from_user_id="buyer_o")
    await h.replies("buyer_o", 2)
    # from now on the customer's messages wait the reorder window: a late one overtakes
    first = text_content(h.sim, "buyer_o", "先发的", "m-o1", now + 1000)
    second = text_content(h.sim, "buyer_o", "后发的", "m-o2", now + 2000)
    for content in (second, first):  # the platform delivers the later one first
        await h.run(h.sim.deliver, "im_receive_msg", content, from_user_id="buyer_o")
        await asyncio.sleep(0.2)  # 0.2 s late: within the window
    await h.replies("buyer_o", 4)
    assert [t for _, t, _ in assistant.seen][2:] == ["先发的", "后发的"]
    assert [r.answered for r in h.sim.replies("buyer_o")][2:] == ["m-o1", "m-o2"]


async def test_messages_in_order_are_answered_without_the_reorder_window(h: Harness, assistant):
    h.channel.settings = ChannelSettings(reorder_window_seconds=3.0)
    for i in range(2):
        started = time.monotonic()
        await h.run(h.sim.say, "buyer_quick", f"第{i}句")
        await h.replies("buyer_quick", i + 1)
        assert time.monotonic() - started < 2.0  # not held for the 3 s window
    other = f"buyer_{uuid.uuid4().hex[:6]}"  # another customer's disorder changes nothing
    await h.run(h.sim.say, other, "新的")
    await h.run(
        h.sim.deliver, "im_receive_msg",
        text_content(h.sim, other, "旧的", "m-old", int(time.time() * 1000) - 60_000),
        from_user_id=other,
    )  # fmt: skip
    started = time.monotonic()
    await h.run(h.sim.say, "buyer_quick", "第2句")
    await h.replies("buyer_quick", 3)
    assert time.monotonic() - started < 2.0


async def test_messages_of_one_customer_are_never_processed_concurrently(h: Harness, assistant):
    assistant.delay = 0.2
    await asyncio.gather(
        *(h.run(h.sim.say, "buyer_c", f"消息{i}") for i in range(5)),
        *(h.run(h.sim.say, f"other_{i}", "你好") for i in range(5)),
    )
    await h.replies("buyer_c", 5)
    await h.channel.drain(10)
    assert assistant.max_parallel == 1
    assert len([s for s, _, _ in assistant.seen if s == "buyer_c"]) == 5


async def test_a_slow_assistant_still_gets_a_fast_200_and_the_reply_later(h: Harness, assistant):
    assistant.delay = 6.0  # longer than the platform's 5 s
    started = time.monotonic()
    delivery = await h.run(h.sim.say, "buyer_s", "慢一点也没关系")
    assert delivery.statuses == [200] and delivery.seconds[0] < 1.0
    assert time.monotonic() - started < 2.0
    assert h.sim.replies("buyer_s") == []
    assert len(await h.replies("buyer_s", 1, timeout=15)) == 1


# --- buttons ------------------------------------------------------------------------------
async def test_buttons_become_numbered_options_answered_by_number(h: Harness, assistant):
    await h.run(h.sim.say, "buyer_b", "选项")
    [options] = await h.replies("buyer_b", 1)
    assert "1. T恤 · 待发货" in options and "2. 跑鞋 · 已发货" in options
    assert "回复数字" in options
    await h.run(h.sim.say, "buyer_b", "２")
    await h.replies("buyer_b", 2)
    _, text, metadata = assistant.seen[-1]
    assert text == '/inform_order_id{"order_id": "2"}' and metadata["chosen_option"] == 2
    # options are used once: a later "2" is just text
    await h.run(h.sim.say, "buyer_b", "2")
    await h.replies("buyer_b", 3)
    assert assistant.seen[-1][1] == "2"


# --- the send API: failures, outbox, tokens -----------------------------------------------
async def test_send_failures_are_retried_then_kept_and_resent_in_order(h: Harness, store):
    h.sim.fail_next(times=3, status=502)  # 1 try + 2 retries
    await h.run(h.sim.say, "buyer_f", "第一句")
    await h.channel.drain(5)
    assert h.sim.replies("buyer_f") == []
    [kept] = store.outbox_pending("buyer_f")
    assert "收到：第一句" in kept.preview and "502" in (kept.last_error or "")
    h.sim.fail_next(times=1, status=200, error_code=28003095)  # blocks the next resend once
    await h.run(h.sim.say, "buyer_f", "第二句")  # must not overtake the first
    await h.channel.drain(5)
    # the worker's job resends what is due (backoff 0.2 s, then 0.4 s)
    deadline = time.monotonic() + 10
    while len(h.sim.replies("buyer_f")) < 2 and time.monotonic() < deadline:
        await resend_outbox(h.channel.service.sender)
        await asyncio.sleep(0.1)
    texts = await h.replies("buyer_f", 2, timeout=10)
    assert [t.split("\n")[0] for t in texts] == ["收到：第一句", "收到：第二句"]
    for _ in range(50):  # marked sent right after the platform's answer
        if not store.outbox_pending("buyer_f"):
            break
        await asyncio.sleep(0.05)
    assert store.outbox_pending("buyer_f") == []
    assert h.sim.rejected == []


async def test_token_is_refreshed_before_it_expires(sim, assistant, bridge, store):
    config = make_config(sim, token_expires_at=time.time() + 60)  # within the 600 s margin
    channel = DouyinInput(config, settings=SETTINGS, store=store, bridge=bridge)
    server, sock, url = await start_server(channel, assistant)
    sim.webhook_url = url
    try:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(POOL, sim.say, "buyer_t", "你好")
        await loop.run_in_executor(POOL, sim.wait_replies, "buyer_t", 1, 10)
        assert sim.refreshes == 1 and sim.rejected == []
        stored = store.token(config.client_key)
        assert stored is not None and stored.access_token == sim.access_token
        assert stored.access_token != config.access_token
        assert stored.expires_at > time.time() + 3600
    finally:
        await stop_server(server, sock, channel)


async def test_a_refused_token_is_refreshed_and_the_message_sent(h: Harness):
    h.sim.expire_token()  # the platform says the token expired earlier than announced
    await h.run(h.sim.say, "buyer_e", "你好")
    assert len(await h.replies("buyer_e", 1)) == 1
    assert h.sim.refreshes == 1
    assert [r["code"] for r in h.sim.rejected] == [2190008]


# --- bad requests --------------------------------------------------------------------------
async def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(h: Harness):
    sim = h.sim
    cases = [
        (b"{not json", {}, 400),
        (b"[1, 2]", {}, 400),
        (b'{"content": {}}', {}, 400),
        (b'{"event": "im_receive_msg", "content": "not json"}', {}, 400),
        (b'{"event": "im_receive_msg", "content": {"text": "x"}}', {}, 400),  # no customer
        (b"x" * (SETTINGS.max_body_bytes + 1), {}, 413),
        (b"event=im_receive_msg", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b"--b\r\n", {"Content-Type": "multipart/form-data; boundary=b"}, 415),
    ]
    for body, extra, status in cases:
        headers = {
            "Content-Type": "application/json",
            "X-Douyin-Signature": signature(sim.client_secret, body),
            **extra,
        }
        got, answer = await post(h.url, body, headers)
        assert got == status, (body[:40], got, answer)
        assert answer["err_no"] == status and answer["err_msg"]
    assert h.store.count_events() == 0
    await h.run(sim.say, "buyer_ok", "还活着吗")
    assert len(await h.replies("buyer_ok", 1)) == 1


async def test_without_secrets_the_channel_answers_503(monkeypatch, tmp_path):
    for name in ("CLIENT_KEY", "CLIENT_SECRET", "ACCOUNT_OPEN_ID", "ACCESS_TOKEN"):
        monkeypatch.delenv(f"XIAOER_DOUYIN_{name}", raising=False)
    channel = DouyinInput.from_credentials({"client_key_env": "XIAOER_DOUYIN_CLIENT_KEY"})
    assert isinstance(channel, DouyinInput) and channel.config is None
    assert "XIAOER_DOUYIN_CLIENT_SECRET" in channel.missing  # type: ignore[attr-defined]
    channel.service.store = DouyinStore(tmp_path / "d.db")  # type: ignore[attr-defined]
    server, sock, url = await start_server(channel, FakeAssistant())  # type: ignore[arg-type]
    try:
        status, answer = await post(url, b"{}", {"Content-Type": "application/json"})
        assert status == 503 and answer["error"] == "not_configured"
    finally:
        await stop_server(server, sock, channel)  # type: ignore[arg-type]


def test_credentials_from_the_environment(monkeypatch):
    env = {
        "XIAOER_DOUYIN_CLIENT_KEY": "ck",
        "XIAOER_DOUYIN_CLIENT_SECRET": "cs",
        "XIAOER_DOUYIN_ACCOUNT_OPEN_ID": "acc",
        "XIAOER_DOUYIN_ACCESS_TOKEN": "tok",
        "XIAOER_DOUYIN_TOKEN_EXPIRES_AT": "1900000000",
        "XIAOER_DOUYIN_BASE_URL": "http://127.0.0.1:1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    config, missing = config_from_credentials({"base_url": "https://open.douyin.com"})
    assert missing == [] and config is not None
    assert (config.client_key, config.base_url, config.token_expires_at) == (
        "ck", "http://127.0.0.1:1", 1900000000.0,
    )  # fmt: skip
    assert "cs" not in repr(config) and "tok" not in repr(config)


def test_the_simulator_refuses_badly_shaped_sends():
    sim = DouyinSimulator()
    sim.customer("c1")
    ok_reply = {"to_user_id": "c1", "scene": "im_enter_direct_msg",
                "content": {"msg_type": 1, "text": {"text": "hi"}}}  # fmt: skip
    assert sim._check_body(ok_reply) == ""
    assert "msg_id" in sim._check_body({**ok_reply, "scene": "im_replay_msg", "msg_id": "nope"})
    assert "text.text" in sim._check_body({**ok_reply, "content": {"msg_type": 1, "text": {}}})
    assert "customer" in sim._check_body({**ok_reply, "to_user_id": "stranger"})
    assert "scene" in sim._check_body({**ok_reply, "scene": "im_reply_msg"})
    assert json.dumps(sim._answer(0, "", "m1"))  # the spec's answer shape


async def test_a_scripted_conversation_is_played_and_printed(h: Harness, tmp_path, capsys):
    from xiaoer.douyin.simulator import play_script

    h.channel.service.greetings = GreetingSettings(quiet_events=())
    script = tmp_path / "conversation.yml"
    script.write_text(
        "customer: buyer_demo_001\nnickname: 张三\nsteps:\n"
        "  - enter: true\n  - say: 选项\n  - say: '1'\n  - image: https://img.example/a.jpg\n"
        "  - merchant: 我来处理\n  - say: 好的\n",
        encoding="utf-8",
    )
    silent = await h.run(play_script, h.sim, script, 0.3)
    out = capsys.readouterr().out
    assert "顾客收到: 欢迎" in out and "1. T恤 · 待发货" in out
    assert "顾客收到: 收到：[图片]" in out
    # the last step: the bot stays quiet after the merchant answered, and the script says
    # why (an explained silence is no failure of the script)
    assert "（没有回复：机器人已暂停，商家正在接待）" in out
    assert silent == 0


# --- the simulator explains silence (issue 19) -------------------------------------------
async def test_a_message_to_a_paused_bot_is_explained_at_once(h: Harness):
    from xiaoer.douyin.simulator import play_step

    await h.run(h.sim.say, "buyer_p", "你好")
    await h.replies("buyer_p", 1)
    await h.run(h.sim.merchant_says, "buyer_p", "我是店长，这单我来处理")
    await h.channel.drain(5)
    shown: list[tuple[float, str]] = []
    started = time.monotonic()
    result = await h.run(
        play_step, h.sim, "buyer_p", {"say": "还在吗"}, 0.3,
        show=lambda note: shown.append((time.monotonic() - started, note)),
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.replies == [] and result.silence == "（没有回复：机器人已暂停，商家正在接待）"
    assert [note for _, note in shown] == [result.silence]
    assert shown[0][0] < 1.0 and took < 2.0  # at once, not after the 30 s reply timeout


async def test_a_follow_without_a_greeting_is_explained_at_once(h: Harness):
    from xiaoer.douyin.simulator import play_step

    h.channel.service.greetings = GreetingSettings(quiet_events=())
    await h.run(h.sim.say, "fan_talked", "你好")
    await h.replies("fan_talked", 1)
    await h.channel.drain(5)
    started = time.monotonic()
    result = await h.run(play_step, h.sim, "fan_talked", {"follow": True}, 0.3)
    assert result.silence == "（30 分钟内刚聊过，不再打招呼）" and result.replies == []
    assert time.monotonic() - started < 2.0
    # greeted once: entering the chat right after is not greeted again, and says so
    greeted = await h.run(play_step, h.sim, "fan_new", {"follow": True}, 0.3)
    assert greeted.silence == "" and greeted.replies[0].text.startswith("欢迎")
    again = await h.run(play_step, h.sim, "fan_new", {"enter": True}, 0.3)
    assert again.silence == "（30 分钟内已打过招呼，不再重复）" and again.replies == []


async def test_a_message_to_an_active_bot_carries_no_explanation(h: Harness):
    delivery = await h.run(h.sim.say, "buyer_q", "你好")
    assert delivery.ok and delivery.no_reply == "" and delivery.answer == {
        "err_no": 0, "err_msg": "success",
    }  # fmt: skip


def test_the_simulator_does_not_print_sanics_production_banner(monkeypatch, caplog):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # Sanic warns on a terminal
    caplog.set_level("DEBUG")
    with running_simulator() as simulator:
        assert simulator.base_url
    assert not [r for r in caplog.records if "PRODUCTION" in r.getMessage()]


# --- the database down longer than the platform's retries: the local spool -------------------
async def test_webhooks_during_a_database_outage_are_spooled_then_answered_once_in_order(
    h: Harness, assistant, tmp_path, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    from xiaoer.douyin.spool import Spool

    spool = Spool(tmp_path / "spool" / "douyin-spool.jsonl")
    h.channel.service._spool = spool
    record = h.store.record

    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(h.store, "record", down)
    monkeypatch.setattr("xiaoer.douyin.workers.SETTLE_SECONDS", 0.1)
    now = int(time.time() * 1000)
    contents = [text_content(h.sim, "buyer_db", f"第{i}句", f"m-db{i}", now + i) for i in range(3)]
    for content in contents:
        got = await h.run(h.sim.deliver, "im_receive_msg", content, from_user_id="buyer_db")
        assert got.statuses == [200]  # kept on disk: acknowledged, no retry needed
    # the platform delivers one again (a duplicate): kept, recorded once later
    await h.run(h.sim.deliver, "im_receive_msg", contents[1], from_user_id="buyer_db")
    assert len(spool.path.read_text(encoding="utf-8").splitlines()) == 4
    assert h.store.count_events() == 0 and assistant.seen == []

    monkeypatch.setattr(h.store, "record", record)  # the database is back
    assert await h.channel.service.import_spool() == 3
    await h.replies("buyer_db", 3)
    await h.channel.drain(5)
    assert [t for _, t, _ in assistant.seen] == ["第0句", "第1句", "第2句"]
    assert [r.answered for r in h.sim.replies("buyer_db")] == ["m-db0", "m-db1", "m-db2"]
    assert spool.size() == 0
    assert await h.channel.service.import_spool() == 0
