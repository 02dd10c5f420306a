"""The agents' workspace (issue 16): unread counts, ownership, transfers, internal notes,
customer profiles, search, history paging, images, safe settings, and the slips the
issue lists. HTTP tests run against the real console process and the fake of Rasa's API
of test_console.py."""

# ruff: noqa: F811 - the console fixture of test_console.py is used by name
from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
import requests

from tests.unit.test_console import (  # noqa: F401 - the console fixture is used by name
    PASSWORD,
    TOKEN,
    FakeRasa,
    console,
    csrf_of,
    login,
    new_handoff,
)
from xiaoer.handoff.activity import ActivityStore, waiting_since
from xiaoer.handoff.customers import CustomerStore
from xiaoer.handoff.store import HandoffStore
from xiaoer.text.placeholders import GREETING_PLACEHOLDERS, placeholder_error

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def customer_writes(console: dict[str, Any], handoff: Any, text: str) -> None:
    """What the channels do for a customer message while a handoff is open."""
    console["fake"].customer_says(handoff.sender_id, text)
    ActivityStore(console["data"] / "xiaoer.db").customer_message(handoff, text)


def queue_of(s: requests.Session, console: dict[str, Any]) -> dict[str, Any]:
    return s.get(f"{console['url']}/api/queue", timeout=10).json()


def row(queue: dict[str, Any], handoff_id: int) -> dict[str, Any]:
    return next(i for i in queue["items"] if i["id"] == handoff_id)


# --- stores ---------------------------------------------------------------------------------
def test_unread_counts_rise_with_customer_messages_and_clear_when_read(data_dir):
    store = HandoffStore(data_dir / "xiaoer.db")
    activity = ActivityStore(data_dir / "xiaoer.db")
    h = store.request("rest:unread", "requested", group="售后")
    store.take(h.id, 7)
    before = store.revision()
    activity.customer_message(h, "还在吗")
    activity.customer_message(h, "我的快递到哪了")
    assert store.revision() != before  # the live queue sees the message
    assert activity.unread(7, [h.id]) == {h.id: 2}
    assert activity.activity([h.id])[h.id].last_customer_text == "我的快递到哪了"
    assert activity.mark_read(h.id, 7) == 2
    assert activity.unread(7, [h.id]) == {}
    activity.customer_message(h, "？")
    assert activity.unread(7, [h.id]) == {h.id: 1}
    assert activity.unread(8, [h.id]) == {h.id: 3}  # per agent


def test_wait_counts_from_the_last_unanswered_customer_message(data_dir, monkeypatch):
    from xiaoer.core.clock import now_beijing

    store = HandoffStore(data_dir / "xiaoer.db")
    activity = ActivityStore(data_dir / "xiaoer.db")
    h = store.request("rest:wait", "requested", group="售后")
    assert waiting_since(h, None) == h.created_at.replace("+08:00", "+08:00")
    later = now_beijing() + timedelta(minutes=3)
    monkeypatch.setattr("xiaoer.handoff.activity.now_beijing", lambda: later)
    activity.customer_message(h, "人呢")
    since = waiting_since(store.get(h.id), activity.activity([h.id])[h.id])
    assert since is not None and since.startswith(later.isoformat(timespec="seconds")[:16])
    monkeypatch.setattr("xiaoer.handoff.store.now_beijing", lambda: later + timedelta(minutes=1))
    store.agent_replied(h.id)
    assert waiting_since(store.get(h.id), activity.activity([h.id])[h.id]) is None


def test_customer_profiles_keep_notes_and_only_the_merchants_tags(data_dir):
    from xiaoer.core.settings import SettingsStore

    SettingsStore(data_dir / "xiaoer.db").save("customer_tags", ["VIP", "批发"])
    customers = CustomerStore(data_dir / "xiaoer.db")
    customers.set_nickname("dy-open-1", "小红")
    saved = customers.update("dy-open-1", "after", tags=["VIP", "黑名单"], note="喜欢顺丰")
    assert (saved.nickname, saved.tags, saved.note) == ("小红", ["VIP"], "喜欢顺丰")
    assert customers.with_tag("VIP") == ["dy-open-1"]
    assert [p.sender_id for p in customers.search("顺丰")] == ["dy-open-1"]


