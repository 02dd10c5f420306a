"""The console's learning pages over HTTP: the inbox (list, preview as a diff, accept into
the NLU data, dismiss, the conversation), the reply variants (figures, add, pin, switch
off), roles and CSRF. The console runs as a process on a copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.unit.test_console import PASSWORD, TOKEN, FakeRasa, login
from xiaoer.agents import AgentStore
from xiaoer.devtools.stack import free_port, stop, wait_http
from xiaoer.learning.inbox import InboxStore
from xiaoer.learning.variants import VariantStore, variant_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    project = tmp_path_factory.mktemp("project")
    for name in ("data", "domain.yml", "config.yml", "xiaoer.yml", "actions/messages.yml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, project / name)
        else:
            shutil.copy(src, project / name)
    data = project / "var"
    data.mkdir()
    fake = FakeRasa()
    agents = AgentStore(data / "xiaoer.db")
    agents.create("boss", PASSWORD, display_name="王主管", role="admin")
    agents.create("after", PASSWORD, display_name="小售后", groups=["售后"])
    inbox = InboxStore(data / "xiaoer.db")
    port = free_port()
    env = {**os.environ, "XIAOER_DATA_DIR": str(data), "XIAOER_API_TOKEN": TOKEN,
           "XIAOER_CONFIG": str(project / "xiaoer.yml"), "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("XIAOER_DATABASE_URL", None)
    log = open(data / "console.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.console", "--port", str(port), "--rasa-url", fake.url],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_http(f"http://127.0.0.1:{port}/login", 60, proc), (
            data / "console.log"
        ).read_text()
        yield {"url": f"http://127.0.0.1:{port}", "fake": fake, "inbox": inbox,
               "project": project, "variants": VariantStore(data / "xiaoer.db")}  # fmt: skip
    finally:
        stop([proc])
        log.close()
        fake.server.shutdown()


def seen(inbox: InboxStore, mid: str, sender: str, text: str) -> int:
    item = inbox.collect(message_id=mid, sender_id=sender, text=text, reason="fallback",
                         intent="nlu_fallback", confidence=0.3,
                         ranking=[{"name": "nlu_fallback", "confidence": 0.3},
                                  {"name": "request_human", "confidence": 0.25}])  # fmt: skip
    assert item is not None
    return item


def test_only_admins_reach_the_learning_pages(console: dict[str, Any]) -> None:
    agent = login(console, "after")
    for path in ("/learning", "/learning/variants"):
        assert agent.get(console["url"] + path, timeout=10).status_code == 403
    assert (
        requests.get(console["url"] + "/learning", allow_redirects=False, timeout=10).status_code
        == 302
    )
    boss = login(console, "boss")
    del boss.headers["X-CSRF-Token"]
    r = boss.post(
        console["url"] + "/learning/dismiss", data={"ids": "1", "as": "ignored"}, timeout=10
    )
    assert r.status_code == 403


def test_inbox_preview_accept_writes_the_example(console: dict[str, Any]) -> None:
    inbox = console["inbox"]
    a = seen(inbox, "m1", "cust-1", "给我找个活人聊聊")
    b = seen(inbox, "m2", "cust-2", "找个活人跟我聊")
    console["fake"].customer_says("cust-1", "给我找个活人聊聊")
    boss = login(console, "boss")
    page = boss.get(console["url"] + "/learning", timeout=10)
    assert page.status_code == 200
    assert "给我找个活人聊聊" in page.text and "找个活人跟我聊" in page.text
    assert "request_human（建议 25%）" in page.text  # the suggestion, fallback left out
    assert 'href="/learning/variants"' in page.text  # one nav entry; the pages link each other
    group = re.search(r'id="group-(\d+)"', page.text)
    assert group
    # the conversation, one click away
    conv = boss.get(console["url"] + "/learning/conversation",
                    params={"sender": "cust-1", "text": "给我找个活人聊聊"}, timeout=10)  # fmt: skip
    assert conv.status_code == 200 and "给我找个活人聊聊" in conv.text and "highlight" in conv.text
    preview = boss.post(console["url"] + "/learning/preview",
                        data={"ids": [a, b], "intent": "request_human"}, timeout=10)  # fmt: skip
    assert preview.status_code == 200
    assert "+    - 给我找个活人聊聊" in preview.text and "+    - 找个活人跟我聊" in preview.text
    service_yml = console["project"] / "data/nlu/service.yml"
    assert "给我找个活人聊聊" not in service_yml.read_text(encoding="utf-8")  # not yet written
    digest = re.search(r'name="digest" value="([^"]+)"', preview.text)
    assert digest
    r = boss.post(console["url"] + "/learning/accept",
                  data={"ids": [a, b], "intent": "request_human", "topic": "",
                        "digest": digest.group(1)}, allow_redirects=False, timeout=300)  # fmt: skip
    assert r.status_code == 303, r.text[:1000]
    text = service_yml.read_text(encoding="utf-8")
    assert "    - 给我找个活人聊聊\n" in text and "    - 找个活人跟我聊\n" in text
    assert inbox.get(a).status == "accepted"  # type: ignore[union-attr]
    notice = boss.get(console["url"] + r.headers["location"], timeout=10)
    assert "重新训练" in notice.text
    # a stale preview (the data changed since) is refused
    c = seen(inbox, "m3", "cust-3", "有没有活人")
    r = boss.post(console["url"] + "/learning/accept",
                  data={"ids": [c], "intent": "request_human", "digest": "0000"}, timeout=10)  # fmt: skip
    assert r.status_code == 400 and "重新预览" in r.text


def test_inbox_bad_intent_and_dismiss(console: dict[str, Any]) -> None:
    inbox = console["inbox"]
    item = seen(inbox, "m9", "cust-9", "今天天气怎么样")
    boss = login(console, "boss")
    r = boss.post(console["url"] + "/learning/preview",
                  data={"ids": [item], "new_intent": "Bad Name"}, timeout=10)  # fmt: skip
    assert r.status_code == 400 and "意图名" in r.text
    r = boss.post(console["url"] + "/learning/dismiss",
                  data={"ids": [item], "as": "out_of_scope"}, allow_redirects=False, timeout=10)  # fmt: skip
    assert r.status_code == 303
    assert inbox.get(item).status == "out_of_scope"  # type: ignore[union-attr]
    assert "今天天气怎么样" not in boss.get(console["url"] + "/learning", timeout=10).text


def test_inbox_assigns_messages_to_a_knowledge_base_entry(console: dict[str, Any]) -> None:
    from xiaoer.knowledge.store import Entry, KnowledgeStore
    from xiaoer.training.store import TrainingRunStore

    inbox = console["inbox"]
    db = console["project"] / "var" / "xiaoer.db"
    kb = KnowledgeStore(db)
    wrap = kb.save(Entry(question="可以礼品包装吗", answer="可以，下单备注礼品包装～"), by="boss")
    a = seen(inbox, "g1", "cust-g1", "能帮我包成礼物吗")
    b = seen(inbox, "g2", "cust-g2", "送人的能不能包装好看点")
    boss = login(console, "boss")
    page = boss.get(console["url"] + "/learning", timeout=10).text
    assert f'<option value="{wrap.id}">kb{wrap.id} 可以礼品包装吗</option>' in page
    assert 'formaction="/learning/kb"' in page
    r = boss.post(console["url"] + "/learning/kb", data={"ids": [a, b], "kb_entry": str(wrap.id)},
                  allow_redirects=False, timeout=30)  # fmt: skip
    assert r.status_code == 303, r.text[:1000]
    assert kb.get(wrap.id).phrasings == ["能帮我包成礼物吗", "送人的能不能包装好看点"]  # type: ignore[arg-type,union-attr]
    assert inbox.get(a).resolution == f"kb:{wrap.id}"  # type: ignore[union-attr]
    notice = boss.get(console["url"] + r.headers["location"], timeout=10).text
    assert f"已补充知识库条目 kb{wrap.id}" in notice and "重新训练" in notice
    assert TrainingRunStore(db).latest(1)[0]["state"] == "queued"  # the retrain is requested
    # a new entry from a message, with its answer (JSON for scripts)
    c = seen(inbox, "g3", "cust-g3", "可以寄到海外吗")
    r = boss.post(console["url"] + "/learning/kb", headers={"Accept": "application/json"},
                  data={"ids": [c], "kb_entry": "new", "kb_answer": "暂时只发中国大陆哦～"},
                  timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text[:1000]
    created = kb.get(r.json()["entry_id"])
    assert created is not None and r.json()["created"]
    assert (created.question, created.answer) == ("可以寄到海外吗", "暂时只发中国大陆哦～")
    # without an answer a new entry is refused, the message stays open
    d = seen(inbox, "g4", "cust-g4", "有没有实体发票盒")
    r = boss.post(console["url"] + "/learning/kb", data={"ids": [d], "kb_entry": "new"}, timeout=30)
    assert r.status_code == 400 and "需要填写答案" in r.text
    assert inbox.get(d).status == "open"  # type: ignore[union-attr]
    # admins only
    agent = login(console, "after")
    r = agent.post(console["url"] + "/learning/kb",
                   data={"ids": [d], "kb_entry": str(wrap.id)}, timeout=10)  # fmt: skip
    assert r.status_code == 403 and inbox.get(d).status == "open"  # type: ignore[union-attr]


def test_variants_page_add_pin_switch_off(console: dict[str, Any]) -> None:
    boss = login(console, "boss")
    page = boss.get(console["url"] + "/learning/variants", timeout=10)
    assert page.status_code == 200 and "欢迎语" in page.text and "{shop_name}" in page.text
    url = console["url"] + "/learning/variants/greet_intro"
    r = boss.post(url, data={"action": "add", "text": "您好呀～{bot_name}在线，想看点什么？",
                             "segment": "", "daypart": "night"}, allow_redirects=False, timeout=10)  # fmt: skip
    assert r.status_code == 303
    key = variant_key("您好呀～{bot_name}在线，想看点什么？")
    store: VariantStore = console["variants"]
    added = {v.key: v for v in store.variants("greet_intro")}
    assert added[key].daypart == "night"
    assert (
        boss.post(
            url, data={"action": "pin", "variant": key}, allow_redirects=False, timeout=10
        ).status_code
        == 303
    )
    assert [v.key for v in store.variants("greet_intro") if v.pinned] == [key]
    assert (
        boss.post(
            url, data={"action": "off", "variant": key}, allow_redirects=False, timeout=10
        ).status_code
        == 303
    )
    off = {v.key: v for v in store.variants("greet_intro")}[key]
    assert not off.active and not off.pinned
    r = boss.post(url, data={"action": "pin", "variant": "nope"}, timeout=10)
    assert r.status_code == 400 and "未知" in r.text
    r = boss.post(
        console["url"] + "/learning/variants/utter_nothing", data={"action": "unpin"}, timeout=10
    )
    assert r.status_code == 404
