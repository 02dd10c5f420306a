"""End-to-end: the real action server and Rasa server, conversations over REST.

Every conversation runs twice: with the embedded SQLite demo shop and with the shop
backend switched to Doudian against the local fake Doudian open API. Changes that the
Doudian API cannot make for a buyer (cancel, new address, new after-sales case) are
queued for an agent there instead.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from xiaoer.devtools.stack import Stack, running_stack
from xiaoer.doudian.fake import running_fake_doudian

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module", params=["sqlite", "doudian"])
def stack(
    request: pytest.FixtureRequest, trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        with running_stack(trained_model, workdir) as s:
            s.backend = "sqlite"
            yield s
        return
    with running_fake_doudian() as fake:
        env = {
            "XIAOER_BACKEND": "doudian",
            "XIAOER_DOUDIAN_BASE_URL": fake.base_url,
            "XIAOER_DOUDIAN_APP_KEY": fake.app_key,
            "XIAOER_DOUDIAN_APP_SECRET": fake.app_secret,
            "XIAOER_DOUDIAN_ACCESS_TOKEN": fake.access_token,
        }
        with running_stack(trained_model, workdir, env_extra=env) as s:
            s.backend = "doudian"
            s.fake = fake
            yield s


def only(backend: str, stack: Stack) -> None:
    if stack.backend != backend:
        pytest.skip(f"{backend} only")


def handoff_rows(stack: Stack, user: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    return db.execute(
        "SELECT reason, details FROM handoff_requests WHERE sender_id = ?",
        (Stack.conversation(user),),
    ).fetchall()


def sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def text_of(replies: list[dict]) -> str:
    text = "\n".join(r.get("text") or "" for r in replies)
    assert not re.search(r"\{\w+\}", text), f"unfilled placeholder in: {text}"
    return text


def verified(stack: Stack, user: str, asked: list[dict], tail: str = "0000") -> list[dict]:
    """An anonymous customer is asked for the recipient's phone tail before a change
    (the demo recipient is 张三 13800000000); the replies to the answer."""
    assert "收件人手机号后4位" in text_of(asked), text_of(asked)
    return stack.say(user, tail)


def test_order_status_names_the_tracking_number(stack: Stack):
    user = sender()
    replies = stack.say(user, "帮我查下订单 6938271045123400002 到哪了")
    text = text_of(replies)
    assert "SF1234567890123" in text and "顺丰速运" in text and "已发货" in text


def test_order_number_asked_for_then_given(stack: Stack):
    user = sender()
    asked = text_of(stack.say(user, "我的快递到哪里了"))
    assert "订单号" in asked or "订单编号" in asked
    answer = text_of(stack.say(user, "6938 2710 4512 3400 001"))
    assert "待发货" in answer and "48小时内" in answer


def test_unknown_order_id_gets_a_second_chance_then_a_human(stack: Stack):
    user = sender()
    stack.say(user, "查一下我的订单")
    first = text_of(stack.say(user, "1234567890123456"))
    assert "1234567890123456" in first and ("没有查到" in first or "没有找到" in first)
    second = stack.say(user, "1234567890123457")
    assert "1234567890123457" in text_of(second)
    assert any("转人工" in [b["title"] for b in r.get("buttons") or []] for r in second)
    handed = text_of(stack.say(user, "/affirm"))
    assert "人工客服" in handed
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    rows = db.execute(
        "SELECT reason FROM handoff_requests WHERE sender_id = ?", (Stack.conversation(user),)
    ).fetchall()
    assert rows == [("order_not_found",)]


def test_greeting_names_the_bot_and_shop(stack: Stack):
    text = text_of(stack.say(sender(), "你好 在吗"))
    assert "店小二" in text and "小二优选旗舰店" in text and "{" not in text


def test_traditional_chinese_is_understood(stack: Stack):
    text = text_of(stack.say(sender(), "請問支持七天無理由退貨嗎"))
    assert "7天无理由" in text


def test_policy_answer_from_settings(stack: Stack):
    text = text_of(stack.say(sender(), "新疆包邮吗"))
    assert "新疆" in text and "15元" in text


def test_conversation_is_stored_in_the_tracker_store(stack: Stack):
    user = sender()
    stack.say(user, "你好")
    r = requests.get(
        f"{stack.rasa_url}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": stack.token},
        timeout=10,
    )
    assert r.status_code == 200
    events = r.json()["events"]
    assert any(e["event"] == "user" and e["text"] == "你好" for e in events)
    assert any(e["event"] == "bot" and "店小二" in (e.get("text") or "") for e in events)
    db = sqlite3.connect(stack.workdir / "tracker.db")
    count = db.execute(
        "SELECT COUNT(*) FROM events WHERE sender_id = ?", (Stack.conversation(user),)
    ).fetchone()[0]
    assert count > 0


def test_http_api_requires_the_token(stack: Stack):
    assert requests.get(f"{stack.rasa_url}/status", timeout=10).status_code == 401
    assert (
        requests.get(f"{stack.rasa_url}/status", params={"token": "wrong"}, timeout=10).status_code
        == 401
    )
    assert (
        requests.get(
            f"{stack.rasa_url}/status", params={"token": stack.token}, timeout=10
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "body,status,code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_body"),
        (b'{"message": "hi"}', 400, "invalid_sender"),
        (b'{"sender": "x", "message": "   "}', 400, "empty_message"),
        (b'{"sender": "x"}', 400, "empty_message"),
        (
            b'{"sender": "x", "message": "' + "好".encode() * 2001 + b'"}',
            413,
            "message_too_long",
        ),
        (b'{"sender": "x", "message": "hi", "metadata": "nope"}', 400, "invalid_metadata"),
    ],
    ids=[
        "invalid-json",
        "not-an-object",
        "no-sender",
        "blank",
        "no-message",
        "too-long",
        "bad-metadata",
    ],
)
def test_bad_requests_get_a_clear_4xx(stack: Stack, body: bytes, status: int, code: str):
    only("sqlite", stack)
    r = requests.post(
        stack.webhook, data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert r.status_code == status
    assert r.json()["error"] == code


def test_bom_prefixed_body_is_accepted(stack: Stack):
    body = "\ufeff".encode() + b'{"sender": "bom-user", "message": "hello"}'
    r = requests.post(
        stack.webhook, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert r.status_code == 200 and r.json()


def test_logs_do_not_contain_full_phone_numbers(stack: Stack):
    stack.say(sender(), "我电话是13912345678，麻烦回电")
    assert "13912345678" not in stack.log("actions")


def test_heldout_intent_accuracy_does_not_regress(stack: Stack):
    """The blind held-out set through the live server's /model/parse (bench/nlu.py has figures)."""
    only("sqlite", stack)
    from rasa.shared.nlu.training_data.loading import load_data

    heldout = load_data(str(Path(__file__).resolve().parents[1] / "nlu" / "heldout.yml"))
    correct = 0
    for message in heldout.intent_examples:
        r = requests.post(
            f"{stack.rasa_url}/model/parse",
            params={"token": stack.token},
            json={"text": message.get("text")},
            timeout=10,
        )
        ranking = [i for i in r.json()["intent_ranking"] if i["name"] != "nlu_fallback"]
        correct += ranking[0]["name"] == message.get("intent")
    accuracy = correct / len(heldout.intent_examples)
    assert accuracy >= 0.88, f"held-out intent accuracy {accuracy:.3f}"