def test_history_pages_reach_every_closed_conversation(data_dir):
    store = HandoffStore(data_dir / "xiaoer.db")
    for n in range(63):
        h = store.request(f"rest:closed-{n}", "requested", group="售前" if n % 2 else "售后")
        store.close(h.id, f"备注{n}")
    first, total = store.closed_page(0, 50)
    second, _ = store.closed_page(50, 50)
    assert total == 63 and len(first) == 50 and len(second) == 13
    assert {r.id for r in first} | {r.id for r in second} == {r.id for r in first + second}
    only, total = store.closed_page(0, 50, visible_to=(99, ["售前"]))
    assert total == 31 and all(r.group_name == "售前" for r in only)


def test_search_finds_conversations_by_order_phone_and_later_messages(data_dir):
    store = HandoffStore(data_dir / "xiaoer.db")
    h = store.request(
        "rest:searchable",
        "requested",
        summary={"order_id": "6938271045123400002", "last_messages": []},
    )
    other = store.request("rest:other", "requested")
    ActivityStore(data_dir / "xiaoer.db").customer_message(other, "电话 13912345678 打不通")
    assert [r.id for r in store.search("6938271045123400002")] == [h.id]
    assert [r.id for r in store.search("13912345678")] == [other.id]


# --- slips ------------------------------------------------------------------------------------
def test_every_handoff_reason_the_actions_use_has_a_chinese_label():
    from pathlib import Path

    from xiaoer.console import labels

    root = Path(__file__).resolve().parents[2] / "actions"
    source = "\n".join(p.read_text(encoding="utf-8") for p in root.glob("*.py"))
    used = set(re.findall(r'hand_over\(\s*dispatcher,\s*tracker,\s*"([a-z_]+)"', source))
    used |= set(re.findall(r'offer_human\(\s*dispatcher,\s*tracker,\s*"([a-z_]+)"', source))
    used |= {"cancel_paid_order", "order_id_missing", "requested", "complaint", "keyword"}
    assert used and not [code for code in used if code not in labels.REASONS]
    assert labels.reason("cancel_paid_order") == "取消已付款订单"
    assert labels.reason("some_new_code") == "其他原因"  # never the raw code


async def test_first_in_line_never_hears_zero_ahead_and_a_taken_chat_is_not_a_queue(
    data_dir, monkeypatch
):
    from xiaoer.core.clock import now_beijing
    from xiaoer.core.settings import handoff_settings
    from xiaoer.handoff.desk import HandoffDesk

    fake = FakeRasa()
    try:
        store = HandoffStore(data_dir / "xiaoer.db")
        store.request("first", "requested", group="售后")
        taken = store.request("taken", "requested", group="售后")
        store.take(taken.id, 3)
        later = now_beijing() + timedelta(minutes=6)
        monkeypatch.setattr("xiaoer.handoff.store.now_beijing", lambda: later)
        assert await HandoffDesk(fake.url, TOKEN, store).reannounce_due(handoff_settings()) == 2
        first = [e["text"] for e in fake.events["first"] if e["event"] == "bot"]
        held = [e["text"] for e in fake.events["taken"] if e["event"] == "bot"]
        assert "前面还有0位" not in first[0] and "下一位就轮到您" in first[0]
        assert "排队" not in held[0] and "客服已经在查看" in held[0]
    finally:
        fake.server.shutdown()


