"""The whole handoff path in a real browser against the real servers.

A customer asks for a human over REST; the agent logs into the console (Debian's
Chromium driven by Playwright), sees the conversation appear in the queue without
reloading, opens it, sees the history and the customer's order, replies; the customer
receives the reply in the REST inbox; the agent hands back and the bot answers the
customer's next message. Screenshots of the queue and the conversation view are saved
to var/artifacts/, and the time from the handoff request to its row in the open queue
is printed (and written to var/artifacts/console-latency.txt).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xiaoer.core.settings import SettingsStore
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "artifacts"
ADMIN, PASSWORD = "boss", "console-pass-2026"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
MAX_QUEUE_SECONDS = 2.0


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("console-stack")
    # agents work around the clock here, so the test does not depend on the time of day
    SettingsStore(workdir / "var" / "xiaoer.db").save(
        "working_hours", {"start": "00:00", "end": "00:00"}
    )
    with running_stack(trained_model, workdir, console=True) as s:
        env = {
            **os.environ,
            "XIAOER_DATA_DIR": str(workdir / "var"),
            "XIAOER_ADMIN_PASSWORD": PASSWORD,
        }
        result = subprocess.run(
            [sys.executable, "-m", "xiaoer.cli", "create-admin", ADMIN, "--display-name", "王主管"],
            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        yield s


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # an empty user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1366, "height": 768},
            locale="zh-CN",
        )
        try:
            yield context
        finally:
            context.close()


def inbox(stack: Stack, user: str, after: int = 0) -> list[dict]:
    return stack.inbox(user, after)  # with the token the first reply handed out


def test_handoff_in_the_browser(stack: Stack, browser_context) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser_context.new_page()
    page.goto(f"{stack.console_url}/")
    assert "/login" in page.url  # no access without login
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.console_url}/")
    expect(page.locator("#live-state")).to_have_text("实时更新中", timeout=10_000)

    user = f"buyer-{uuid.uuid4().hex[:8]}"
    first = " ".join(
        m.get("text") or "" for m in stack.say(user, "帮我查下订单 6938271045123400002 到哪了")
    )
    assert "SF1234567890123" in first
    started = time.monotonic()
    handed = " ".join(m.get("text") or "" for m in stack.say(user, "转人工"))
    answered = time.monotonic()
    assert "人工客服" in handed and "分钟" in handed, handed
    row = page.locator(f'#queue-body tr:has-text("{user}")')
    row.wait_for(timeout=10_000)
    seen = time.monotonic()
    from_request, from_answer = seen - started, seen - answered
    report = (
        f"handoff request -> row in the open console queue: {from_request:.2f} s "
        f"(of which the bot's REST answer {answered - started:.2f} s; "
        f"after the answer {from_answer:.2f} s)\n"
    )
    (ARTIFACTS / "console-latency.txt").write_text(report, encoding="utf-8")
    print("\n" + report)
    assert from_answer <= MAX_QUEUE_SECONDS, report
    page.screenshot(path=str(ARTIFACTS / "console-queue.png"))

    # the bot is paused: the customer's message is stored, the customer only hears their
    # place in the queue (at most once per few minutes), then nothing
    waiting = stack.say(user, "人呢？快点帮我看看")
    assert len(waiting) == 1 and "排队" in waiting[0]["text"], waiting
    assert stack.say(user, "人呢") == []

    row.locator("a", has_text="打开").click()
    page.wait_for_url("**/handoffs/*")
    chat = page.locator("#chat")
    expect(chat).to_contain_text("帮我查下订单 6938271045123400002 到哪了")
    expect(chat).to_contain_text("SF1234567890123")  # the bot's answer
    expect(chat).to_contain_text("人呢？快点帮我看看")
    expect(page.locator("#orders")).to_contain_text("6938271045123400002")
    expect(page.locator("#orders")).to_contain_text("已发货")

    reply = "您好，我是王主管，您的包裹已经在路上啦，预计明天送达～"
    page.fill("#reply-text", reply)
    page.click("#send-btn")
    expect(chat.locator("li.msg.agent")).to_contain_text(reply, timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "console-conversation.png"))

    received = inbox(stack, user)
    assert [m["text"] for m in received] == [reply]
    # the agent's name is for the console only (issue 16): not in what the customer gets
    assert "agent_name" not in received[0] and "agent_id" not in received[0]

    page.fill("#handback-note", "已告知物流进度")
    page.click("#handback-btn")
    page.wait_for_url(f"{stack.console_url}/")
    expect(page.locator(f'#queue-body tr:has-text("{user}")')).to_have_count(0, timeout=5_000)
    back = inbox(stack, user, after=received[-1]["id"])
    # the bot is back, and the conversation's end asks once for a rating (docs/analytics.md)
    assert len(back) == 2 and "继续为您服务" in back[0]["text"], back
    assert "满意" in back[1]["text"] and "5分" in str(back[1].get("buttons")), back

    answer = " ".join(m.get("text") or "" for m in stack.say(user, "你好"))
    assert "店小二" in answer  # the bot answers again

    events = requests.get(
        f"{stack.rasa_url}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": stack.token},
        timeout=10,
    ).json()["events"]
    kinds = [e["event"] for e in events]
    assert "pause" in kinds and "resume" in kinds
    agent_lines = [e for e in events if e["event"] == "bot" and e.get("text") == reply]
    assert agent_lines and agent_lines[0]["metadata"]["agent_id"] == 1
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    assert db.execute(
        "SELECT status, note FROM handoff_requests WHERE sender_id = ?", (Stack.conversation(user),)
    ).fetchall() == [("closed", "已告知物流进度")]
