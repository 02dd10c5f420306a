"""我的会话 in real browsers (issue 16): two agents and an admin, each in their own
Chromium context (Debian's executable, Playwright), against the real Rasa, action and
console servers, customers writing over REST.

* a new customer alerts the agent who is inside another chat (toast, title count);
* unread counts rise in the agent's side list while they are in another chat, and clear
  when they open it;
* a transfer with a note appears live for both agents;
* search finds the customer by order number and by phone (masked for the agent, full for
  the admin);
* screenshots of the workspace at 1366×768 and 800 px wide are saved to var/artifacts/
  (workspace-1366.png, workspace-800.png), and at 800 px no menu entry or table cell wraps
  one character per line and quick replies are not cut off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xiaoer.agents import AgentStore
from xiaoer.core.settings import SettingsStore
from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "artifacts"
PASSWORD = "workspace-pass-2026"
ORDER = "6938271045123400002"
PHONE = "13912345678"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
LIVE = 5_000  # ms: anything live must show within this


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("workspace-stack")
    db = workdir / "var" / "xiaoer.db"
    settings = SettingsStore(db)
    settings.save("working_hours", {"start": "00:00", "end": "00:00"})  # any time of day
    settings.save(
        "quick_replies",
        [
            "{nickname}您好，这边帮您查询一下订单物流，请稍等一两分钟，马上回复您～",
            "好的，已为您登记",
        ],
    )
    agents = AgentStore(db)
    agents.create("agent_li", PASSWORD, display_name="李客服", groups=["售前", "售后"])
    agents.create("agent_zhang", PASSWORD, display_name="张客服", groups=["售前", "售后"])
    with running_stack(trained_model, workdir, console=True) as s:
        env = {
            **os.environ,
            "XIAOER_DATA_DIR": str(workdir / "var"),
            "XIAOER_ADMIN_PASSWORD": PASSWORD,
        }
        result = subprocess.run(
            [sys.executable, "-m", "xiaoer.cli", "create-admin", "boss", "--display-name", "王主管"],
            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def signed_in(browser, stack: Stack, username: str):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{stack.console_url}/login?next=/workspace")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/workspace")
    return page


def wants_human(stack: Stack, user: str, first: str) -> int:
    before = " ".join(m.get("text") or "" for m in stack.say(user, first))
    answer = " ".join(m.get("text") or "" for m in stack.say(user, "转人工"))
    assert "人工客服" in answer, (before, answer)
    import sqlite3

    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    (handoff_id,) = db.execute(
        "SELECT id FROM handoff_requests WHERE sender_id = ? AND status != 'closed'",
        (Stack.conversation(user),),
    ).fetchone()
    return int(handoff_id)


def open_chat(page, handoff_id: int) -> None:
    from playwright.sync_api import expect

    page.locator(f'.chat-item[data-id="{handoff_id}"] a').first.click()
    expect(page.locator(f'#conversation[data-id="{handoff_id}"]')).to_be_visible(timeout=LIVE)


def test_a_days_queue_from_the_workspace(stack: Stack, browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    li, zhang, boss = (signed_in(browser, stack, u) for u in ("agent_li", "agent_zhang", "boss"))
    buyer_a, buyer_b = f"buyer-{uuid.uuid4().hex[:6]}", f"buyer-{uuid.uuid4().hex[:6]}"

    # customer A asks for a human; 李客服 sees it in 待接入 without reloading and takes it
    a_id = wants_human(stack, buyer_a, f"帮我查下订单 {ORDER} 到哪了")
    expect(li.locator(f'#waiting-chats .chat-item[data-id="{a_id}"]')).to_be_visible(timeout=LIVE)
    open_chat(li, a_id)
    li.click("#take-btn")
    li.wait_for_url(f"**/workspace?chat={a_id}")
    expect(li.locator(f'#my-chats .chat-item[data-id="{a_id}"]')).to_be_visible(timeout=LIVE)
    expect(li.locator("#conv-holder")).to_have_text("李客服", timeout=LIVE)
    li.fill("#reply-text", "您好，我来帮您看看物流")
    li.click("#send-btn")
    expect(li.locator("#chat li.msg.agent")).to_contain_text("您好，我来帮您看看物流", timeout=LIVE)
    # 张客服 sees who holds it in the queue row and in the chat
    zhang.goto(f"{stack.console_url}/handoffs/{a_id}")
    expect(zhang.locator("#conv-holder")).to_have_text("李客服")
    assert zhang.locator("#take-btn").count() == 0 and zhang.locator("#reply-form").count() == 0

    # a new customer alerts 李客服 while they are inside A's chat
    b_id = wants_human(stack, buyer_b, "你好")
    toast = li.locator("#toasts .toast.new")
    expect(toast).to_contain_text("新客户等待接入", timeout=LIVE)
    expect(li).to_have_title(__import__("re").compile(r"^\(\d+\) "), timeout=LIVE)

    # 李客服 takes B; A writes again: A's unread count rises in the side list, then clears
    open_chat(li, b_id)
    li.click("#take-btn")
    li.wait_for_url(f"**/workspace?chat={b_id}")
    expect(li.locator("#conv-holder")).to_have_text("李客服", timeout=LIVE)
    stack.say(buyer_a, "还有个问题，发票怎么开？")
    stack.say(buyer_a, f"我的电话是 {PHONE}")
    badge = li.locator(f'#my-chats .chat-item[data-id="{a_id}"] .badge.unread')
    expect(badge).to_have_text("2", timeout=LIVE)
    expect(li.locator("#toasts .toast.message").first).to_contain_text("发来新消息", timeout=LIVE)
    li.screenshot(path=str(ARTIFACTS / "workspace-1366.png"))
    open_chat(li, a_id)
    expect(li.locator("#chat")).to_contain_text("发票怎么开", timeout=LIVE)
    expect(badge).to_have_count(0, timeout=LIVE)

    # 张客服 waits in his workspace; 李客服 transfers A to him with a note: both see it live
    zhang.goto(f"{stack.console_url}/workspace")
    expect(zhang.locator("#my-chats .empty")).to_be_visible()
    li.select_option("#transfer-group", "")
    li.select_option("#transfer-agent", label="张客服")
    li.fill("#transfer-note", "客户要开发票，请跟进")
    li.click("#transfer-btn")
    expect(zhang.locator("#toasts .toast.transfer")).to_contain_text("李客服 把会话", timeout=LIVE)
    expect(zhang.locator("#toasts .toast.transfer")).to_contain_text("客户要开发票")
    expect(zhang.locator(f'#my-chats .chat-item[data-id="{a_id}"]')).to_be_visible(timeout=LIVE)
    expect(li.locator(f'#my-chats .chat-item[data-id="{a_id}"]')).to_have_count(0, timeout=LIVE)
    open_chat(zhang, a_id)
    expect(zhang.locator("#chat")).to_contain_text(
        "把会话转给了 张客服：客户要开发票", timeout=LIVE
    )

    # search: by order number, and by phone (masked for agents, full for the admin)
    zhang.goto(f"{stack.console_url}/search?q={ORDER}")
    expect(zhang.locator("#result-orders")).to_contain_text(ORDER)
    expect(zhang.locator("#result-conversations")).to_contain_text(buyer_a)
    zhang.goto(f"{stack.console_url}/search?q={PHONE}")
    results = zhang.locator("#result-conversations")
    expect(results).to_contain_text(buyer_a)
    expect(results).to_contain_text("139****5678")
    assert PHONE not in results.inner_text()
    boss.goto(f"{stack.console_url}/search?q={PHONE}")
    expect(boss.locator("#result-conversations")).to_contain_text(PHONE)

    # the admin is warned before writing in 张客服's chat
    boss.goto(f"{stack.console_url}/handoffs/{a_id}")
    expect(boss.locator("#intervene-box")).to_contain_text("张客服")
    expect(boss.locator("#reply-form")).to_be_hidden()

    # 800 px: the workspace stays usable
    zhang.goto(f"{stack.console_url}/workspace?chat={a_id}")
    expect(zhang.locator(f'#conversation[data-id="{a_id}"]')).to_be_visible(timeout=LIVE)
    zhang.set_viewport_size({"width": 800, "height": 900})
    zhang.wait_for_timeout(300)
    zhang.screenshot(path=str(ARTIFACTS / "workspace-800.png"), full_page=True)
    for link in zhang.locator(".nav a").all():
        box = link.bounding_box()
        assert box is not None and box["height"] < 40, link.inner_text()  # one line
    chip = zhang.locator("#quick-replies .chip").first
    assert chip.evaluate("c => c.scrollWidth <= c.clientWidth + 1")  # not cut off
    assert chip.evaluate("c => c.getBoundingClientRect().right <= window.innerWidth")
    zhang.goto(f"{stack.console_url}/")
    for cell in zhang.locator("#queue-table tbody tr:first-child td").all():
        box = cell.bounding_box()
        assert box is not None and box["width"] > 40, cell.inner_text()
    zhang.screenshot(path=str(ARTIFACTS / "queue-800.png"))
    for page in (li, zhang, boss):
        page.context.close()
