"""End-to-end: the real action and Rasa servers behind the Douyin channel, the platform
played by the simulator (signed webhooks in, the send API out). One stack per module."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.stack import Stack, running_stack
from xiaoer.douyin.simulator import DouyinSimulator, Received, running_simulator
from xiaoer.douyin.store import DouyinStore

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def douyin(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, DouyinSimulator]]:
    workdir = tmp_path_factory.mktemp("stack-douyin")
    # the merchant's settings, with greetings allowed at any hour (tests run day and night)
    settings = yaml.safe_load((PROJECT_ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
    settings["douyin"]["greeting"]["quiet_hours"] = {"start": "00:00", "end": "00:00"}
    settings["douyin"]["reorder_window_seconds"] = 0.1
    # the worker's Douyin jobs (outbox resend, pause expiry) every second
    settings["douyin"]["outbox_resend_seconds"] = 1
    settings["douyin"]["sweep_seconds"] = 1
    config = workdir / "xiaoer.yml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    with running_simulator() as sim:
        env = {**sim.env(), "XIAOER_CONFIG": str(config)}
        with running_stack(trained_model, workdir, env_extra=env) as stack:
            sim.webhook_url = f"{stack.rasa_url}/webhooks/douyin/webhook"
            stack.fake = sim
            yield stack, sim


def customer() -> str:
    return f"dy-{uuid.uuid4().hex[:10]}"


def turn(sim: DouyinSimulator, who: str, text: str, **kwargs) -> str:
    before = len(sim.replies(who))
    delivery = sim.say(who, text, **kwargs)
    assert delivery.statuses == [200], delivery
    return reply_text(sim.wait_quiet(who, before, settle=1.0, timeout=60))


def reply_text(received: list[Received]) -> str:
    text = "\n".join(r.text for r in received)
    assert not re.search(r"\{\w+\}", text), f"unfilled placeholder in: {text}"
    return text


def option_number(text: str, marker: str) -> str:
    """The number of the numbered option whose line contains ``marker``."""
    for line in text.splitlines():
        match = re.match(r"^(\d+)\. (.*)$", line.strip())
        if match and marker in match.group(2):
            return match.group(1)
    raise AssertionError(f"no option with {marker!r} in:\n{text}")


def tracker_events(stack: Stack, sender: str) -> list[dict]:
    r = requests.get(
        f"{stack.rasa_url}/conversations/{sender}/tracker",
        params={"token": stack.token},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["events"]


def test_order_status_of_a_known_buyer_without_typing_the_order_id(douyin):
    stack, sim = douyin
    who = "buyer_demo_001"
    options = turn(sim, who, "我的快递到哪了")
    assert "回复数字" in options and "尾号0002" in options  # the buyer's own orders
    answer = turn(sim, who, option_number(options, "尾号0002"))
    assert "SF1234567890123" in answer and "已发货" in answer
    assert sim.rejected == []
    events = tracker_events(stack, who)
    user = [e for e in events if e["event"] == "user" and e.get("input_channel") == "douyin"]
    assert user[0]["metadata"]["buyer_id"] == who
    assert user[-1]["text"].startswith("/inform_order_id")  # the number became the button


def test_quality_issue_with_a_photo(douyin):
    stack, sim = douyin
    who = "buyer_demo_001"
    options = turn(sim, who, "收到的鞋子开胶了，质量太差")
    asked = turn(sim, who, option_number(options, "尾号0007"))
    assert "照片" in asked
    before = len(sim.replies(who))
    sim.send_image(who, "https://img.example/douyin-shoe.jpg")
    confirm = reply_text(sim.wait_quiet(who, before, settle=1.0, timeout=60))
    assert "已附照片" in confirm
    done = turn(sim, who, option_number(confirm, "确认提交"))
    assert "售后单号 AS" in done
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    reasons = db.execute(
        "SELECT reason FROM after_sales WHERE order_id = '6938271045123400007'"
    ).fetchall()
    assert any("https://img.example/douyin-shoe.jpg" in r for (r,) in reasons), reasons


def test_duplicate_deliveries_are_answered_once(douyin):
    stack, sim = douyin
    who = customer()
    first = sim.say(who, "你好", duplicate="same_msg_id")
    sim.wait_quiet(who, 0, settle=1.5, timeout=60)
    sim.say(who, "发什么快递", duplicate="new_msg_id")
    sim.wait_quiet(who, len(sim.replies(who)), settle=2.0, timeout=60)
    answered = Counter(r.answered for r in sim.replies(who))
    assert len(answered) == 2 and first.statuses == [200]
    texts = [r.text for r in sim.replies(who)]
    assert len(texts) == len(set(texts)), texts
    user = [e for e in tracker_events(stack, who) if e["event"] == "user"]
    assert [e["text"] for e in user] == ["你好", "发什么快递"]


def test_new_follower_and_returning_customer_are_greeted(douyin):
    stack, sim = douyin
    fan = customer()
    sim.follow(fan, "小新")
    [greeting] = sim.wait_quiet(fan, 0, settle=1.0, timeout=60)
    assert "小二优选旗舰店" in greeting.text or "店小二" in greeting.text
    assert greeting.scene == "im_enter_direct_msg"
    # the conversation now belongs to the Douyin channel: it answers like any other; the
    # greeting introduced the bot already, so a "你好" gets a brief reply (issue 12)
    assert "在" in turn(sim, fan, "你好")
    sim.enter("buyer_demo_002", "李四")
    [welcome] = sim.wait_quiet("buyer_demo_002", 0, settle=1.0, timeout=60)
    # the enter event carries no nickname: "亲" until the customer has written once
    assert "店小二" in welcome.text and "亲" in welcome.text
    assert sim.rejected == []


def test_a_human_answer_in_the_app_pauses_the_bot(douyin):
    stack, sim = douyin
    who = customer()
    turn(sim, who, "你好")
    sim.merchant_says(who, "您好，我是店长，这单我亲自跟进")
    before = len(sim.replies(who))
    sim.say(who, "好的，麻烦快点")
    assert sim.wait_replies(who, before + 1, timeout=4) == sim.replies(who)[:before]
    events = tracker_events(stack, who)
    assert any(e["event"] == "bot" and "店长" in (e.get("text") or "") for e in events)
    assert any(e["event"] == "pause" for e in events)
    assert any(e["event"] == "user" and e.get("text") == "好的，麻烦快点" for e in events)


def test_a_reply_the_platform_refused_reaches_the_customer_through_the_worker(douyin):
    stack, sim = douyin
    who = customer()
    store = DouyinStore(stack.workdir / "var" / "xiaoer.db")
    sim.fail_next(times=4, status=502)  # the first try and the send API's 3 retries
    delivery = sim.say(who, "发什么快递")
    assert delivery.statuses == [200]
    [reply] = sim.wait_quiet(who, 0, settle=1.0, timeout=60)
    assert reply.answered == delivery.server_message_id and "快递" in reply.text
    assert store.outbox_pending(who) == []
    assert sim.rejected == []


def test_the_worker_resumes_the_bot_when_the_pause_is_over(douyin):
    stack, sim = douyin
    who = customer()
    turn(sim, who, "你好")
    sim.merchant_says(who, "您好，我是店长")
    store = DouyinStore(stack.workdir / "var" / "xiaoer.db")
    deadline = time.monotonic() + 30
    while not store.conversation(who).paused_until:
        assert time.monotonic() < deadline, "the bot was not paused"
        time.sleep(0.2)
    store.update_conversation(who, paused_until=time.time() - 1)  # the pause is over
    while not any(e["event"] == "resume" for e in tracker_events(stack, who)):
        assert time.monotonic() < deadline, "the worker did not resume the bot"
        time.sleep(0.5)
    assert store.conversation(who).paused_until == 0.0
    assert "快递" in turn(sim, who, "发什么快递")


def test_fifty_customers_at_once_every_reply_once_and_in_order(douyin):
    stack, sim = douyin
    customers = [f"dy-load-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(50)]
    questions = ["你好", "发什么快递", "支持七天无理由吗"]
    sent: dict[str, list[str]] = {}

    def chat(who: str) -> None:
        deliveries = [sim.say(who, q) for q in questions]  # without waiting for answers
        # taken at the first try, or at a retry of the platform on a loaded machine
        assert all(d.ok for d in deliveries), [d.statuses for d in deliveries]

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(chat, customers))
    for who in customers:
        sent[who] = list(sim.customers[who].sent)  # in the order the customer sent them
    deadline = time.monotonic() + 240
    for who in customers:  # until every message of every customer is answered
        while {r.answered for r in sim.replies(who)} < set(sent[who]):
            assert time.monotonic() < deadline, f"{who} still waits for answers"
            sim.wait_replies(who, len(sim.replies(who)) + 1, timeout=2)
    time.sleep(2)  # a duplicate would come now
    for who in customers:
        received = sim.replies(who)
        answered = [r.answered for r in received]
        # every message answered, in the customer's order (a turn may be several messages)
        assert list(dict.fromkeys(answered)) == sent[who], (who, answered, sent[who])
        pairs = [(r.answered, r.text) for r in received]
        twice = [r for r in received if pairs.count((r.answered, r.text)) > 1]
        assert not twice, f"delivered twice to {who}: {twice}"
    assert sim.rejected == []


# --- issue 11: a Douyin buyer reaches only their own orders ---------------------------------------
def test_another_buyers_order_is_answered_like_an_unknown_one(douyin):
    stack, sim = douyin
    who = "buyer_demo_002"  # 6938271045123400001 and ...004 belong to buyer_demo_001
    theirs = turn(sim, who, "订单6938271045123400001到哪了")
    unknown = turn(sim, who, "订单6938271045123499999到哪了")
    for text, order_id in ((theirs, "6938271045123400001"), (unknown, "6938271045123499999")):
        assert order_id in text and ("没有查到" in text or "没有找到" in text), text
    assert "待发货" not in theirs and "张三" not in theirs
    turn(sim, who, "不用了")
    before = (
        sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
        .execute("SELECT status FROM orders WHERE order_id = '6938271045123400004'")
        .fetchone()
    )
    cancel = turn(sim, who, "帮我取消订单6938271045123400004")
    assert "没有查到" in cancel or "没有找到" in cancel, cancel
    assert "手机号后4位" not in cancel and "确认取消" not in cancel and "确认要取消" not in cancel
    again = turn(sim, who, "6938271045123400004")
    assert "已为您取消" not in again and "确认要取消" not in again
    after = (
        sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
        .execute("SELECT status FROM orders WHERE order_id = '6938271045123400004'")
        .fetchone()
    )
    assert before == after == ("unpaid",)
