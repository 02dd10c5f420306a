"""Issue 11, the attacks over HTTP against the real servers (action server, Rasa server,
console), each asserting the refusal and that the stores did not change.

One stack with strict REST limits (4 messages per sender per minute, 2 new handoffs per
address per hour) and DEBUG logs (Rasa then logs every customer message).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

PHONE = "13912345678"
RASA_METADATA = ("assistant_id", "model_id")  # what Rasa itself adds to user events
# what the server adds: the channel the message really came in on (xiaoer/nlu/multi.py)
SERVER_METADATA = (*RASA_METADATA, "channel")


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("security")
    rest = {
        "rate_limit": {"per_sender_per_minute": 4, "per_address_per_minute": 0},
        "new_handoffs_per_address_per_hour": 2,
    }
    with running_stack(
        trained_model,
        workdir,
        token=secrets.token_urlsafe(24),
        console=True,
        rest=rest,
        env_extra={"LOG_LEVEL": "DEBUG"},
    ) as s:
        s.say("warm-up", "订单6938271045123400002到哪了")  # the shop is seeded
        yield s


def sender() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


def db(stack: Stack, name: str) -> sqlite3.Connection:
    return sqlite3.connect(stack.workdir / "var" / name)


def shop_digest(stack: Stack) -> str:
    """Every row of the shop (orders, addresses, after-sales cases)."""
    from xiaoer.shop.sqlite_backend import SHOP_TABLES

    digest = hashlib.sha256()
    # the shop's tables live in the project database beside the other stores' tables
    with db(stack, "xiaoer.db") as conn:
        for table in sorted(t.name for t in SHOP_TABLES):
            digest.update(
                repr(conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()).encode()
            )
    return digest.hexdigest()


def tracker_events(stack: Stack, conversation: str) -> list[dict]:
    r = requests.get(
        f"{stack.rasa_url}/conversations/{requests.utils.quote(conversation, safe=':@')}/tracker",
        params={"token": stack.token, "include_events": "ALL"},
        timeout=10,
    )
    r.raise_for_status()
    return list(r.json().get("events") or [])


def user_texts(stack: Stack, conversation: str) -> list[str]:
    return [e.get("text") for e in tracker_events(stack, conversation) if e["event"] == "user"]


def handoffs(stack: Stack) -> list[tuple[str, str]]:
    with db(stack, "xiaoer.db") as conn:
        return conn.execute("SELECT sender_id, reason FROM handoff_requests").fetchall()


# --- finding 2: nothing internal reachable ------------------------------------------------
def listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_every_server_listens_on_loopback_only(stack: Stack):
    for url in (stack.rasa_url, stack.actions_url, stack.console_url):
        port = int(url.rsplit(":", 1)[1])
        addresses = listening_addresses(port)
        assert addresses == {"0100007F"}, f"{url} listens on {addresses} (0100007F = 127.0.0.1)"


def action_call(action: str, buyer_id: str = "buyer_demo_001") -> dict:
    """A made-up tracker claiming a buyer, as an attacker would send it."""
    return {
        "next_action": action,
        "sender_id": "attacker",
        "version": "3.6.2",
        "domain": {},
        "tracker": {
            "sender_id": "attacker",
            "slots": {"order_id": "6938271045123400004", "cancel_confirmed": True},
            "latest_message": {"text": "取消", "intent": {"name": "affirm"}, "entities": [],
                               "metadata": {"buyer_id": buyer_id}},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }  # fmt: skip


@pytest.mark.parametrize("header", [None, "wrong-secret", "签名"])
def test_the_action_server_refuses_requests_without_the_secret(stack: Stack, header):
    before = shop_digest(stack)
    assert before != hashlib.sha256().hexdigest()
    headers = {} if header is None else {"X-Xiaoer-Action-Token": header.encode("utf-8")}
    for action in ("action_cancel_order", "action_list_orders", "action_order_status"):
        r = requests.post(
            f"{stack.actions_url}/webhook", json=action_call(action), headers=headers, timeout=10
        )
        assert r.status_code == 401, r.text
        assert "events" not in r.json()
    assert (
        requests.get(f"{stack.actions_url}/actions", headers=headers, timeout=10).status_code == 401
    )
    assert shop_digest(stack) == before
    # the Rasa server holds the secret: conversations still run actions
    assert requests.get(f"{stack.actions_url}/health", timeout=10).status_code == 200
    good = {"X-Xiaoer-Action-Token": stack.action_token}
    assert requests.get(f"{stack.actions_url}/actions", headers=good, timeout=10).status_code == 200


# --- finding 4: secrets -------------------------------------------------------------------
def test_no_secret_on_any_command_line(stack: Stack):
    """What ``ps`` shows every local user: the command lines of all processes."""
    assert stack.token and stack.action_token
    started = []  # the servers this test started (children of this process)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid():
            started.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
        assert stack.token.encode() not in cmdline, f"API token visible in ps: pid {proc.name}"
        assert stack.action_token.encode() not in cmdline, f"action secret in ps: {proc.name}"
    joined = "\n".join(started)
    for server in (
        "xiaoer.servers.rasaserver",
        "xiaoer.servers.actionserver",
        "xiaoer.console",
        "xiaoer.worker",
    ):
        assert server in joined, joined
    assert "--auth-token" not in joined


def test_var_and_its_files_are_private(stack: Stack):
    stack.say(sender(), "你好")  # databases written
    var = stack.workdir / "var"
    paths = [var, *var.rglob("*")]
    assert any(p.name == "xiaoer.db" for p in paths) and any(p.suffix == ".db" for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    for path in [stack.workdir / "tracker.db", *stack.workdir.glob("*.log")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


# --- finding 3: conversations per channel, inbox token --------------------------------------
def test_a_rest_sender_cannot_write_into_a_douyin_conversation(stack: Stack):
    open_id = f"_000{uuid.uuid4().hex[:20]}"  # a Douyin customer's open id
    r = requests.post(
        f"{stack.rasa_url}/conversations/{open_id}/tracker/events",
        params={"token": stack.token},
        json=[{"event": "user", "text": "我的订单到哪了", "input_channel": "douyin",
               "parse_data": {"intent": {"name": "order_status", "confidence": 1.0}}}],
        timeout=10,
    )  # fmt: skip
    r.raise_for_status()
    before = tracker_events(stack, open_id)
    replies = stack.say(open_id, "我是你的客服，请把订单号发给我")
    assert replies and all(m["recipient_id"] == open_id for m in replies)
    assert tracker_events(stack, open_id) == before  # the Douyin conversation is untouched
    assert user_texts(stack, Stack.conversation(open_id)) == ["我是你的客服，请把订单号发给我"]


def test_the_inbox_needs_the_token_of_the_first_reply(stack: Stack):
    user, other = sender(), sender()
    first = requests.post(stack.webhook, json={"sender": user, "message": "你好"}, timeout=60)
    token = first.headers.get("X-Xiaoer-Inbox-Token")
    assert first.status_code == 200 and isinstance(first.json(), list) and token
    again = requests.post(stack.webhook, json={"sender": user, "message": "在吗"}, timeout=60)
    assert again.status_code == 200 and "X-Xiaoer-Inbox-Token" not in again.headers
    stack.say(other, "你好")
    url = f"{stack.rasa_url}/webhooks/rest/inbox"
    for headers in ({}, {"X-Xiaoer-Inbox-Token": "guess"},
                    {"X-Xiaoer-Inbox-Token": stack.inbox_tokens[other]}):  # fmt: skip
        r = requests.get(url, params={"sender": user}, headers=headers, timeout=10)
        assert r.status_code == 403 and r.json()["error"] == "invalid_inbox_token"
    r = requests.get(url, params={"sender": user}, headers={"X-Xiaoer-Inbox-Token": token})
    assert r.status_code == 200 and r.json() == {"messages": []}


# --- finding 5: limits ------------------------------------------------------------------------
def test_an_oversized_body_is_refused_before_it_is_read(stack: Stack):
    host, port = stack.rasa_url.removeprefix("http://").split(":")
    before = len(tracker_events(stack, Stack.conversation("big")))
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
            b'{"sender": "big", "message": "'
        )  # the 50 MB never follow: the answer must come without them
        started = time.monotonic()
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5
    assert len(tracker_events(stack, Stack.conversation("big"))) == before


def test_a_long_conversation_still_runs_its_actions(stack: Stack):
    """Every action call carries the whole tracker: a conversation of a few hundred turns
    is larger than the public request cap, and the action server must still take it."""
    from xiaoer.servers.actions_down import replies as actions_down_replies

    who = sender()
    conversation = Stack.conversation(who)
    assert stack.say(who, "在吗")
    turn = "我想问一下这个商品的尺码和颜色，还有什么时候能发货，快递是哪一家的呀" * 3
    url = f"{stack.rasa_url}/conversations/{requests.utils.quote(conversation, safe=':@')}"
    for _ in range(8):  # 8 x 300 events, each batch under the public cap: ~2 MB of tracker
        batch = []
        for _ in range(150):
            batch.append(
                {"event": "user", "text": turn, "parse_data": {"intent": {"name": "greet"}}}
            )
            batch.append({"event": "bot", "text": "亲，这款有现货，48小时内发货，默认中通快递哦"})
        r = requests.post(
            f"{url}/tracker/events", params={"token": stack.token}, json=batch, timeout=30
        )
        assert r.status_code == 200, r.text[:200]
    size = len(requests.get(f"{url}/tracker", params={"token": stack.token}, timeout=30).content)
    assert size > 1024 * 1024  # larger than server.max_body_kb (512 KB)
    texts = [m.get("text") or "" for m in stack.say(who, "你好")]
    assert texts and not set(texts) & set(actions_down_replies()), texts
    assert "exceeds the size limit" not in stack.log("actions")


def test_a_sender_over_the_rate_limit_gets_429(stack: Stack):
    user = sender()
    statuses = []
    for i in range(6):
        r = requests.post(stack.webhook, json={"sender": user, "message": f"你好{i}"}, timeout=60)
        statuses.append(r.status_code)
    assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    assert r.json()["error"] == "rate_limited" and "频繁" in r.json()["message"]
    assert int(r.headers["Retry-After"]) > 0
    assert user_texts(stack, Stack.conversation(user)) == [f"你好{i}" for i in range(4)]


def test_rest_metadata_outside_the_allow_list_is_ignored(stack: Stack):
    user = sender()
    metadata = {
        "buyer_id": "buyer_demo_001", "nickname": "管理员", "handoff_limited": False,
        "lead_card": {"card_id": "c1", "card_data": [{"label": "手机号", "value": PHONE}]},
        "product_id": "P1001", "is_external": True, "channel": "douyin",
    }  # fmt: skip
    r = requests.post(
        stack.webhook, json={"sender": user, "message": "这个多少钱", "metadata": metadata}
    )
    assert r.status_code == 200
    user_events = [
        e for e in tracker_events(stack, Stack.conversation(user)) if e["event"] == "user"
    ]
    stored = user_events[-1]["metadata"]
    kept = {k: v for k, v in stored.items() if k not in SERVER_METADATA}
    assert kept == {"product_id": "P1001"}
    assert stored.get("channel") == "rest"  # the server's, never the client's
    with db(stack, "xiaoer.db") as conn:
        rows = conn.execute("SELECT COUNT(*) FROM leads WHERE source_sender_id = ?",
                            (Stack.conversation(user),)).fetchone()  # fmt: skip
    assert rows[0] == 0  # the forged lead card created no lead


def test_new_senders_cannot_flood_the_handoff_queue(stack: Stack):
    before = handoffs(stack)
    texts = []
    for _ in range(4):
        texts.append(" ".join(m.get("text") or "" for m in stack.say(sender(), "/complain")))
    added = [h for h in handoffs(stack) if h not in before]
    assert len(added) == 2  # the cap: 2 new handoffs per address per hour
    assert all("稍后再试" in t for t in texts[2:]), texts


# --- finding 9: masking in every process's log -------------------------------------------------
def test_phone_numbers_are_masked_in_every_log(stack: Stack):
    stack.say(sender(), f"我的电话是{PHONE}，有货请通知我")
    # the action server logs the unknown action's name (with the phone) as an error
    requests.post(
        f"{stack.actions_url}/webhook",
        json=action_call(f"action_{PHONE}"),
        headers={"X-Xiaoer-Action-Token": stack.action_token},
        timeout=10,
    )
    time.sleep(1.5)  # the worker's event follower picks the message up
    logs = {name: stack.log(name) for name in ("rasa", "actions", "console", "worker")}
    assert PHONE[:3] + "****" + PHONE[-4:] in logs["rasa"]  # DEBUG: Rasa logs the message
    assert "139****5678" in logs["actions"]
    for name, text in logs.items():
        assert PHONE not in text, f"full phone number in {name}.log"
        assert "138****8000" in text and "13800138000" not in text, f"{name}: no masking"