def test_lead_assignment_notes_name_the_agent_by_display_name(data_dir):
    from xiaoer.agents import AgentStore
    from xiaoer.leads.store import CapturedContact, LeadStore

    agents = AgentStore(data_dir / "xiaoer.db")
    agents.create("agent_li", PASSWORD, display_name="李客服", groups=["售前"])
    li = agents.by_username("agent_li")
    leads = LeadStore(data_dir / "xiaoer.db")
    lead = leads.record_message(
        "rest:lead-1", text="我要批发100件 电话13800001111", intent="ask_price",
        contacts=[CapturedContact("phone", "13800001111")],
    ).lead  # fmt: skip
    assert lead is not None and li is not None
    leads.set_assignee(lead.id, li.id, "boss")
    texts = [n.text for n in leads.notes(lead.id)]
    assert "分配给客服李客服" in texts and not any("#" in t for t in texts)


def test_a_recipient_phone_typed_in_an_address_change_is_not_a_lead_and_merges_nobody(data_dir):
    from xiaoer.leads.capture import handle_event
    from xiaoer.leads.store import get_lead_store

    def user(sender: str, text: str, intent: str = "inform") -> dict[str, Any]:
        return {
            "event": "user", "sender_id": sender, "text": text, "timestamp": time.time(),
            "parse_data": {
                "intent": {"name": intent},
                "entities": [{"entity": "phone", "value": "13955556666"}],
            },
        }  # fmt: skip

    # two unrelated customers send the same new recipient's phone while changing an address
    for sender in ("rest:buyer-a", "rest:buyer-b"):
        handle_event({"event": "active_loop", "sender_id": sender, "name": "address_form"})
        handle_event(user(sender, "收件人电话 13955556666"))
        handle_event({"event": "active_loop", "sender_id": sender, "name": None})
    store = get_lead_store()
    assert store.lead_for("rest:buyer-a") is None or not store.contacts_for("rest:buyer-a")
    assert store.contacts_for("rest:buyer-b") == []
    a, b = store.lead_for("rest:buyer-a"), store.lead_for("rest:buyer-b")
    assert a is None or b is None or a.id != b.id  # not merged into one
    # after the form, the customer's own phone is captured as before
    handle_event(user("rest:buyer-a", "我的电话 13955556666，请联系我", "provide_contact"))
    assert [c["kind"] for c in store.contacts_for("rest:buyer-a")] == ["phone"]


async def test_the_rest_inbox_never_hands_out_the_agents_name(data_dir):
    from xiaoer.channels.rest import InboxOutputChannel
    from xiaoer.conversations.inbox import get_rest_inbox

    await InboxOutputChannel().send_response(
        "rest:inbox-user",
        {"text": "您好，已为您处理", "agent_id": 3, "agent_name": "王主管", "handoff_id": 9},
    )
    [message] = get_rest_inbox().since("rest:inbox-user")
    assert message["text"] == "您好，已为您处理"
    assert "王主管" not in json.dumps(message, ensure_ascii=False)
    assert "agent_id" not in message and "handoff_id" not in message


def test_placeholders_are_checked():
    assert placeholder_error("欢迎{nickname}来到{shop_name}", GREETING_PLACEHOLDERS) is None
    assert "花括号不成对" in (placeholder_error("欢迎{nickname来到", GREETING_PLACEHOLDERS) or "")
    assert "花括号不成对" in (placeholder_error("欢迎 } 光临", GREETING_PLACEHOLDERS) or "")
    assert "{name}" in (placeholder_error("您好{name}", GREETING_PLACEHOLDERS) or "")


def test_a_broken_greeting_saved_earlier_falls_back_to_the_default():
    from dataclasses import replace

    from xiaoer.douyin.greetings import GreetingSettings, render_greeting

    settings = GreetingSettings.from_section({})
    broken = replace(settings, scripts={"new_customer": {"day": ["欢迎{光临"]}})
    text = render_greeting(broken, "new_customer", "day", {"shop_name": "示例店"})
    assert text and "{" not in text


