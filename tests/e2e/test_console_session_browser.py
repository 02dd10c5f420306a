"""The queue page in a real browser when the agent's session ends (issue 11, finding 8).

An agent's open queue tab used to keep receiving new customers over the live stream after
the agent logged out (in another tab) or was disabled. Now the stream ends with an ``auth``
event and the page goes to the login. The console runs as a real process (no Rasa server
is needed for the queue); the browser is Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xiaoer.agents import AgentStore
from xiaoer.devtools.stack import RASA_ENV, free_port, start_console, stop
from xiaoer.handoff.store import HandoffStore

pytestmark = [pytest.mark.e2e]

PASSWORD = "session-pass-2026"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("console-session")
    data = workdir / "var"
    agents = AgentStore(data / "xiaoer.db")
    agents.create("boss", PASSWORD, role="admin", display_name="王主管")
    procs: list = []
    try:
        port = free_port()
        start_console(
            port=port, rasa_url="http://127.0.0.1:9", token="t", logs=workdir,
            env={**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(data)}, procs=procs,
        )  # fmt: skip
        yield f"http://127.0.0.1:{port}", data
    finally:
        stop(procs)


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, locale="zh-CN",
        )  # fmt: skip
        try:
            yield context.new_page()
        finally:
            context.close()


def open_queue(page, base: str, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    expect(page.locator("#live-state")).to_have_text("实时更新中", timeout=10_000)


@pytest.mark.parametrize("ending", ["disabled", "logged out"])
def test_queue_tab_goes_to_the_login_when_the_session_ends(console, page, ending) -> None:
    base, data = console
    username = "tab-" + ending.replace(" ", "-")
    agent = AgentStore(data / "xiaoer.db").create(username, PASSWORD, groups=["售后"])
    open_queue(page, base, username)
    if ending == "disabled":
        AgentStore(data / "xiaoer.db").update(agent.id, active=False)
    else:  # logged out in another tab: the same session cookie
        other = requests.Session()
        for cookie in page.context.cookies():
            other.cookies.set(cookie["name"], cookie["value"])
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        r = other.post(
            f"{base}/logout", headers={"X-CSRF-Token": token}, allow_redirects=False, timeout=10
        )
        assert r.status_code == 302
    sender = f"late-{username}"
    HandoffStore(data / "xiaoer.db").request(sender, "requested", "转人工", group="售后")
    page.wait_for_url("**/login**", timeout=8_000)
    assert sender not in page.content()