# --- order and after-sales flows over REST ------------------------------------------------
def buttons_of(replies: list[dict]) -> list[dict]:
    return [b for r in replies for b in r.get("buttons") or []]


def test_new_return_opens_a_case_with_the_return_address(stack: Stack):
    user = sender()
    asked = text_of(stack.say(user, "我想退货"))
    assert "订单号" in asked or "订单编号" in asked
    reasons = verified(stack, user, stack.say(user, "6938271045123400007"))
    assert [b["title"] for b in buttons_of(reasons)][:3] == ["不想要了", "尺码不合适", "质量问题"]
    confirm = text_of(stack.say(user, "不想要了"))
    assert "确认提交" in confirm or "确认" in confirm
    done = text_of(stack.say(user, "/affirm"))
    if stack.backend == "doudian":
        assert "申请售后" in done and "人工客服" in done
        assert handoff_rows(stack, user)[0][0] == "after_sales"
        return
    assert "售后单号 AS" in done and "文一西路1001号" in done
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    rows = db.execute(
        "SELECT case_type, reason FROM after_sales WHERE order_id = '6938271045123400007'"
    ).fetchall()
    assert rows == [("return_refund", "不想要了")]


def test_existing_case_is_reported(stack: Stack):
    # reading a case's progress is a read: told at once, without the phone check and,
    # for an anonymous customer, without the amount (issue 12)
    user = sender()
    text = text_of(stack.say(user, "订单6938271045123400003我要退货"))
    assert "AS20261101" in text and "退款处理中" in text, text
    assert "39.90" not in text and "后4位" not in text


