"""Handoff: triggers, queue, routing, pause, wait estimate, off hours, keywords, settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa_sdk.events import ConversationPaused, SlotSet

from actions.handoff import ActionHandoff, ActionOfferHuman, hand_over
from tests.helpers import run, texts, tracker
from xiaoer.agents import get_agent_store
from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.settings import allowed, get_settings_store, handoff_settings
from xiaoer.handoff import get_handoff_store
from xiaoer.nlu.keywords import HandoffKeywordClassifier

pytestmark = pytest.mark.usefixtures("data_dir")


def hours(open_now: bool) -> None:
    """Working hours that include (or exclude) the current Beijing time."""
    now = now_beijing()
    if open_now:
        start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    else:
        start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    if start.date() != now.date() or end.date() != now.date():  # near midnight
        start, end = (now - timedelta(minutes=5), now + timedelta(minutes=5)) if open_now else (
            now + timedelta(minutes=5), now + timedelta(minutes=10))  # fmt: skip
    get_settings_store().save("working_hours", {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"})


def history(*turns: tuple[str, str]) -> list[dict]:
    events = []
    for intent, text in turns:
        parse = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}
        if intent == "order_status":
            parse["entities"] = [{"entity": "order_id", "value": "6938271045123400002"}]
        events += [{"event": "user", "text": text, "parse_data": parse}]
        events += [{"event": "bot", "text": f"回复：{text}"}]
    return events


async def test_request_in_hours_pauses_the_bot_and_tells_the_wait():
    hours(open_now=True)
    get_agent_store().create("after", "good-pass-123", groups=["售后"])
    events = history(("order_status", "我的订单到哪了"), ("request_human", "转人工"))
    msgs, returned = await run(
        ActionHandoff(), tracker(intent="request_human", text="转人工", events=events)
    )
    text = texts(msgs)
    assert "您排在第一位" in text and "约3分钟" in text
    assert ConversationPaused() in returned and SlotSet("handoff_offered", False) in returned
    (request,) = get_handoff_store().waiting()
    assert request.group_name == "售后"  # routed by the topic, not by "转人工"
    assert request.intent == "order_status" and request.priority == 0
    assert request.summary["order_id"] == "6938271045123400002"
    said = [m["text"] for m in request.summary["last_messages"]]
    assert said[:3] == ["我的订单到哪了", "回复：我的订单到哪了", "转人工"]


async def test_wait_grows_with_the_queue_and_shrinks_with_agents():
    hours(open_now=True)
    for i in range(4):
        await run(ActionHandoff(), tracker_for(f"u{i}"))
    msgs, _ = await run(ActionHandoff(), tracker_for("u9"))
    assert "前面还有4位" in texts(msgs) and "约15分钟" in texts(msgs)  # (4+1) x 3 min, no agents
    get_agent_store().create("agent1", "good-pass-123", groups=["售前"])
    get_agent_store().create("agent2", "good-pass-123", groups=["售前"])
    msgs, _ = await run(ActionHandoff(), tracker_for("u10"))
    assert "前面还有5位" in texts(msgs) and "约9分钟" in texts(msgs)  # ceil(6 x 3 / 2)


def tracker_for(sender: str):
    t = tracker(intent="request_human", text="转人工")
    t.sender_id = sender
    return t


async def test_off_hours_asks_for_a_contact_and_does_not_pause():
    hours(open_now=False)
    msgs, events = await run(ActionHandoff(), tracker(intent="request_human", text="转人工"))
    text = texts(msgs)
    assert "不在人工客服在线时间" in text and "手机号或微信" in text
    assert handoff_settings().next_start() in text
    assert ConversationPaused() not in events
    (request,) = get_handoff_store().waiting()
    assert request.in_hours is False


async def test_complaint_goes_first_to_the_complaints_group():
    hours(open_now=True)
    await run(ActionHandoff(), tracker_for("calm"))
    t = tracker(intent="complain", text="你们服务太差了")
    t.sender_id = "angry"
    await run(ActionHandoff(), t)
    first, second = get_handoff_store().waiting()
    assert (first.sender_id, first.group_name, first.priority) == ("angry", "投诉", 2)
    assert second.sender_id == "calm"


async def test_keyword_forces_a_human_even_mid_form():
    hours(open_now=True)
    t = tracker(intent="complain", text="再不处理我就打12315")
    t.latest_message["intent"]["handoff_keyword"] = "12315"
    msgs, events = await run(ActionOfferHuman(), t)
    assert "人工客服" in texts(msgs) and ConversationPaused() in events
    (request,) = get_handoff_store().waiting()
    assert (request.reason, request.priority, request.group_name) == ("keyword", 2, "投诉")
    assert request.summary["keyword"] == "12315"


async def test_quality_issue_with_a_photo_is_a_priority():
    hours(open_now=True)
    t = tracker(
        intent="affirm",
        slots={"as_photo": "https://img.example/a.jpg", "as_reason": "质量问题", "order_id": "1"},
    )
    msgs, events = hand_over_run(t)
    (request,) = get_handoff_store().waiting()
    assert request.priority == 1 and request.summary["slots"]["as_photo"].endswith("a.jpg")
    assert "售后信息" in texts(msgs)


def hand_over_run(t):
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    events = hand_over(dispatcher, t, "after_sales", "售后信息", "照片 https://img.example/a.jpg")
    return dispatcher.messages, events


def test_store_lifecycle_and_active_for():
    store = get_handoff_store()
    r = store.request("s1", "requested", group="售前")
    again = store.request("s1", "complaint", priority=2)
    assert again.id == r.id and again.priority == 2  # one open request, priority raised
    assert store.active_for("s1").id == r.id and store.active_for("s2") is None
    assert store.take(r.id, agent_id=7) and not store.take(r.id, agent_id=8)
    assert store.get(r.id).status == "active"
    assert store.reassign(r.id, group="售后") and store.get(r.id).status == "waiting"
    assert store.close(r.id, "已处理") and store.active_for("s1") is None
    assert store.get(r.id).note == "已处理" and not store.close(r.id)
    assert store.request("s1", "requested").id != r.id  # a new case later


def test_revision_changes_with_the_queue():
    store = get_handoff_store()
    before = store.revision()
    r = store.request("s1", "requested")
    middle = store.revision()
    store.take(r.id, 1)
    assert len({before, middle, store.revision()}) == 3


def test_unanswered_requests_are_due_for_an_announcement(monkeypatch):
    store = get_handoff_store()
    r = store.request("s1", "requested")
    assert store.unanswered(60) == []
    later = now_beijing() + timedelta(minutes=6)
    monkeypatch.setattr("xiaoer.handoff.store.now_beijing", lambda: later)
    assert [x.id for x in store.unanswered(300)] == [r.id]
    store.mark_announced(r.id)
    assert store.unanswered(300) == []


def test_keywords_are_read_at_run_time_by_the_nlu_component():
    # the handoff keywords are keyword rules since issue 15 (xiaoer/keywords): the old
    # default keywords became rules, edited live without retraining
    from xiaoer.keywords import get_keyword_store

    store = get_keyword_store()
    lawyer = next(r for r in store.all(fresh=True) if r.keywords == ("律师",))
    component = HandoffKeywordClassifier({})
    message = Message({TEXT: "我要找律师告你们", INTENT: {"name": "refund", "confidence": 0.8}})
    component.process([message])
    assert message.get(INTENT) == {
        "name": "complain", "confidence": 1.0, "handoff_keyword": "律师", "keyword_rule": lawyer.id,
    }  # fmt: skip
    store.set_enabled(lawyer.id, False)
    store.add({"keywords": "黑猫投诉", "action": "handoff", "handoff_reason": "complaint"})
    untouched = Message({TEXT: "我要找律师", INTENT: {"name": "refund", "confidence": 0.8}})
    component.process([untouched])
    assert untouched.get(INTENT)["name"] == "refund"
    forced = Message({TEXT: "去黑猫投诉你们", INTENT: {"name": "nlu_fallback", "confidence": 0.3}})
    component.process([forced])
    assert forced.get(INTENT)["name"] == "complain"


def test_admin_permission_overrides_xiaoer_yml():
    assert allowed("change_address") is True
    get_settings_store().save("permissions", {"change_address": False})
    get_settings_store().overrides(fresh=True)
    assert allowed("change_address") is False
    assert handoff_settings().permissions["change_address"] is False


def test_working_hours_and_next_start():
    get_settings_store().save("working_hours", {"start": "09:00", "end": "18:00"})
    s = get_settings_store().settings()
    assert s.in_hours(datetime(2026, 11, 25, 10, 0, tzinfo=BEIJING))
    assert not s.in_hours(datetime(2026, 11, 25, 18, 0, tzinfo=BEIJING))
    assert s.next_start(datetime(2026, 11, 25, 7, 0, tzinfo=BEIJING)) == "今天 09:00"
    assert s.next_start(datetime(2026, 11, 25, 20, 0, tzinfo=BEIJING)).startswith("明天")
    assert s.group_for("ask_price") == "售前" and s.group_for("refund") == "售后"
    assert s.group_for("refund", "keyword") == "投诉"


async def test_a_new_session_keeps_the_bot_paused_while_an_agent_holds_it():
    from actions.session import ActionSessionStart

    _, events = await run(ActionSessionStart(), tracker_for("held"))
    assert ConversationPaused() not in events
    request = get_handoff_store().request("held", "requested", in_hours=False)
    _, events = await run(ActionSessionStart(), tracker_for("held"))
    assert ConversationPaused() not in events  # off hours: the bot keeps answering
    get_handoff_store().take(request.id, agent_id=1)
    _, events = await run(ActionSessionStart(), tracker_for("held"))
    assert events[-1] == ConversationPaused()
