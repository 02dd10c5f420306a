"""Faults of the embedded default (issue 14), with the real servers and the Douyin
simulator: the action server killed mid-conversation, the platform's send API down.

One stack for the module (SQLite, the worker running every Douyin job each second).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from xiaoer.devtools.stack import Stack, running_stack
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator
from xiaoer.douyin.store import DouyinStore
from xiaoer.handoff.store import HandoffStore

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ORDER = "6938271045123400002"  # buyer_demo_001's order, shipped
POLITE = ("系统暂时", "转人工")


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("faults-embedded")
    douyin = {"reorder_window_seconds": 0.1, "outbox_resend_seconds": 1, "sweep_seconds": 1}
    with running_simulator() as sim:
        with running_stack(
            trained_model, workdir, env_extra=sim.env(), settings={"douyin": douyin}
        ) as s:
            sim.webhook_url = f"{s.rasa_url}/webhooks/douyin/webhook"
            s.fake = sim
            yield s


def rest_user() -> str:
    return f"fault-{uuid.uuid4().hex[:8]}"


def texts(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def douyin_turn(sim: DouyinSimulator, who: str, text: str) -> str:
    before = len(sim.replies(who))
    delivery = sim.say(who, text)
    assert delivery.statuses == [200], delivery
    return "\n".join(r.text for r in sim.wait_quiet(who, before, settle=1.5, timeout=60))


def tracebacks(stack: Stack, name: str) -> int:
    return stack.log(name).count("Traceback")


# --- 1. the action server killed mid-conversation ----------------------------------------
def test_the_action_server_killed_mid_conversation(stack: Stack):
    sim: DouyinSimulator = stack.fake
    rest = rest_user()
    buyer = "buyer_demo_001"  # a Douyin buyer of the demo shop (their orders are listed)
    assert ORDER in texts(stack.say(rest, f"订单{ORDER}到哪了"))  # the action server works
    assert douyin_turn(sim, buyer, "你好")
    traces_before = tracebacks(stack, "rasa")

    stack.kill_actions()
    try:
        # REST: one reply, polite, in Chinese, a human offered (the buttons), nothing else
        replies = stack.say(rest, f"订单{ORDER}到哪了")
        assert len(replies) == 1, replies
        assert all(p in replies[0]["text"] for p in POLITE), replies
        assert "没理解" not in replies[0]["text"] and "没明白" not in replies[0]["text"]
        assert [b["title"] for b in replies[0]["buttons"]] == ["转人工", "不用了"]
        # a form whose validation runs on the action server: the same single answer
        other = rest_user()
        replies = stack.say(other, "我要取消订单")
        assert len(replies) == 1 and "转人工" in replies[0]["text"], replies
        # Douyin: one platform message, the offer as numbered options
        answer = douyin_turn(sim, buyer, "我的快递到哪了")
        assert all(p in answer for p in POLITE) and "1. 转人工" in answer, answer
        assert len(sim.replies(buyer)) == 2  # 你好's answer and this one: no storm
        # the log names the action server once per failed action, without a traceback
        time.sleep(0.5)
        log = stack.log("rasa")
        assert tracebacks(stack, "rasa") == traces_before, log[-3000:]
        assert 3 <= log.count("action server unavailable") <= 6, log[-3000:]
    finally:
        stack.restart_actions()

    # back: the same conversations go on normally
    answer = texts(stack.say(rest, f"订单{ORDER}到哪了"))
    assert ORDER in answer and "系统暂时" not in answer, answer
    answer = douyin_turn(sim, buyer, f"订单{ORDER}到哪了")
    assert ORDER in answer and "系统暂时" not in answer, answer
    # the human offered during the outage can still be accepted
    asker = rest_user()
    stack.kill_actions()
    try:
        assert "转人工" in texts(stack.say(asker, f"订单{ORDER}到哪了"))
    finally:
        stack.restart_actions()
    reply = texts(stack.say(asker, "/affirm"))
    assert "人工" in reply, reply
    handoffs = HandoffStore(stack.workdir / "var" / "xiaoer.db")
    assert handoffs.active_for(Stack.conversation(asker)) is not None


# --- 4. the platform's send API down -------------------------------------------------------
def test_replies_wait_for_the_send_api_and_arrive_in_order_once(stack: Stack):
    sim: DouyinSimulator = stack.fake
    store = DouyinStore(stack.workdir / "var" / "xiaoer.db")
    customers = [f"dy-down-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    questions = ["你好", "发什么快递", "支持七天无理由吗"]
    outage = 12.0
    sim.outage(outage)  # every send-API call answers 503 (the CI figure of "a minute")
    started = time.monotonic()

    def chat(who: str) -> list[str]:
        ids = []
        for question in questions:  # the customer keeps writing while the platform is down
            delivery = sim.say(who, question)
            assert delivery.statuses == [200], delivery  # webhooks are still acknowledged
            ids.append(delivery.server_message_id)
            time.sleep(0.5)
        return ids

    with ThreadPoolExecutor(max_workers=len(customers)) as pool:
        sent = dict(zip(customers, pool.map(chat, customers), strict=True))
    # while down: nothing reached anyone, everything waits in the outbox
    deadline = time.monotonic() + 30
    while len({i.sender_id for i in store.outbox_pending()} & set(customers)) < len(customers):
        assert time.monotonic() < deadline, "replies did not reach the outbox"
        time.sleep(0.3)
    assert all(not sim.replies(who) for who in customers)
    time.sleep(max(0.0, outage - (time.monotonic() - started)))

    # back up: every reply arrives, in the customer's order, once
    deadline = time.monotonic() + 60
    for who in customers:
        while {r.answered for r in sim.replies(who)} < set(sent[who]):
            assert time.monotonic() < deadline, (who, [r.text for r in sim.replies(who)])
            sim.wait_replies(who, len(sim.replies(who)) + 1, timeout=2)
    time.sleep(2)  # a duplicate would come now
    for who in customers:
        received = sim.replies(who)
        assert list(dict.fromkeys(r.answered for r in received)) == sent[who], who
        pairs = [(r.answered, r.text) for r in received]
        assert len(pairs) == len(set(pairs)), f"delivered twice to {who}: {pairs}"
        assert "快递" in received[-2].text or "快递" in "".join(r.text for r in received)
        assert all(r.at >= started + outage - 1 for r in received)
    assert store.outbox_pending() == []
    assert sim.rejected == []
    # the Rasa server said what happened, without tracebacks of the send API
    log = stack.log("rasa")
    assert "kept in the outbox" in log
    assert not re.search(r"Traceback[^\n]*\n(?:.*\n){0,30}.*douyin/client", log), log[-3000:]
    assert requests.get(f"{stack.rasa_url}/webhooks/health/ready", timeout=10).status_code == 200