def test_quality_issue_with_a_photo(stack: Stack):
    user = sender()
    stack.say(user, "收到的鞋子开胶了，质量太差")
    photo_request = text_of(verified(stack, user, stack.say(user, "6938271045123400009")))
    assert "照片" in photo_request
    r = requests.post(
        stack.webhook,
        json={
            "sender": user,
            "message": "[图片]",
            "metadata": {"attachments": [{"type": "image", "url": "https://img.example/shoe.jpg"}]},
        },
        timeout=60,
    )
    assert "已附照片" in text_of(r.json())
    done = text_of(stack.say(user, "/affirm"))
    if stack.backend == "doudian":
        assert "申请售后" in done
        assert "https://img.example/shoe.jpg" in handoff_rows(stack, user)[0][1]
        return
    assert "售后单号 AS" in done


def test_cancel_unpaid_order_after_confirmation(stack: Stack):
    user = sender()
    confirm = verified(stack, user, stack.say(user, "帮我取消订单6938271045123400004"))
    assert [b["title"] for b in buttons_of(confirm)] == ["确认取消", "不取消了"]
    done = text_of(stack.say(user, "/affirm"))
    if stack.backend == "doudian":
        assert "人工客服" in done and handoff_rows(stack, user)[0][0] == "cancel_order"
        return
    assert "已为您取消" in done
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    status = db.execute(
        "SELECT status FROM orders WHERE order_id = '6938271045123400004'"
    ).fetchone()
    assert status == ("cancelled",)


def test_paid_order_cancel_goes_to_a_human_by_default(stack: Stack):
    user = sender()
    text = text_of(
        verified(stack, user, stack.say(user, "订单6938271045123400001不要了，帮我取消"))
    )
    assert "人工客服" in text


def test_change_address_before_shipping(stack: Stack):
    user = sender()
    stack.say(user, "我想改一下收货地址")
    asked = verified(stack, user, stack.say(user, "6938271045123400001"))
    assert "收件人" in text_of(asked)
    assert "手机号" in text_of(stack.say(user, "李四"))
    assert "地址" in text_of(stack.say(user, "139 1234 5678"))
    readback = text_of(stack.say(user, "浙江省杭州市西湖区文三路100号"))
    assert "李四" in readback and "13912345678" in readback
    done = text_of(stack.say(user, "/affirm"))
    if stack.backend == "doudian":
        assert "人工客服" in done and "李四" in handoff_rows(stack, user)[0][1]
        return
    assert "已为您修改" in done
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    row = db.execute(
        "SELECT recipient_name, recipient_address FROM orders WHERE order_id = '6938271045123400001'"
    ).fetchone()
    assert row == ("李四", "浙江省杭州市西湖区文三路100号")


def test_address_of_shipped_order_is_refused_with_the_reason(stack: Stack):
    user = sender()
    text = text_of(verified(stack, user, stack.say(user, "订单6938271045123400002的地址要改一下")))
    assert "已经发货" in text


