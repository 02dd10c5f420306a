"""The REST channel in a real Sanic server, with a recording message handler in place of
Rasa's agent: limits, the reply contract and the inbox token (issue 11)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from xiaoer.channels.rest import HANDOFF_LIMITED, RestSettings, XiaoerRestInput


class Server:
    def __init__(self, url: str, received: list[UserMessage]) -> None:
        self.url, self.received = url, received

    async def post(self, body: dict, **headers: str) -> tuple[int, object, dict]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/webhook", json=body, headers=headers) as r:
                return r.status, await r.json(content_type=None), dict(r.headers)


@pytest.fixture()
async def server(data_dir, monkeypatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(Sanic, "test_mode", True)
    received: list[UserMessage] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message)
        await message.output_channel.send_text_message(message.sender_id, "收到")

    channel = XiaoerRestInput(
        RestSettings(per_sender_per_minute=3, per_address_per_minute=5,
                     new_handoffs_per_address_per_hour=1)
    )  # fmt: skip
    app = Sanic(f"rest_test_{uuid.uuid4().hex[:8]}")
    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/rest")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await srv.startup()
    await srv.after_start()
    yield Server(f"http://127.0.0.1:{port}/webhooks/rest", received)
    await srv.before_stop()
    srv.close()
    await srv.wait_closed()
    await srv.after_stop()
    sock.close()


async def test_per_address_limit_across_new_senders(server: Server):
    statuses = [(await server.post({"sender": f"s{i}", "message": "你好"}))[0] for i in range(7)]
    assert statuses == [200] * 5 + [429, 429]
    status, body, headers = await server.post({"sender": "another", "message": "你好"})
    assert status == 429 and body["error"] == "rate_limited" and "频繁" in body["message"]
    assert int(headers["Retry-After"]) >= 1
    assert [m.sender_id for m in server.received] == [f"rest:s{i}" for i in range(5)]


async def test_per_sender_limit_and_the_reply_contract(server: Server):
    answers = [await server.post({"sender": "same", "message": f"第{i}条"}) for i in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert answers[0][1] == [{"recipient_id": "same", "text": "收到"}]  # Rasa's REST contract
    assert answers[0][2].get("X-Xiaoer-Inbox-Token")
    assert not answers[1][2].get("X-Xiaoer-Inbox-Token")  # only the first reply hands it out
    assert [m.text for m in server.received] == ["第0条", "第1条", "第2条"]


async def test_the_channel_marks_messages_only_by_its_own_count(server: Server):
    await server.post({"sender": "c1", "message": "hi", "metadata": {HANDOFF_LIMITED: True}})
    assert HANDOFF_LIMITED not in server.received[-1].metadata  # never from the client
