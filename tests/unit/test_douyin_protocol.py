"""The Douyin contract's pure parts: envelopes in every shape the spec lists, send-API
answers, reply rendering (merging, numbered options), greeting scripts and the action."""

from __future__ import annotations

import json
import random
from datetime import datetime, time

import pytest

from actions.common import shop_facts
from actions.greeting import ActionDouyinGreet
from tests.helpers import run, texts, tracker
from xiaoer.core.clock import BEIJING
from xiaoer.core.config import get_settings
from xiaoer.douyin.greetings import (
    DEFAULT_SCRIPTS,
    GreetingSettings,
    in_window,
    render_greeting,
    segment_for,
)
from xiaoer.douyin.protocol import (
    ChatMessage,
    PayloadError,
    build_webhook,
    parse_envelope,
    parse_send_answer,
)
from xiaoer.douyin.replies import chosen_option, render_parts
from xiaoer.douyin.settings import ChannelSettings


def test_envelope_with_bom_string_content_and_extra_fields():
    content = {"action_type": 1, "action_time": 1761900000}
    body, _ = build_webhook(
        "s", "new_follow_action", content, from_user_id="u1", content_as_string=True,
        extra={"data_im_extra": "{}", "event_id": "e-1"}, bom=True,
    )  # fmt: skip
    envelope = parse_envelope(body)
    assert envelope.event == "new_follow_action" and envelope.content == content
    assert envelope.from_user_id == "u1" and envelope.event_key == "log:e-1"


def test_doubly_encoded_content_and_numbers_as_ids():
    inner = json.dumps({"server_message_id": 7001, "text": "你好"})
    body = json.dumps({"event": "im_receive_msg", "from_user_id": 42, "content": json.dumps(inner)})
    envelope = parse_envelope(body.encode())
    assert envelope.from_user_id == "42" and envelope.event_key == "smid:7001"
    assert ChatMessage.from_envelope(envelope).server_message_id == "7001"


@pytest.mark.parametrize(
    "body",
    [b"", b"{bad", b"[]", b'{"content": {}}', b'{"event": "x", "content": "[1]"}', b"\xff\xfe"],
)
def test_bodies_that_are_no_envelope(body):
    with pytest.raises(PayloadError):
        parse_envelope(body)


def test_chat_message_fields_and_card_data_as_a_string():
    envelope = parse_envelope(
        json.dumps(
            {
                "event": "im_receive_msg",
                "from_user_id": "c1",
                "content": {
                    "server_message_id": "m1",
                    "conversation_short_id": "s1",
                    "message_type": "retain_consult_card",
                    "card_id": "card-9",
                    "card_data": json.dumps([{"label": "电话", "value": 13800001111}]),
                    "create_time": "1761900000123",
                    "user_infos": [{"open_id": "c1", "nick_name": "阿花"}, {"open_id": "x"}],
                },
            }
        ).encode()
    )
    message = ChatMessage.from_envelope(envelope)
    assert message.card_data == [{"label": "电话", "value": "13800001111"}]
    assert message.create_time_ms == 1761900000123 and message.nickname == "阿花"


@pytest.mark.parametrize(
    "answer,ok,code",
    [
        ({"extra": {"error_code": 0, "description": ""}, "data": {"error_code": 0}, "msg_id": "a"}, True, 0),
        ({"extra": {"error_code": 0}, "data": {"error_code": 28003095, "description": "自动回复开启"}}, False, 28003095),
        ({"extra": {"error_code": "2190008", "description": "token过期"}, "data": {}}, False, 2190008),
        ({"err_no": 0, "err_msg": "", "log_id": "l", "data": {}}, True, 0),
        ({"err_no": "40001", "err_msg": "bad"}, False, 40001),
        ({"something": "else"}, False, -1),
        ("not a dict", False, -1),
    ],
)  # fmt: skip
def test_send_answers_in_both_shapes(answer, ok, code):
    parsed = parse_send_answer(answer)
    assert (parsed.ok, parsed.code) == (ok, code)


def test_token_error_codes_are_recognised():
    assert parse_send_answer({"extra": {"error_code": 2190008}}).token_problem


# --- rendering replies ------------------------------------------------------------------
SETTINGS = ChannelSettings(max_text_chars=50)


def test_a_turn_is_merged_and_buttons_become_numbered_options():
    parts, options = render_parts(
        [
            {"text": "您好"},
            {"text": "请确认", "buttons": [
                {"title": "确认提交", "payload": "/affirm"}, {"title": "再想想", "payload": "/deny"}]},
        ],
        SETTINGS,
    )  # fmt: skip
    assert len(parts) == 1
    text = parts[0].content["text"]["text"]
    assert text == "您好\n请确认\n回复数字即可选择：\n1. 确认提交\n2. 再想想"
    assert options == ["/affirm", "/deny"]


def test_images_split_the_text_and_long_texts_are_split():
    parts, _ = render_parts(
        [{"text": "看图"}, {"image": "media-1"}, {"text": "好" * 120}], SETTINGS
    )
    kinds = [p.content["msg_type"] for p in parts]
    assert kinds == [1, 2, 1, 1, 1]
    assert parts[1].content == {"msg_type": 2, "image": {"media_id": "media-1"}}
    assert "".join(p.preview for p in parts[2:]) == "好" * 120