# --- over HTTP --------------------------------------------------------------------------------
def test_the_csrf_error_page_explains_and_offers_a_way_back(console):
    h = new_handoff(console, "csrf-page-user")
    s = login(console, "after")
    s.headers.pop("X-CSRF-Token")
    r = s.post(
        f"{console['url']}/handoffs/{h.id}/handback",
        data={"note": "x"},
        headers={"Referer": f"{console['url']}/handoffs/{h.id}"},
        timeout=10,
    )
    assert r.status_code == 403
    assert "页面已过期" in r.text and f'href="/handoffs/{h.id}"' in r.text
    assert 'class="topbar"' in r.text  # the console's own page, not a bare message


def test_a_second_agent_sees_who_holds_the_chat(console):
    console["agents"].create("after2", PASSWORD, display_name="小售后二", groups=["售后"])
    h = new_handoff(console, "held-user")
    first, second = login(console, "after"), login(console, "after2")
    assert first.post(f"{console['url']}/handoffs/{h.id}/take", timeout=10).ok
    page = second.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text
    assert '接待人：<b id="conv-holder">小售后</b>' in page
    r = second.post(f"{console['url']}/handoffs/{h.id}/take", timeout=10)
    assert r.status_code == 409 and "该会话已由小售后接待" in r.text
    r = second.post(
        f"{console['url']}/api/handoffs/{h.id}/reply", json={"text": "你好"}, timeout=10
    )
    assert r.status_code == 409 and r.json()["holder"] == "小售后"
    assert row(queue_of(second, console), h.id)["agent"] == "小售后"


def test_an_admin_confirms_before_replying_in_someone_elses_chat(console):
    h = new_handoff(console, "admin-warn-user")
    agent, boss = login(console, "after"), login(console, "boss")
    agent.post(f"{console['url']}/handoffs/{h.id}/take", timeout=10)
    page = boss.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text
    assert 'id="intervene-box"' in page and "小售后" in page
    url = f"{console['url']}/api/handoffs/{h.id}/reply"
    r = boss.post(url, json={"text": "主管来了"}, timeout=10)
    assert r.status_code == 409 and r.json()["error"] == "held_by_other"
    sent = [e for e in console["fake"].events[h.sender_id] if e.get("text") == "主管来了"]
    assert sent == []
    assert boss.post(url, json={"text": "主管来了", "override": True}, timeout=10).ok


