"""The bot's profile (name, avatar, welcome, sign-off, service hours) applied to the answers,
the Douyin greeting and session start; the test chat's sandbox (no lead, no handoff row)
and its explanations."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from actions.common import shop_facts
from actions.greeting import ActionDouyinGreet
from actions.handoff import ActionHandoff
from actions.session import ActionSessionStart
from tests.helpers import run, texts, tracker
from xiaoer.channels.sandbox import explain_events
from xiaoer.core.profile import ProfileError, bot_profile, get_profile_store, validate_profile
from xiaoer.core.senders import is_sandbox, sandbox_id
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff import get_handoff_store
from xiaoer.leads.capture import handle_event
from xiaoer.leads.store import get_lead_store

pytestmark = pytest.mark.usefixtures("data_dir")


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def save_profile(**form):
    values = {
        "name": "小美", "welcome": "", "sign_off": "", "service_start": "09:00",
        "service_end": "22:00", **form,
    }  # fmt: skip
    return get_profile_store().save(validate_profile(values), by="boss")


# --- profile ------------------------------------------------------------------------------
def test_profile_validation_names_each_field():
    with pytest.raises(ProfileError) as caught:
        validate_profile({"name": "", "welcome": "欢迎光临{shop", "sign_off": "再见{who}",
                          "service_start": "9点", "service_end": "22:00"})  # fmt: skip
    errors = caught.value.errors
    assert set(errors) == {"name", "welcome", "sign_off", "service_hours"}
    assert "花括号" in errors["welcome"] and "未知的占位符 {who}" in errors["sign_off"]


def test_profile_defaults_come_from_xiaoer_yml():
    profile = bot_profile()
    assert (
        profile.name == "店小二"
        and profile.welcome == ""
        and profile.service_hours == "09:00-22:00"
    )


def test_saved_profile_is_used_by_answers_and_handoff_hours():
    save_profile(name="小美", service_start="08:30", service_end="23:00")
    facts = shop_facts()
    assert facts["bot_name"] == "小美" and facts["service_hours"] == "08:30-23:00"
    assert handoff_settings().hours_text == "08:30-23:00"


async def test_douyin_greeting_uses_the_profile():
    save_profile(name="小美", service_start="08:00", service_end="20:00")
    t = tracker(
        intent="EXTERNAL_douyin_greet",
        metadata={"is_external": True, "buyer_id": "fan_9", "nickname": "阿花"},
        entities=[{"entity": "douyin_event", "value": "new_follow_action"}],
    )
    messages, _ = await run(ActionDouyinGreet(), t)
    text = texts(messages)
    assert "店小二" not in text
    assert "小美" in text  # every new-follower script names the bot


async def test_welcome_on_a_customers_first_message_and_sign_off_slot():
    save_profile(
        welcome="您好，我是{shop_name}的{bot_name}，很高兴为您服务！",
        sign_off="{bot_name}祝您购物愉快～",
    )
    first = tracker(
        events=[{"event": "action", "name": "action_listen"}], sender_id="rest:new-customer"
    )
    messages, events = await run(ActionSessionStart(), first)
    assert texts(messages) == "您好，我是小二优选旗舰店的小美，很高兴为您服务！"
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    assert slots["bot_name"] == "小美"
    assert slots["sign_off"] == "小美祝您购物愉快～" and slots["has_sign_off"] is True
    # a returning conversation (earlier messages) and a Douyin greeting get no welcome
    again = tracker(sender_id="rest:old-customer")
    assert (await run(ActionSessionStart(), again))[0] == []
    greeted = tracker(
        events=[{"event": "action", "name": "action_listen"}],
        slots={"session_started_metadata": {"douyin_event": "im_enter_direct_msg"}},
    )
    assert (await run(ActionSessionStart(), greeted))[0] == []


async def test_no_welcome_and_default_goodbye_without_a_profile():
    messages, events = await run(
        ActionSessionStart(), tracker(events=[{"event": "action", "name": "action_listen"}])
    )
    assert messages == []
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    assert slots["has_sign_off"] is False


def test_avatar_upload_is_checked_stored_and_served():
    store = get_profile_store()
    with pytest.raises(ValueError, match="PNG"):
        store.save_avatar(b"<svg onload=alert(1)>", by="boss")
    with pytest.raises(ValueError, match="不能超过"):
        store.save_avatar(b"\x89PNG\r\n\x1a\n" + b"0" * 600_000, by="boss")
    digest = store.save_avatar(png(), by="boss")
    assert bot_profile().avatar == digest
    assert store.avatar(digest) == ("image/png", png())
    # saving the rest of the profile keeps the avatar
    save_profile(name="小美")
    assert bot_profile().avatar == digest and bot_profile().avatar_url.startswith("/profile/avatar")


# --- sandbox ------------------------------------------------------------------------------
def test_only_sandbox_conversations_are_sandboxed():
    assert is_sandbox(sandbox_id("1-abc")) and is_sandbox("test-chat:x")
    assert not is_sandbox("rest:test-chat:x") and not is_sandbox("buyer_1") and not is_sandbox("")


def test_a_test_chat_phone_number_makes_no_lead():
    event = {
        "event": "user", "sender_id": sandbox_id("1-abc"), "text": "我要批发，手机13812345678",
        "message_id": "m1", "timestamp": 1.0, "input_channel": "sandbox", "metadata": {},
        "parse_data": {"intent": {"name": "ask_wholesale"}, "entities": []},
    }  # fmt: skip
    assert handle_event(event) is None
    assert get_lead_store().list_leads() == []
    # the same message from a real customer is a lead
    assert handle_event({**event, "sender_id": "rest:real"}).lead is not None


async def test_a_test_chat_handoff_creates_no_queue_entry_and_no_pause():
    t = tracker("request_human", "转人工", sender_id=sandbox_id("1-abc"))
    messages, events = await run(ActionHandoff(), t)
    assert "测试会话" in texts(messages)
    assert get_handoff_store().active_for(sandbox_id("1-abc")) is None
    assert not [e for e in events if e.get("event") == "pause"]


def test_explanations_name_intent_rule_retrieval_form_and_actions():
    events = [
        {"event": "user", "text": "发票怎么开", "parse_data": {
            "intent": {"name": "keyword_reply", "confidence": 1.0, "keyword_rule": 7},
            "intent_ranking": [{"name": "keyword_reply", "confidence": 1.0}], "entities": []}},
        {"event": "action", "name": "action_keyword_reply", "policy": "RulePolicy", "confidence": 1.0},
        {"event": "bot", "text": "电子发票", "metadata": {"keyword_rule": 7}},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "退货运费谁出", "parse_data": {
            "intent": {"name": "faq", "confidence": 0.93}, "entities": [],
            "response_selector": {"faq": {"response": {"intent_response_key": "faq/kb3", "confidence": 0.88}}}}},
        {"event": "action", "name": "utter_faq", "policy": "RulePolicy", "confidence": 1.0},
        {"event": "user", "text": "查订单", "parse_data": {"intent": {"name": "order_status", "confidence": 0.97}}},
        {"event": "action", "name": "order_status_form", "policy": "RulePolicy", "confidence": 1.0},
        {"event": "active_loop", "name": "order_status_form"},
        {"event": "slot", "name": "requested_slot", "value": "order_id"},
    ]  # fmt: skip
    first, second, third = explain_events(events)
    assert first["intent"] == "keyword_reply" and first["keyword_rule"] == 7
    assert first["actions"] == [
        {"name": "action_keyword_reply", "policy": "RulePolicy", "confidence": 1.0}
    ]
    assert first["replies"][0]["keyword_rule"] == 7
    assert second["retrieval"] == {"key": "faq/kb3", "confidence": 0.88}
    assert third["forms"] == ["order_status_form"] and third["slots"] == {}
    assert first["decided_by"] is None


def test_explanations_say_how_the_knowledge_base_decided():
    def turn(intent: dict[str, Any]) -> dict[str, Any]:
        [only] = explain_events([{"event": "user", "text": "x", "parse_data": {"intent": intent}}])
        return only

    assert turn({"name": "faq", "knowledge_match_kind": "closer"})["decided_by"] == "closer"
    assert turn({"name": "refund", "classifier": "intents_alone"})["decided_by"] == "intents_alone"
    declined = turn({"name": "change_address", "knowledge_base_declined": 31.5})
    assert declined["decided_by"] == "kb_declined"


def test_a_knowledge_base_answer_names_its_entry_and_an_edit_link(project_db):
    from xiaoer.console.testchat_views import decorate
    from xiaoer.knowledge import Entry, KnowledgeStore

    store = KnowledgeStore(project_db)
    entry = store.save(
        Entry(question="可以货到付款吗", answer="暂不支持货到付款", phrasings=["能到付吗"])
    )
    events = [
        {"event": "user", "text": "能到付吗", "parse_data": {
            "intent": {"name": "faq", "confidence": 0.95}, "entities": [],
            "response_selector": {"faq": {"response": {
                "intent_response_key": entry.intent, "confidence": 0.91}}}}},
        {"event": "action", "name": "action_kb_answer", "policy": "policy_2_RulePolicy",
         "confidence": 1.0},
        {"event": "bot", "text": "暂不支持货到付款", "metadata": {}},
    ]  # fmt: skip
    [turn] = [decorate(t) for t in explain_events(events)]
    assert turn["kb"] == {
        "id": entry.id,
        "question": "可以货到付款吗",
        "url": f"/knowledge/{entry.id}",
    }
    assert turn["actions"][0]["policy_label"] == "规则（data/rules）"
    # an entry deleted since: the answer is explained without a dead link
    store.delete(entry.id or 0)
    [gone] = [decorate(t) for t in explain_events(events)]
    assert "kb" not in gone


async def test_a_test_chat_urge_records_nothing_in_the_agents_queue():
    from actions.urge import ActionUrgeShipment
    from xiaoer.shop.urges import get_urge_store

    paid = "6938271045123400001"
    t = tracker("urge_shipment", slots={"order_id": paid}, sender_id=sandbox_id("1-u"))
    messages, _ = await run(ActionUrgeShipment(), t)
    assert texts(messages)
    assert get_urge_store().for_order(paid) == []
    # a real customer's urge is recorded
    await run(ActionUrgeShipment(), tracker("urge_shipment", slots={"order_id": paid}))
    assert len(get_urge_store().for_order(paid)) == 1