def test_urge_paid_order_and_shipped_order(stack: Stack):
    text = text_of(stack.say(sender(), "订单6938271045123400001怎么还不发货，快点发"))
    assert "48小时内" in text
    text = text_of(stack.say(sender(), "6938271045123400002 催一下发货"))
    assert "SF1234567890123" in text


def test_size_advice(stack: Stack):
    text = text_of(stack.say(sender(), "T恤 165 55kg穿什么码"))
    assert "建议选 M 码" in text


def test_doudian_outage_gets_a_polite_answer(stack: Stack):
    only("doudian", stack)
    stack.fake.inject("order.orderDetail", status=502)
    try:  # an order no other test looked up (the backend caches orders for 30 s)
        text = text_of(stack.say(sender(), "订单6938271045123400006到哪了"))
    finally:
        stack.fake.clear_faults()
    assert "订单系统暂时有点忙" in text


def test_queued_notification_reaches_the_buyers_conversation(stack: Stack):
    only("sqlite", stack)
    from xiaoer.notifications.outbox import NotificationOutbox
    from xiaoer.notifications.sender import RasaNotifier

    user = sender()
    stack.say(user, "你好")
    # an outbox of its own: the stack's worker delivers the project outbox by itself
    # (test_worker_deployment.py), this test drives the notifier with a wrong, then the right token
    outbox = NotificationOutbox(stack.workdir / "notifier-test.db")
    outbox.add(
        Stack.conversation(user),
        "shipped",
        "6938271045123400001",
        "您的订单已发货，运单号 YT0000000001",
    )
    assert RasaNotifier(stack.rasa_url, "wrong-token", outbox).deliver_pending() == 0
    assert len(outbox.pending(buyer_id=Stack.conversation(user))) == 1  # kept for a later round
    assert RasaNotifier(stack.rasa_url, stack.token, outbox).deliver_pending() == 1
    assert outbox.pending(buyer_id=Stack.conversation(user)) == []
    events = requests.get(
        f"{stack.rasa_url}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": stack.token},
        timeout=10,
    ).json()["events"]
    assert any(e["event"] == "bot" and "YT0000000001" in (e.get("text") or "") for e in events)


def test_contacts_are_extracted_in_any_message(stack: Stack):
    only("sqlite", stack)
    user = sender()
    stack.say(user, "有货的话打我电话 一三九 1234 5678，微信 xiaoer_fan88")
    events = requests.get(
        f"{stack.rasa_url}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": stack.token},
        timeout=10,
    ).json()["events"]
    last = [e for e in events if e["event"] == "user"][-1]
    found = {(e["entity"], e["value"]) for e in last["parse_data"]["entities"]}
    assert {("phone", "13912345678"), ("wechat", "xiaoer_fan88")} <= found


# --- issue 11: who may read and change an order (anonymous REST customers) -----------------------
def shop_row(stack: Stack, order_id: str) -> tuple:
    db = sqlite3.connect(stack.workdir / "var" / "xiaoer.db")
    return db.execute(
        "SELECT status, recipient_name, recipient_phone, recipient_address FROM orders "
        "WHERE order_id = ?",
        (order_id,),
    ).fetchone()


def offers_human(replies: list[dict]) -> bool:
    return any("转人工" in [b["title"] for b in r.get("buttons") or []] for r in replies)


def test_anonymous_address_change_of_someone_elses_order_is_refused(stack: Stack):
    """The attack of issue 11: order id, new details, 对的 — without knowing the phone."""
    only("sqlite", stack)
    user = sender()
    stack.say(user, "我要改地址")
    asked = text_of(stack.say(user, "6938271045123400001"))
    before = shop_row(stack, "6938271045123400001")  # (the shop is seeded at first use)
    assert "收件人手机号后4位" in asked and "张三" not in asked
    # a message without digits is no try (issue 12): the tail is asked again, with why
    again = text_of(stack.say(user, "王五"))
    assert "后4位" in again and "没有对上" not in again and "不一致" not in again
    first = text_of(stack.say(user, "139 1234 5678"))
    assert "没有对上" in first or "不一致" in first
    second = stack.say(user, "1234")
    assert "两次都没有对上" in text_of(second) and offers_human(second)
    for text in ("浙江省杭州市西湖区文三路100号", "对的"):
        assert "已为您修改" not in text_of(stack.say(user, text))
    assert shop_row(stack, "6938271045123400001") == before