def test_an_agent_transfers_to_a_colleague_with_a_note_and_both_hear_it_live(console):
    console["agents"].create("after3", PASSWORD, display_name="小售后三", groups=["售后"])
    h = new_handoff(console, "transfer-user")
    giver, taker = login(console, "after"), login(console, "after3")
    giver.post(f"{console['url']}/handoffs/{h.id}/take", timeout=10)
    streams = {
        name: sess.get(f"{console['url']}/api/queue/stream", stream=True, timeout=10)
        for name, sess in (("giver", giver), ("taker", taker))
    }
    events = {name: stream.iter_lines(chunk_size=1) for name, stream in streams.items()}

    def next_event(name: str) -> tuple[str, Any]:
        kind = ""
        for raw in events[name]:
            line = raw.decode("utf-8")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                return kind, json.loads(line[6:])
        raise AssertionError("stream ended")

    for name in streams:
        assert next_event(name)[0] == "queue"  # the queue as it is
    taker_id = console["agents"].by_username("after3").id
    r = giver.post(
        f"{console['url']}/handoffs/{h.id}/transfer",
        data={"group": "", "agent_id": str(taker_id), "note": "客户要发票，请跟进"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    started = time.monotonic()
    kind, notice = next_event("taker")
    assert kind == "notice", notice
    assert notice["text"] == f"小售后 把会话 #{h.id}转给了您（备注：客户要发票，请跟进）"
    kind, queue = next_event("taker")
    assert kind == "queue" and any(i["id"] == h.id for i in queue["my_chats"])
    kind, queue = next_event("giver")  # no notice: they did it themselves
    assert kind == "queue" and not any(i["id"] == h.id for i in queue["my_chats"])
    assert time.monotonic() - started < 2.0
    for stream in streams.values():
        stream.close()
    assert console["handoffs"].get(h.id).agent_id == taker_id
    assert queue_of(taker, console)["mine"] >= 1
    lines = taker.get(f"{console['url']}/api/handoffs/{h.id}/messages", timeout=10).json()["lines"]
    assert any("转给了 小售后三：客户要发票" in line["text"] for line in lines)
    r = giver.post(f"{console['url']}/api/handoffs/{h.id}/reply", json={"text": "x"}, timeout=10)
    assert r.status_code == 409  # no longer theirs


def test_unread_counts_in_the_queue_feed_and_read_clears_them(console):
    h = new_handoff(console, "unread-user")
    s = login(console, "after")
    s.post(f"{console['url']}/handoffs/{h.id}/take", timeout=10)
    customer_writes(console, h, "还有个问题")
    customer_writes(console, h, "发票怎么开？")
    queue = queue_of(s, console)
    mine = next(i for i in queue["my_chats"] if i["id"] == h.id)
    assert mine["unread"] == 2 and mine["preview"] == "发票怎么开？"
    assert mine["waiting_seconds"] is not None
    assert s.post(f"{console['url']}/api/handoffs/{h.id}/read", json={}, timeout=10).ok
    assert next(i for i in queue_of(s, console)["my_chats"] if i["id"] == h.id)["unread"] == 0


def test_internal_notes_stay_in_the_console(console):
    h = new_handoff(console, "note-user")
    s = login(console, "after")
    before = len(console["fake"].events[h.sender_id])
    r = s.post(
        f"{console['url']}/api/handoffs/{h.id}/notes", json={"text": "客户脾气急"}, timeout=10
    )
    assert r.ok
    assert len(console["fake"].events[h.sender_id]) == before  # nothing went to Rasa
    lines = s.get(f"{console['url']}/api/handoffs/{h.id}/messages", timeout=10).json()["lines"]
    assert [(x["who"], x["text"]) for x in lines if x["who"] == "note"] == [("note", "客户脾气急")]


def test_customer_tags_and_notes_follow_the_customer_to_the_next_conversation(console):
    h = new_handoff(console, "profile-user")
    s = login(console, "after")
    page = s.get(f"{console['url']}/handoffs/{h.id}", timeout=10).text
    r = s.post(
        f"{console['url']}/customers/profile",
        data={"handoff_id": h.id, "tags": ["VIP", "不存在的标签"], "note": "只收顺丰", "csrf_token": csrf_of(page)},
        allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 302
    console["handoffs"].close(h.id, "已处理")
    again = console["handoffs"].request("profile-user", "requested", group="售后")
    page = s.get(f"{console['url']}/handoffs/{again.id}", timeout=10).text
    assert "只收顺丰" in page and 'value="VIP" checked' in page and "不存在的标签" not in page
    assert f'href="/handoffs/{h.id}"' in page  # the earlier conversation


def test_search_by_order_and_phone_masks_the_phone_for_agents(console):
    h = new_handoff(console, "search-user")
    customer_writes(console, h, "我电话是13766668888")
    agent, boss = login(console, "after"), login(console, "boss")
    by_order = agent.get(
        f"{console['url']}/search", params={"q": "6938271045123400002"}, timeout=10
    )
    assert 'id="result-orders"' in by_order.text and f'href="/handoffs/{h.id}"' in by_order.text
    page = agent.get(f"{console['url']}/search", params={"q": "137 6666 8888"}, timeout=10).text
    masked = page[page.index('id="result-conversations"') :]  # the results (not the query)
    assert f'href="/handoffs/{h.id}"' in masked
    assert "13766668888" not in masked and "137****8888" in masked
    full = boss.get(f"{console['url']}/search", params={"q": "13766668888"}, timeout=10).text
    assert "13766668888" in full[full.index('id="result-conversations"') :]


def test_history_has_pages(console):
    for n in range(55):
        h = console["handoffs"].request(f"paged-{n}", "requested", group="售后")
        console["handoffs"].close(h.id, "")
    s = login(console, "after")
    first = s.get(f"{console['url']}/history", timeout=10).text
    assert 'id="next-page"' in first
    second = s.get(f"{console['url']}/history", params={"page": 2}, timeout=10).text
    assert "第 2 页" in second and second.count("/handoffs/") >= 5


def test_an_agent_sends_an_image_through_the_channel(console):
    h = new_handoff(console, "image-user")
    s = login(console, "after")
    url = f"{console['url']}/api/handoffs/{h.id}/image"
    bad = s.post(url, files={"image": ("x.png", b"not an image", "image/png")}, timeout=10)
    assert bad.status_code == 415 and "图片" in bad.json()["message"]
    r = s.post(url, files={"image": ("shot.png", PNG, "image/png")}, timeout=10)
    assert r.ok, r.text
    image_url = r.json()["url"]
    sent = [e for e in console["fake"].events[h.sender_id] if e["event"] == "bot"]
    assert sent[-1]["data"] == {"image": image_url}
    assert sent[-1]["metadata"]["agent_id"] == console["agents"].by_username("after").id
    served = requests.get(image_url, timeout=10)
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["Content-Type"] == "image/png"
    assert requests.get(f"{console['url']}/media/..%2Fxiaoer.db", timeout=10).status_code == 404


def test_a_broken_placeholder_is_refused_next_to_its_field_and_nothing_typed_is_lost(console):
    s = login(console, "boss")
    page = s.get(f"{console['url']}/admin/settings", timeout=10).text
    form = dict(re.findall(r'<input name="([a-z_]+)" value="([^"]*)"', page))
    form.update(
        {
            "csrf_token": csrf_of(page),
            "groups": "售前\n售后\n投诉",
            "quick_replies": "您好，请稍等\n新的一条快捷回复",
            "greet_new_customer_day": "欢迎{nickname光临{shop_name}",
            "keywords": "12315\n律师",
        }
    )
    r = s.post(f"{console['url']}/admin/settings", data=form, timeout=10)
    assert r.status_code == 400
    assert 'id="error-greet_new_customer_day"' in r.text and "花括号不成对" in r.text
    assert "新的一条快捷回复" in r.text and "欢迎{nickname光临{shop_name}" in r.text
    assert "新的一条快捷回复" not in (
        console["settings"].overrides(fresh=True).get("quick_replies") or []
    )


def test_a_failed_new_agent_keeps_what_was_typed(console):
    s = login(console, "boss")
    page = s.get(f"{console['url']}/admin/agents", timeout=10).text
    r = s.post(
        f"{console['url']}/admin/agents",
        data={"username": "new_agent", "display_name": "新同事", "password": "short",
              "role": "agent", "groups": ["售前"], "csrf_token": csrf_of(page)},
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 400
    assert 'value="new_agent"' in r.text and 'value="新同事"' in r.text
    assert 'value="售前" checked' in r.text


@pytest.mark.parametrize("path", ["/workspace", "/search?q=订单"])
def test_workspace_pages_need_login(console, path):
    r = requests.get(f"{console['url']}{path}", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def test_an_agents_uploaded_image_reaches_a_douyin_customer_as_a_link():
    from xiaoer.douyin.replies import render_parts
    from xiaoer.douyin.settings import ChannelSettings

    url = "https://shop.example.com/media/abc.png"
    parts, _ = render_parts([{"image": url}], ChannelSettings())
    assert [p.content["msg_type"] for p in parts] == [1]
    assert url in parts[0].content["text"]["text"]
