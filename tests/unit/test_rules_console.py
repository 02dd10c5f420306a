"""HTTP tests of the console pages of keyword rules (关键词回复) and the bot's profile
(基本信息): admins only, CSRF, validation errors next to the field with every input kept,
the "test a sentence" box, the avatar upload and its public URL."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.unit.test_console import PASSWORD, TOKEN, FakeRasa, login
from tests.unit.test_profile_sandbox import png
from xiaoer.agents import AgentStore
from xiaoer.devtools.stack import free_port, start_console, stop
from xiaoer.keywords.store import KeywordRuleStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("rules_console") / "var"
    data.mkdir()
    fake = FakeRasa()
    agents = AgentStore(data / "xiaoer.db")
    agents.create("boss", PASSWORD, display_name="王主管", role="admin")
    agents.create("presale", PASSWORD, display_name="小售前", groups=["售前"])
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        start_console(port=port, rasa_url=fake.url, token=TOKEN, logs=data,
                      env={**os.environ, "XIAOER_DATA_DIR": str(data)}, procs=procs)  # fmt: skip
        yield {"url": f"http://127.0.0.1:{port}", "rules": KeywordRuleStore(data / "xiaoer.db")}
    finally:
        stop(procs)
        fake.server.shutdown()


def field_error(html: str, name: str) -> str:
    m = re.search(rf'id="error-{name}"[^>]*>([^<]+)<', html)
    return m.group(1) if m else ""


def test_agents_cannot_reach_rules_profile_or_test_chat(console):
    s = login(console, "presale")
    for path in ("/keywords", "/keywords/new", "/profile", "/testchat"):
        assert s.get(console["url"] + path, timeout=10).status_code == 403
    r = s.post(f"{console['url']}/keywords/new", data={"keywords": "x"}, timeout=10)
    assert r.status_code == 403
    r = s.post(f"{console['url']}/api/testchat/send", json={"text": "hi"}, timeout=10)
    assert r.status_code == 403
    assert (
        requests.get(f"{console['url']}/keywords", allow_redirects=False, timeout=10).status_code
        == 302
    )


def test_rules_page_lists_the_migrated_handoff_keywords(console):
    page = login(console, "boss").get(f"{console['url']}/keywords", timeout=10).text
    assert "转人工：投诉" in page and "转人工：12315" in page and "排除：拍照" in page


def test_a_refused_rule_keeps_every_input_and_names_the_field(console):
    boss = login(console, "boss")
    form = {
        "name": "开票说明", "mode": "contains", "keywords": "发票\n开票", "exclude": "专票",
        "action": "reply", "reply_text": "您好{shop_name，电子发票", "buttons": "怎么开专票",
        "priority": "abc", "channel": "douyin", "window_start": "22:00", "window_end": "08:00",
        "negation": "1", "enabled": "1",
    }  # fmt: skip
    r = boss.post(f"{console['url']}/keywords/new", data=form, timeout=10)
    assert r.status_code == 400
    assert "花括号" in field_error(r.text, "reply_text")
    assert "0-100" in field_error(r.text, "priority")
    for value in (
        "开票说明",
        "发票\n开票",
        "专票",
        "您好{shop_name，电子发票",
        "怎么开专票",
        "abc",
        "22:00",
        "08:00",
    ):
        assert value in r.text.replace("&#10;", "\n"), value
    assert 'value="douyin" selected' in r.text
    assert not [x for x in console["rules"].all(fresh=True) if x.name == "开票说明"]
    # fixed: saved and listed
    form.update(reply_text="{shop_name}支持电子发票", priority="70")
    r = boss.post(f"{console['url']}/keywords/new", data=form, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    saved = next(x for x in console["rules"].all(fresh=True) if x.name == "开票说明")
    assert saved.keywords == ("发票", "开票") and saved.channel == "douyin" and saved.priority == 70
    assert saved.window_text == "22:00-08:00"


def test_edit_switch_off_and_delete(console):
    boss = login(console, "boss")
    rule = console["rules"].add({"keywords": "包邮", "action": "reply", "reply_text": "满59包邮"})
    page = boss.get(f"{console['url']}/keywords/{rule.id}", timeout=10).text
    assert "满59包邮" in page
    form = {**rule.as_form(), "reply_text": "全场包邮"}
    r = boss.post(
        f"{console['url']}/keywords/{rule.id}", data=form, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302 and console["rules"].get(rule.id).reply_text == "全场包邮"
    bad = boss.post(
        f"{console['url']}/keywords/{rule.id}", data={**form, "keywords": ""}, timeout=10
    )
    assert bad.status_code == 400 and "请至少填写一个关键词" in field_error(bad.text, "keywords")
    assert "全场包邮" in bad.text and console["rules"].get(rule.id).keywords == ("包邮",)
    boss.post(f"{console['url']}/keywords/{rule.id}/switch", data={"enabled": ""}, timeout=10)
    assert console["rules"].get(rule.id).enabled is False
    boss.post(f"{console['url']}/keywords/{rule.id}/delete", timeout=10)
    assert console["rules"].get(rule.id) is None
    assert boss.get(f"{console['url']}/keywords/{rule.id}", timeout=10).status_code == 404


def test_the_test_box_says_which_rule_matches_and_why(console):
    boss = login(console, "boss")
    page = boss.get(
        f"{console['url']}/keywords", params={"test": "不用转人工，我不是要投诉"}, timeout=10
    ).text
    assert "没有命中任何关键词规则" in page and "否定词「不是」" in page
    page = boss.get(
        f"{console['url']}/keywords", params={"test": "这款手机拍照曝光怎么调"}, timeout=10
    ).text
    assert "没有命中任何关键词规则" in page and "排除词「拍照」" in page
    page = boss.get(f"{console['url']}/keywords", params={"test": "我要投诉你们"}, timeout=10).text
    assert "命中规则" in page and "转人工：投诉" in page


def test_rule_posts_need_the_csrf_token(console):
    boss = login(console, "boss")
    boss.headers.pop("X-CSRF-Token")
    r = boss.post(
        f"{console['url']}/keywords/new", data={"keywords": "x", "reply_text": "y"}, timeout=10
    )
    assert r.status_code == 403


def test_profile_page_saves_validates_and_keeps_inputs(console):
    boss = login(console, "boss")
    url = f"{console['url']}/profile"
    form = {"name": "小美", "welcome": "欢迎来到{shop_name}{", "sign_off": "再见～",
            "service_start": "08:30", "service_end": "23:00"}  # fmt: skip
    r = boss.post(url, data=form, timeout=10)
    assert r.status_code == 400 and "花括号" in field_error(r.text, "welcome")
    assert "小美" in r.text and "再见～" in r.text and "08:30" in r.text
    form["welcome"] = "欢迎来到{shop_name}，我是{bot_name}"
    assert boss.post(url, data=form, allow_redirects=False, timeout=10).status_code == 302
    page = boss.get(url, timeout=10).text
    assert "欢迎来到{shop_name}，我是{bot_name}" in page and "23:00" in page


def test_avatar_upload_and_public_url(console):
    boss = login(console, "boss")
    url = f"{console['url']}/profile/avatar"
    token = boss.headers["X-CSRF-Token"]
    bad = boss.post(url, files={"avatar": ("a.svg", b"<svg/>", "image/svg+xml")},
                    data={"csrf_token": token}, timeout=10)  # fmt: skip
    assert bad.status_code == 400 and "PNG" in field_error(bad.text, "avatar")
    r = boss.post(url, files={"avatar": ("a.png", png(), "image/png")},
                  data={"csrf_token": token}, allow_redirects=False, timeout=10)  # fmt: skip
    assert r.status_code == 302
    served = requests.get(url, timeout=10)  # no login: a web widget shows it
    assert served.status_code == 200 and served.content == png()
    assert served.headers["Content-Type"] == "image/png"
    assert 'src="/profile/avatar?v=' in boss.get(f"{console['url']}/profile", timeout=10).text


def test_the_avatar_url_serves_its_image_on_every_process_at_once(console):
    """Another process (a second console, the CLI) changes the avatar: this console's
    settings cache has not seen it yet, the URL of the new image serves it already."""
    from xiaoer.core.profile import ProfileStore

    store = ProfileStore(console["rules"].db)
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + bytes(range(16))
    digest = store.save_avatar(gif, by="boss")
    url = f"{console['url']}/profile/avatar"
    served = requests.get(url, params={"v": digest}, timeout=10)
    assert served.status_code == 200 and served.content == gif
    assert served.headers["Content-Type"] == "image/gif"
    assert "immutable" in served.headers["Cache-Control"]
    current = requests.get(url, timeout=10)  # no digest: the avatar in force, not cached
    assert current.content == gif and current.headers["Cache-Control"] == "no-cache"
    unknown = requests.get(url, params={"v": "0" * 64}, timeout=10)
    assert unknown.status_code == 404


def test_layout_links_the_new_pages_for_admins(console):
    page = login(console, "boss").get(f"{console['url']}/", timeout=10).text
    for href in ('href="/keywords"', 'href="/profile"', 'href="/testchat"'):
        assert href in page
    assert (
        'href="/keywords"'
        not in login(console, "presale").get(f"{console['url']}/", timeout=10).text
    )
