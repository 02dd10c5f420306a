"""HTTP tests of every console endpoint: the real console process against a small fake of
Rasa's HTTP API (it records the events the console appends)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import requests
from requests.adapters import HTTPAdapter

from xiaoer.agents import AgentStore
from xiaoer.console.web import LoginLimiter
from xiaoer.core.settings import SettingsStore
from xiaoer.devtools.stack import free_port, stop, wait_http
from xiaoer.handoff.store import HandoffStore

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fake-rasa-token"
PASSWORD = "console-pass-2026"


class FakeRasa:
    """Conversations as lists of events; ``paused`` follows pause/resume events."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        self.triggered: list[tuple[str, str]] = []  # (conversation, intent)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> tuple[str, str, dict[str, list[str]]] | None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                m = re.match(r"^/conversations/([^/]+)/tracker(/events)?$", url.path)
                if not m or query.get("token") != [TOKEN]:
                    self._send(401, {"error": "unauthorized"})
                    return None
                return unquote(m.group(1)), m.group(2) or "", query

            def do_GET(self) -> None:  # noqa: N802
                route = self._route()
                if route:
                    self._send(200, fake.tracker(route[0]))

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                m = re.match(r"^/conversations/([^/]+)/trigger_intent$", url.path)
                if m and parse_qs(url.query).get("token") == [TOKEN]:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    fake.triggered.append((unquote(m.group(1)), body["name"]))
                    self._send(200, {"tracker": fake.tracker(unquote(m.group(1)))})
                    return
                route = self._route()
                if not route:
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                events = body if isinstance(body, list) else [body]
                for e in events:
                    e.setdefault("timestamp", time.time())
                fake.events.setdefault(route[0], []).extend(events)
                fake.calls.append((route[0], "events", route[2]))
                self._send(200, fake.tracker(route[0]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tracker(self, sender: str) -> dict[str, Any]:
        paused = False
        for e in self.events.get(sender, []):
            if e["event"] in ("pause", "resume"):
                paused = e["event"] == "pause"
        return {"sender_id": sender, "events": self.events.get(sender, []), "paused": paused}

    def customer_says(self, sender: str, text: str, order_id: str | None = None) -> None:
        entities = [{"entity": "order_id", "value": order_id}] if order_id else []
        self.events.setdefault(sender, []).append(
            {
                "event": "user",
                "text": text,
                "timestamp": time.time(),
                "parse_data": {"intent": {"name": "order_status"}, "entities": entities},
            }
        )


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("console") / "var"
    data.mkdir()
    fake = FakeRasa()
    agents = AgentStore(data / "xiaoer.db")
    agents.create("boss", PASSWORD, display_name="王主管", role="admin")
    agents.create("presale", PASSWORD, display_name="小售前", groups=["售前"])
    agents.create("after", PASSWORD, display_name="小售后", groups=["售后"])
    port = free_port()
    env = {**os.environ, "XIAOER_DATA_DIR": str(data), "XIAOER_API_TOKEN": TOKEN}
    log = open(data / "console.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.console", "--port", str(port), "--rasa-url", fake.url],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_http(f"http://127.0.0.1:{port}/login", 60, proc), (
            data / "console.log"
        ).read_text()
        yield {
            "url": f"http://127.0.0.1:{port}",
            "fake": fake,
            "handoffs": HandoffStore(data / "xiaoer.db"),
            "settings": SettingsStore(data / "xiaoer.db"),
            "agents": agents,
            "data": data,
        }
    finally:
        stop([proc])
        log.close()
        fake.server.shutdown()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert m, html[:500]
    return m.group(1)


def login(console: dict[str, Any], username: str, password: str = PASSWORD) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{console['url']}/login", timeout=10)
    r = s.post(
        f"{console['url']}/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.text[:300]
    s.headers["X-CSRF-Token"] = csrf_of(s.get(f"{console['url']}/", timeout=10).text)
    return s


def new_handoff(console: dict[str, Any], sender: str, group: str = "售后", **kw: Any):
    console["fake"].customer_says(sender, "订单6938271045123400002到哪了", "6938271045123400002")
    console["fake"].events[sender].append({"event": "pause", "timestamp": time.time()})
    return console["handoffs"].request(
        sender, "requested", "转人工", group=group, intent="order_status",
        summary={"order_id": "6938271045123400002", "last_messages": [{"who": "user", "text": "转人工"}]},
        **kw,
    )  # fmt: skip


# --- auth ---------------------------------------------------------------------------------
def test_nothing_without_login(console):
    url = console["url"]
    r = requests.get(f"{url}/", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    for path in ("/api/queue", "/api/queue/stream", "/api/handoffs/1/messages"):
        assert requests.get(url + path, timeout=10).status_code == 401
    assert (
        requests.post(f"{url}/api/handoffs/1/reply", json={"text": "x"}, timeout=10).status_code
        == 401
    )
    r = requests.get(f"{url}/admin/agents", allow_redirects=False, timeout=10)
    assert r.status_code == 302


def test_login_sets_a_hardened_session_cookie(console):
    s = requests.Session()
    page = s.get(f"{console['url']}/login", timeout=10)
    r = s.post(
        f"{console['url']}/login",
        data={"username": "boss", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    cookie = r.headers["Set-Cookie"]
    assert "xiaoer_console=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "王主管" in s.get(f"{console['url']}/", timeout=10).text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_login_needs_its_csrf_token(console):
    s = requests.Session()
    s.get(f"{console['url']}/login", timeout=10)
    r = s.post(
        f"{console['url']}/login",
        data={"username": "boss", "password": PASSWORD, "csrf_token": "forged"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 403 and "xiaoer_console=" not in r.headers.get("Set-Cookie", "")


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (a second client machine)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def login_attempt(
    console: dict[str, Any], username: str, password: str, address: str = "127.0.0.1"
) -> requests.Response:
    s = requests.Session()
    s.mount("http://", FromAddress(address))
    page = s.get(f"{console['url']}/login", timeout=10)
    return s.post(
        f"{console['url']}/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        allow_redirects=False,
        timeout=10,
    )


def test_wrong_passwords_slow_down_but_never_lock_out_the_right_one(console):
    """Attack: five wrong passwords for a user name used to lock it for 15 minutes, so
    anyone could lock the admin out. Now the attacker's attempts are slowed down with
    growing delays, while the right password from another address still gets in."""
    console["agents"].create("victim", PASSWORD)
    attempts = [login_attempt(console, "victim", f"wrong-{i}-pass") for i in range(5)]
    assert [r.status_code for r in attempts] == [401, 401, 401, 429, 429]
    waits = [int(r.headers["Retry-After"]) for r in attempts[3:]]
    assert 0 < waits[0] < waits[1]  # the delay grows with every attempt
    assert f"请 {waits[1]} 秒后再试" in attempts[4].text
    # the attacker's address stays slowed down, even with the right password ...
    assert login_attempt(console, "victim", PASSWORD).status_code == 429
    # ... but the victim, from a fresh address, logs in at once
    r = login_attempt(console, "victim", PASSWORD, address="127.0.0.2")
    assert r.status_code == 302 and "xiaoer_console=" in r.headers["Set-Cookie"]


def test_login_delays_grow_are_capped_and_expire():
    clock = [1000.0]
    limiter = LoginLimiter(free=3, first_delay=2, max_delay=60, forget=900, clock=lambda: clock[0])
    ip, user = "ip:10.0.0.9", "user:boss"
    for _ in range(3):
        assert limiter.check(ip, user) == 0
        limiter.failed(ip, user)
    delays = []
    for _ in range(8):
        delays.append(limiter.check(ip, user))
        clock[0] += delays[-1]  # wait exactly as long as told, then fail again
        assert limiter.check(ip, user) == 0
        limiter.failed(ip, user)
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]  # exponential, capped
    assert limiter.check("ip:10.0.0.10", user) == 0  # a fresh address is never held back
    assert limiter.check(ip, user) == 60
    clock[0] += 901  # forgotten a while after the last failure
    assert limiter.check(ip, user) == 0
    # an office address shares its budget: four times the free attempts of a user name
    for n in range(11):
        limiter.failed("ip:office", f"user:agent{n}")
    assert limiter.check("ip:office", "user:someone") == 0
    limiter.failed("ip:office", "user:someone")
    assert limiter.check("ip:office", "user:someone") == 2


def test_logout_ends_the_session(console):
    s = login(console, "presale")
    assert s.post(f"{console['url']}/logout", allow_redirects=False, timeout=10).status_code == 302
    assert s.get(f"{console['url']}/api/queue", timeout=10).status_code == 401


def test_agent_cannot_reach_admin_pages(console):
    s = login(console, "presale")
    assert s.get(f"{console['url']}/admin/agents", timeout=10).status_code == 403
    assert s.get(f"{console['url']}/admin/settings", timeout=10).status_code == 403
    r = s.post(f"{console['url']}/admin/settings", data={"keywords": "x"}, timeout=10)
    assert r.status_code == 403
    r = s.post(f"{console['url']}/admin/agents", data={"username": "evil"}, timeout=10)
    assert r.status_code == 403 and console["agents"].by_username("evil") is None


def test_posts_need_the_csrf_token(console):
    h = new_handoff(console, "csrf-user")
    s = login(console, "after")
    token = s.headers.pop("X-CSRF-Token")
    url = f"{console['url']}/api/handoffs/{h.id}/reply"
    assert s.post(url, json={"text": "你好"}, timeout=10).status_code == 403
    assert (
        s.post(url, json={"text": "你好"}, headers={"X-CSRF-Token": "nope"}, timeout=10).status_code
        == 403
    )
    r = s.post(f"{console['url']}/handoffs/{h.id}/handback", data={"note": "x"}, timeout=10)
    assert r.status_code == 403 and console["handoffs"].get(h.id).status == "waiting"
    assert s.post(url, json={"text": "你好"}, headers={"X-CSRF-Token": token}, timeout=10).ok


# --- queue --------------------------------------------------------------------------------
def test_queue_is_filtered_by_skill_group_and_admins_see_all(console):
    pre = new_handoff(console, "q-pre", group="售前")
    after = new_handoff(console, "q-after", group="售后", priority=2)

    def ids(s: requests.Session) -> list[int]:
        return [i["id"] for i in s.get(f"{console['url']}/api/queue", timeout=10).json()["items"]]

    presale, boss = login(console, "presale"), login(console, "boss")
    assert pre.id in ids(presale) and after.id not in ids(presale)
    assert {pre.id, after.id} <= set(ids(boss))
    assert ids(boss).index(after.id) < ids(boss).index(pre.id)  # priority first
    assert presale.get(f"{console['url']}/handoffs/{after.id}", timeout=10).status_code == 404


def test_live_feed_shows_a_new_handoff_within_two_seconds(console):
    s = login(console, "boss")
    with s.get(f"{console['url']}/api/queue/stream", stream=True, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = r.iter_lines(chunk_size=1)

        def next_queue() -> dict[str, Any]:
            for line in lines:
                if line.startswith(b"data: "):
                    return json.loads(line[6:].decode("utf-8"))
            raise AssertionError("stream ended")

        next_queue()
        started = time.monotonic()
        h = new_handoff(console, "live-user")
        while True:
            queue = next_queue()
            if any(i["id"] == h.id for i in queue["items"]):
                break
        assert time.monotonic() - started < 2.0


def test_conversation_page_shows_history_and_orders(console):
    h = new_handoff(console, "page-user")
    s = login(console, "after")
    page = s.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text
    assert "订单6938271045123400002到哪了" in page
    assert "男士轻量跑步鞋" in page and "已发货" in page  # the order from the shop backend
    assert "您好，我是人工客服" in page  # quick replies
    data = s.get(f"{console['url']}/api/handoffs/{h.id}/messages", timeout=10).json()
    assert data["paused"] is True and data["lines"][0]["who"] == "customer"
    assert s.get(f"{console['url']}/handoffs/999999", timeout=10).status_code == 404


# --- actions ------------------------------------------------------------------------------
def test_reply_goes_to_rasa_with_the_agent_in_metadata(console):
    h = new_handoff(console, "reply-user")
    s = login(console, "after")
    r = s.post(
        f"{console['url']}/api/handoffs/{h.id}/reply", json={"text": "您好，我来帮您查"}, timeout=10
    )
    assert r.status_code == 200
    sent = [e for e in console["fake"].events["reply-user"] if e["event"] == "bot"]
    agent = console["agents"].by_username("after")
    assert sent[-1]["text"] == "您好，我来帮您查"
    assert (
        sent[-1]["metadata"]["agent_id"] == agent.id
        and sent[-1]["metadata"]["agent_name"] == "小售后"
    )
    call = [c for c in console["fake"].calls if c[0] == "reply-user"][-1]
    assert call[2]["output_channel"] == ["latest"] and call[2]["execute_side_effects"] == ["true"]
    taken = console["handoffs"].get(h.id)
    assert taken.status == "active" and taken.agent_id == agent.id
    # another agent of the group cannot write into a conversation someone holds
    console["agents"].create("after2", PASSWORD, groups=["售后"])
    other = login(console, "after2")
    r = other.post(
        f"{console['url']}/api/handoffs/{h.id}/reply", json={"text": "我也来"}, timeout=10
    )
    assert r.status_code == 409


@pytest.mark.parametrize(
    "body,status",
    [({"text": "  "}, 400), ({"text": "好" * 1001}, 413), (["x"], 400), ({}, 400)],
    ids=["blank", "too-long", "not-object", "missing"],
)
def test_bad_replies_get_a_clear_4xx(console, body, status):
    h = new_handoff(console, f"bad-{status}-{len(str(body))}")
    s = login(console, "after")
    r = s.post(f"{console['url']}/api/handoffs/{h.id}/reply", json=body, timeout=10)
    assert r.status_code == status and r.json()["message"]


def test_take_then_hand_back_resumes_the_bot(console):
    h = new_handoff(console, "back-user")
    s = login(console, "after")
    r = s.post(f"{console['url']}/handoffs/{h.id}/take", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and console["handoffs"].get(h.id).status == "active"
    r = s.post(
        f"{console['url']}/handoffs/{h.id}/handback",
        data={"note": "已退款"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    closed = console["handoffs"].get(h.id)
    assert closed.status == "closed" and closed.note == "已退款"
    tail = [e["event"] for e in console["fake"].events["back-user"]][-3:]
    assert tail == ["resume", "bot", "action"]
    assert "继续为您服务" in console["fake"].events["back-user"][-2]["text"]
    assert console["fake"].tracker("back-user")["paused"] is False
    # the conversation ended with an agent: the assistant asks for a rating (once)
    assert [t for t in console["fake"].triggered if t[0] == "back-user"] == [
        ("back-user", "EXTERNAL_ask_csat")
    ]


def test_close_resumes_without_a_message(console):
    h = new_handoff(console, "close-user")
    s = login(console, "after")
    s.post(f"{console['url']}/handoffs/{h.id}/close", data={"note": ""}, timeout=10)
    assert console["handoffs"].get(h.id).status == "closed"
    assert [e["event"] for e in console["fake"].events["close-user"]][-2:] == ["resume", "action"]
    assert not [t for t in console["fake"].triggered if t[0] == "close-user"]  # asks nothing


def test_supervisor_reassigns(console):
    h = new_handoff(console, "move-user", group="售前")
    boss, after = login(console, "boss"), login(console, "after")
    assert (
        after.post(
            f"{console['url']}/handoffs/{h.id}/reassign", data={"group": "售后"}, timeout=10
        ).status_code
        == 403
    )
    r = boss.post(
        f"{console['url']}/handoffs/{h.id}/reassign",
        data={"group": "售后"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302 and console["handoffs"].get(h.id).group_name == "售后"
    r = boss.post(
        f"{console['url']}/handoffs/{h.id}/reassign", data={"group": "不存在"}, timeout=10
    )
    assert r.status_code == 400


# --- admin --------------------------------------------------------------------------------
def test_admin_creates_and_edits_agents(console):
    boss = login(console, "boss")
    url = f"{console['url']}/admin/agents"
    r = boss.post(url, data={"username": "newbie", "password": "short"}, timeout=10)
    assert r.status_code == 400 and "至少" in r.text
    r = boss.post(
        url,
        data={
            "username": "newbie",
            "password": "newbie-pass-1",
            "display_name": "新人",
            "groups": ["投诉"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    newbie = console["agents"].by_username("newbie")
    assert newbie.groups == ["投诉"] and newbie.role == "agent"
    r = boss.post(
        f"{url}/{newbie.id}",
        data={"display_name": "新人A", "role": "agent", "groups": ["售前"], "active": "1"},
        allow_redirects=False,
        timeout=10,
    )
    newbie = console["agents"].get(newbie.id)
    assert r.status_code == 302 and newbie.display_name == "新人A" and newbie.groups == ["售前"]
    assert newbie.on_shift is False
    assert "newbie" in boss.get(url, timeout=10).text


def test_admin_settings_persist_and_are_validated(console):
    boss = login(console, "boss")
    url = f"{console['url']}/admin/settings"
    form = {
        "start": "08:30", "end": "23:00", "keywords": "12315\n律师函\n", "groups": "售前\n售后\n投诉",
        "quick_replies": "您好～\n稍等", "greet_new_follower_day": "欢迎关注{shop_name}～", "perm_change_address": "1",
        "reannounce_after_minutes": "4", "minutes_per_case": "2",
    }  # fmt: skip
    assert boss.post(url, data={**form, "start": "25:00"}, timeout=10).status_code == 400
    assert boss.post(url, data=form, allow_redirects=False, timeout=10).status_code == 302
    saved = console["settings"].overrides(fresh=True)
    # handoff keywords are keyword rules now (/keywords): the settings page no longer saves them
    assert "keywords" not in saved and saved["working_hours"]["start"] == "08:30"
    assert saved["permissions"] == {
        "cancel_paid_orders": False, "change_address": True, "open_after_sales": False, "give_coupons": False,
    }  # fmt: skip
    assert saved["greeting_scripts"]["new_follower"] == {"day": ["欢迎关注{shop_name}～"]}
    page = boss.get(url, timeout=10).text
    assert 'href="/keywords"' in page and "08:30" in page and "欢迎关注{shop_name}～" in page


def test_static_assets_are_served_locally(console):
    for name in ("console.css", "console.js", "queue.js", "conversation.js"):
        assert requests.get(f"{console['url']}/static/{name}", timeout=10).status_code == 200
    page = login(console, "boss").get(f"{console['url']}/", timeout=10).text
    assert "http://" not in re.sub(r'href="http://127[^"]*"', "", page.split("<body>")[0])


# --- the timeout re-announcement (the console runs it every 30 s) ---------------------------
async def test_customer_left_waiting_is_told_honestly(data_dir, monkeypatch):
    from datetime import timedelta

    from xiaoer.core.clock import now_beijing
    from xiaoer.core.settings import handoff_settings
    from xiaoer.handoff.desk import HandoffDesk

    fake = FakeRasa()
    try:
        store = HandoffStore(data_dir / "xiaoer.db")
        store.request("first-user", "requested", group="售后")
        store.request("slow-user", "requested", group="售后")
        desk = HandoffDesk(fake.url, TOKEN, store)
        assert await desk.reannounce_due(handoff_settings()) == 0
        later = now_beijing() + timedelta(minutes=6)
        monkeypatch.setattr("xiaoer.handoff.store.now_beijing", lambda: later)
        assert await desk.reannounce_due(handoff_settings()) == 2
        told = [e["text"] for e in fake.events["slow-user"] if e["event"] == "bot"]
        assert len(told) == 1 and "还在排队" in told[0] and "前面还有1位" in told[0]
        assert await desk.reannounce_due(handoff_settings()) == 0  # not again at once
        bad = HandoffDesk(fake.url, "wrong-token", store)
        monkeypatch.setattr(
            "xiaoer.handoff.store.now_beijing", lambda: later + timedelta(minutes=6)
        )
        assert await bad.reannounce_due(handoff_settings()) == 0  # kept for the next round
        assert len(store.unanswered(300)) == 2
    finally:
        fake.server.shutdown()


def test_history_lists_closed_conversations(console):
    h = new_handoff(console, "history-user")
    s = login(console, "after")
    s.post(f"{console['url']}/handoffs/{h.id}/handback", data={"note": "已补发配件"}, timeout=10)
    page = s.get(f"{console['url']}/history", timeout=10)
    assert page.status_code == 200 and "history-user" in page.text and "已补发配件" in page.text
    assert (
        requests.get(f"{console['url']}/history", allow_redirects=False, timeout=10).status_code
        == 302
    )


def test_agent_starts_and_ends_a_shift(console):
    s = login(console, "presale")
    me = console["agents"].by_username("presale")
    r = s.post(
        f"{console['url']}/me/shift", data={"on_shift": "0"}, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302 and console["agents"].get(me.id).on_shift is False
    assert "上班" in s.get(f"{console['url']}/", timeout=10).text
    s.post(f"{console['url']}/me/shift", data={"on_shift": "1"}, timeout=10)
    assert console["agents"].get(me.id).on_shift is True
    r = s.post(
        f"{console['url']}/me/shift",
        data={"on_shift": "0"},
        headers={"X-CSRF-Token": "x"},
        timeout=10,
    )
    assert r.status_code == 403 and console["agents"].get(me.id).on_shift is True


def test_history_lines_keep_only_web_image_links():
    from xiaoer.handoff.desk import chat_lines

    events = [
        {"event": "user", "text": "看图", "timestamp": 1.0,
         "metadata": {"attachments": [{"type": "image", "url": "javascript:alert(1)"}]}},
        {"event": "user", "text": "图", "timestamp": 2.0,
         "metadata": {"attachments": [{"type": "image", "url": "https://img.example/a.jpg"}]}},
        {"event": "bot", "text": "机器人", "timestamp": 3.0, "data": {"buttons": [{"title": "转人工"}]}},
        {"event": "bot", "text": "客服", "timestamp": 4.0, "metadata": {"agent_id": 3, "agent_name": "小王"}},
        {"event": "pause", "timestamp": 5.0},
        {"event": "slot", "name": "x", "value": 1, "timestamp": 6.0},
    ]  # fmt: skip
    lines = chat_lines(events)
    assert [(x.who, x.image) for x in lines[:2]] == [
        ("customer", ""), ("customer", "https://img.example/a.jpg"),
    ]  # fmt: skip
    assert lines[2].text == "机器人  [转人工]" and (lines[3].who, lines[3].agent_name) == (
        "agent",
        "小王",
    )
    assert [x.who for x in lines] == ["customer", "customer", "bot", "agent", "system"]


# --- Douyin replies waiting to be resent ---------------------------------------------------
def test_agents_see_douyin_replies_waiting_to_be_resent(console):
    from xiaoer.douyin.store import DouyinStore

    url = console["url"]
    assert requests.get(f"{url}/outbox", allow_redirects=False, timeout=10).status_code == 302
    store = DouyinStore(console["data"] / "xiaoer.db")  # the project database
    store.add_outbox(
        "open_outbox_1",
        {"content": {"text": "好的，已记下您的手机号13812345678"}},
        "好的，已记下您的手机号13812345678",
        "HTTP 503",
        time.time() + 30,
    )
    agent = login(console, "after")
    page = agent.get(f"{url}/outbox", timeout=10)
    assert page.status_code == 200
    assert "open_outbox_1" in page.text and "HTTP 503" in page.text and "1 次" in page.text
    assert "13812345678" not in page.text and "138****5678" in page.text
    data = agent.get(f"{url}/outbox", headers={"Accept": "application/json"}, timeout=10).json()
    assert [row["sender_id"] for row in data["pending"]] == ["open_outbox_1"]


# --- trust: masking, visibility and sessions (issue 11) -----------------------------------
def test_agents_see_masked_contacts_in_the_conversation_and_its_history(console):
    """Attack: a non-admin read the customer's full phone and WeChat in the chat history
    while the side panel, leads and exports masked them."""
    sender = "pii-user"
    console["fake"].customer_says(sender, "我的手机13800000000，微信 summer_rain07，尽快联系")
    h = new_handoff(console, sender)
    after = login(console, "after")
    page = after.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text
    assert "138****0000" in page and "13800000000" not in page
    assert "summer_rain07" not in page
    history = after.get(f"{console['url']}/api/handoffs/{h.id}/messages", timeout=10)
    texts = json.dumps(history.json(), ensure_ascii=False)
    assert "138****0000" in texts and "13800000000" not in texts and "summer_rain07" not in texts
    boss = login(console, "boss")  # admins (leads.full_contacts_roles) see the numbers
    assert "13800000000" in boss.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text


def test_agent_of_another_group_cannot_read_a_conversation(console):
    h = new_handoff(console, "other-group-user", group="售后")
    console["fake"].customer_says("other-group-user", "手机13811112222")
    presale = login(console, "presale")
    assert presale.get(f"{console['url']}/handoffs/{h.id}", timeout=10).status_code == 404
    r = presale.get(f"{console['url']}/api/handoffs/{h.id}/messages", timeout=10)
    assert r.status_code == 404 and "1381111" not in r.text
    r = presale.post(f"{console['url']}/api/handoffs/{h.id}/reply", json={"text": "hi"}, timeout=10)
    assert r.status_code == 404 and console["handoffs"].get(h.id).status == "waiting"
    console["agents"].create("nogroup", PASSWORD)  # an agent without skill groups
    nogroup = login(console, "nogroup")
    assert nogroup.get(f"{console['url']}/handoffs/{h.id}", timeout=10).status_code == 404
    queue = nogroup.get(f"{console['url']}/api/queue", timeout=10).json()["items"]
    assert h.id not in [i["id"] for i in queue]


def read_until_end(r: requests.Response, during: Any) -> list[str]:
    """The stream's lines after its first queue event, ``during()`` run once it is open."""
    lines: list[str] = []
    started = False
    for raw in r.iter_lines(chunk_size=1):
        line = raw.decode("utf-8")
        lines.append(line)
        if not started and line.startswith("data: "):
            started = True
            during()
    return lines


@pytest.mark.parametrize("ending", ["disabled", "logged out", "expired"])
def test_the_live_queue_ends_when_the_session_does(console, ending):
    """Attack: a disabled or logged-out agent's open queue tab kept receiving new customers
    over the live stream."""
    username = "leaver-" + ending.replace(" ", "-")
    agent = console["agents"].create(username, PASSWORD, groups=["售后"])
    s = login(console, username)

    def end_session() -> None:
        if ending == "disabled":
            console["agents"].update(agent.id, active=False)
        elif ending == "expired":
            with sqlite3.connect(console["data"] / "xiaoer.db") as db:
                db.execute(
                    "UPDATE console_sessions SET expires_at = ? WHERE agent_id = ?",
                    (time.time() - 1, agent.id),
                )
        else:
            other = requests.Session()  # the same login, another tab
            other.cookies.update(s.cookies)
            other.headers.update(s.headers)
            assert other.post(f"{console['url']}/logout", allow_redirects=False, timeout=10).ok
        time.sleep(0.5)
        new_handoff(console, f"after-{username}")  # a new customer arrives afterwards

    started = time.monotonic()
    with s.get(f"{console['url']}/api/queue/stream", stream=True, timeout=10) as r:
        lines = read_until_end(r, end_session)
    assert time.monotonic() - started < 8  # ended by the server (a ping comes every 15 s)
    assert "event: auth" in lines
    after_end = lines[lines.index("event: auth") :]
    assert not any(line.startswith("event: queue") for line in after_end)
    assert f"after-{username}"[:24] not in "\n".join(lines)
    assert s.get(f"{console['url']}/api/queue/stream", timeout=10).status_code == 401