def test_custom_douyin_content_is_sent_as_is():
    card = {"msg_type": 8, "retain_consult_card": {"card_id": "c-1"}}
    parts, _ = render_parts([{"custom": {"douyin": card}}], SETTINGS)
    assert parts[0].content == card


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1", 1),
        (" ２ ", 2),
        ("第二个", 2),
        ("3号", 3),
        ("4", None),
        ("12345", None),
        ("好的1", None),
    ],
)
def test_number_answers(text, expected):
    assert chosen_option(text, ("a", "b", "c")) == expected
    assert chosen_option("1", ()) is None


# --- greetings ------------------------------------------------------------------------
def test_windows_wrap_midnight():
    assert in_window(time(23, 30), time(23, 0), time(8, 0))
    assert in_window(time(7, 59), time(23, 0), time(8, 0))
    assert not in_window(time(8, 0), time(23, 0), time(8, 0))
    assert not in_window(time(12, 0), time(0, 0), time(0, 0))  # start == end: never


def test_periods_and_quiet_hours():
    settings = GreetingSettings.from_section({})
    noon = datetime(2026, 11, 1, 12, 0, tzinfo=BEIJING)
    late = datetime(2026, 11, 1, 23, 30, tzinfo=BEIJING)
    assert settings.period(noon) == "day" and settings.period(late) == "night"
    assert settings.allowed("new_follow_action", noon)
    assert not settings.allowed("new_follow_action", late)  # quiet hours
    assert settings.allowed("im_enter_direct_msg", late)  # the customer is there


def test_segments():
    assert segment_for("new_follow_action", returning=False) == "new_follower"
    assert segment_for("im_enter_direct_msg", returning=False) == "new_customer"
    assert segment_for("new_follow_action", returning=True) == "returning_customer"


def test_merchant_scripts_override_defaults_and_render():
    settings = GreetingSettings.from_section(
        {"greeting": {"scripts": {"new_customer": {"day": ["{nickname}好，{shop_name}欢迎你"]}},
                      "day_hours": {"start": "08:00", "end": "20:00"}}}
    )  # fmt: skip
    text = render_greeting(settings, "new_customer", "day", {"shop_name": "小店"})
    assert text == "亲好，小店欢迎你"
    assert settings.scripts["new_customer"]["night"] == DEFAULT_SCRIPTS["new_customer"]["night"]
    rng = random.Random(1)
    seen = {render_greeting(settings, "new_follower", "day", {}, rng) for _ in range(30)}
    assert len(seen) > 1  # several variants


@pytest.mark.parametrize(
    "buyer,event,expect",
    [
        ("buyer_demo_001", "im_enter_direct_msg", "returning_customer"),
        ("buyer_demo_002", "im_enter_direct_msg", "new_customer"),
        ("fan_123", "new_follow_action", "new_follower"),
    ],
)
async def test_the_greeting_action_picks_the_segment(data_dir, buyer, event, expect):
    t = tracker(
        intent="EXTERNAL_douyin_greet",
        text="EXTERNAL: EXTERNAL_douyin_greet",
        metadata={"is_external": True, "buyer_id": buyer, "nickname": "阿花"},
        entities=[{"entity": "douyin_event", "value": event}],
    )
    messages, events = await run(ActionDouyinGreet(), t)
    text = texts(messages)
    facts = shop_facts()
    values = dict(
        nickname="阿花", shop_name=facts["shop_name"], bot_name=facts["bot_name"],
        service_hours=facts["service_hours"], coupon=facts["coupon_everyone"],
        returning_code=facts["returning_code"],
    )  # fmt: skip
    scripts = GreetingSettings.from_section(get_settings().section("douyin")).scripts[expect]
    assert text in {v.format(**values) for v in scripts["day"] + scripts["night"]}
    assert events == []


async def test_a_typed_message_classified_as_the_trigger_gets_a_plain_greeting(data_dir):
    t = tracker(intent="EXTERNAL_douyin_greet", text="EXTERNAL_douyin_greet")
    messages, _ = await run(ActionDouyinGreet(), t)
    assert "店小二" in messages[0]["text"]  # the plain introduction (messages.yml greet_intro)


async def test_greeting_scripts_saved_by_an_admin_are_used_at_once(data_dir):
    """The console's settings page saves greeting scripts; the next greeting uses them."""
    from xiaoer.core.settings import get_settings_store

    script = "{nickname}您好，这里是{shop_name}，管理员刚改的欢迎语"
    get_settings_store().save(
        "greeting_scripts",
        {"returning_customer": {"day": [script], "night": [script]}},
        by="boss",
    )
    t = tracker(
        intent="EXTERNAL_douyin_greet",
        text="EXTERNAL: EXTERNAL_douyin_greet",
        metadata={"is_external": True, "buyer_id": "buyer_demo_001", "nickname": "阿花"},
        entities=[{"entity": "douyin_event", "value": "im_enter_direct_msg"}],
    )
    messages, _ = await run(ActionDouyinGreet(), t)
    assert texts(messages) == f"阿花您好，这里是{shop_facts()['shop_name']}，管理员刚改的欢迎语"