def test_wrong_phone_tail_twice_gets_a_human_and_changes_nothing(stack: Stack):
    user = sender()
    stack.say(user, "帮我取消订单6938271045123400004")
    before = shop_row(stack, "6938271045123400004") if stack.backend == "sqlite" else None
    first = text_of(stack.say(user, "1234"))
    assert "没有对上" in first or "不一致" in first
    last = stack.say(user, "5678")
    assert "两次都没有对上" in text_of(last) and offers_human(last)
    assert "已为您取消" not in text_of(stack.say(user, "/affirm"))  # yes to the human
    if stack.backend == "sqlite":
        assert shop_row(stack, "6938271045123400004") == before
    assert [r for r, _ in handoff_rows(stack, user)] == ["verify_failed"]


def test_anonymous_status_lookup_shows_no_recipient_or_price(stack: Stack):
    for n in range(1, 8):
        order_id = f"693827104512340000{n}"
        text = text_of(stack.say(sender(), f"查一下订单{order_id}的状态"))
        assert order_id in text
        for secret in ("13800000000", "张三", "体育西路", "¥", "89.00", "69.00", "299.00"):
            assert secret not in text, (secret, text)


def test_order_lookups_are_rate_limited_per_conversation(stack: Stack):
    user = sender()
    for n in range(5):
        text = text_of(stack.say(user, f"查一下订单69382710451234999{n:02d}"))
        assert "没有查到" in text or "没有找到" in text
        stack.say(user, "/deny")  # not now, thanks (the form may offer a human after misses)
    refused = stack.say(user, "查一下订单6938271045123400002")
    assert "查询的订单号比较多" in text_of(refused) and offers_human(refused)
    assert "SF1234567890123" not in text_of(refused)
    # someone else is answered as usual
    assert "SF1234567890123" in text_of(stack.say(sender(), "查一下订单6938271045123400002"))


def forged_call(stack: Stack, action: str, slots: dict, sender_id: str) -> requests.Response:
    """A request straight to the action server's webhook with a made-up tracker."""
    domain = yaml.safe_load((Path(__file__).parents[2] / "domain.yml").read_text("utf-8"))
    latest = {"intent": {"name": "affirm", "confidence": 1.0}, "entities": [], "text": "对的"}
    latest["metadata"] = {"buyer_id": "buyer_demo_001"}
    tracker = {
        "sender_id": sender_id,
        "slots": slots,
        "latest_message": latest,
        "events": [
            {"event": "user", "text": "对的", "parse_data": latest, "input_channel": "rest"}
        ],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }
    body = {"next_action": action, "sender_id": sender_id, "tracker": tracker, "domain": domain}
    return requests.post(f"{stack.actions_url}/webhook", json=body, timeout=30)


@pytest.mark.parametrize("order_id", ["6938271045123400001", "6938271045123400004"])
def test_forged_tracker_to_the_action_server_cancels_nothing(stack: Stack, order_id: str):
    """cancel_confirmed and the verification slot made up: the paid order stays (the shop
    does not let the bot cancel paid orders), the unpaid one too (no verification on record)."""
    only("sqlite", stack)
    stack.say(sender(), f"查一下订单{order_id}的状态")  # (the shop is seeded at first use)
    before = shop_row(stack, order_id)
    slots = {
        "order_id": order_id,
        "cancel_confirmed": True,
        "verify_phone_tail": "verified",
        "flow_blocker": None,
    }
    r = forged_call(stack, "action_cancel_order", slots, sender())
    if r.status_code == 200:  # (an action server that refuses unsigned calls is fine too)
        said = "\n".join(m.get("text") or "" for m in r.json()["responses"])
        assert "已为您取消" not in said
    assert shop_row(stack, order_id) == before
