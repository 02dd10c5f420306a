"""索电 and the thanks for a contact, as the customer sees them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.fallback import ActionDefaultFallback
from actions.faq import ActionAnswerFaq
from actions.leads import ActionThankContact, ActionWholesale
from actions.products import ActionProductQuestion
from tests.helpers import run, texts

PHONE = [{"entity": "phone", "value": "13912345678", "start": 3, "end": 14}]
OFFER = ("留个手机号或微信", "留个联系方式")


def turn(intent: str, text: str = "", entities: list | None = None) -> list[dict[str, Any]]:
    parse = {"intent": {"name": intent}, "entities": entities or [], "text": text}
    return [{"event": "user", "text": text, "parse_data": parse}]


def tracker_of(history: list[dict[str, Any]], slots: dict[str, Any] | None = None) -> Tracker:
    latest = next(e for e in reversed(history) if e["event"] == "user")
    # as Rasa sends it: the latest user message is followed by the events of its turn
    history = [*history, {"event": "user_featurization", "use_text_for_featurization": False}]
    return Tracker(
        sender_id="lead-test",
        slots={"handoff_offered": False, "order_id_failures": 0.0, **(slots or {})},
        latest_message={**latest["parse_data"], "metadata": {}},
        events=history,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def offered(msgs: list[dict[str, Any]]) -> bool:
    return any(k in texts(msgs) for k in OFFER)


async def test_price_answer_offers_a_coupon_for_a_contact_once(data_dir):
    history = turn("ask_price", "T恤多少钱")
    msgs, events = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1001"}))
    assert "¥" in texts(msgs) and offered(msgs) and len(msgs) == 2
    assert SlotSet("contact_offered", True) in events
    history += [{"event": "slot", "name": "contact_offered", "value": True}]
    history += turn("ask_stock", "还有货吗")
    msgs, events = await run(
        ActionProductQuestion(),
        tracker_of(history, {"product": "P1001", "contact_offered": True}),
    )
    assert not offered(msgs) and len(msgs) == 1  # at most once per conversation


async def test_discount_answer_offers_too(data_dir):
    msgs, _ = await run(ActionAnswerFaq(), tracker_of(turn("ask_discount", "有券吗")))
    assert "满199减20" in texts(msgs) and offered(msgs)


async def test_no_offer_after_a_refusal(data_dir):
    history = turn("greet", "你好") + turn("ask_price", "不留电话哈，多少钱")
    msgs, _ = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1001"}))
    assert not offered(msgs)


async def test_no_offer_during_after_sales_anger(data_dir):
    history = turn("quality_issue", "收到就是坏的") + turn("ask_price", "另一个多少钱")
    msgs, _ = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1002"}))
    assert "¥299.00" in texts(msgs) and not offered(msgs)
    history = turn("ask_price", "这破玩意儿多少钱，垃圾店")
    msgs, _ = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1002"}))
    assert not offered(msgs)


async def test_no_offer_when_a_contact_is_known(data_dir):
    history = turn("provide_contact", "电话 13912345678", PHONE) + turn("ask_price", "多少钱")
    msgs, _ = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1001"}))
    assert not offered(msgs)


@pytest.fixture()
def leads_config(data_dir, tmp_path, monkeypatch):
    """Write a copy of xiaoer.yml with a changed ``leads.ask_contact`` and use it."""
    from xiaoer.core.config import PROJECT_ROOT, get_settings

    def use(**ask_contact: Any) -> None:
        raw = yaml.safe_load((PROJECT_ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
        raw["leads"]["ask_contact"].update(ask_contact)
        config = tmp_path / "xiaoer.yml"
        config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("XIAOER_CONFIG", str(config))
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


async def test_no_offer_when_the_merchant_switched_it_off(leads_config):
    leads_config(enabled=False)
    msgs, _ = await run(
        ActionProductQuestion(), tracker_of(turn("ask_price", "多少钱"), {"product": "P1001"})
    )
    assert not offered(msgs) and len(msgs) == 1


async def test_merchant_wording_is_used(leads_config):
    leads_config(wording={"ask_price": "留个联系方式，送您5元券～"})
    msgs, _ = await run(
        ActionProductQuestion(), tracker_of(turn("ask_price", "多少钱"), {"product": "P1001"})
    )
    assert msgs[-1]["text"] == "留个联系方式，送您5元券～"


async def test_contact_is_thanked_once(data_dir):
    history = turn("provide_contact", "电话 13912345678", PHONE)
    msgs, events = await run(ActionThankContact(), tracker_of(history))
    assert "记下" in texts(msgs) and SlotSet("contact_thanked", True) in events
    history += turn("provide_contact", "电话 13912345678", PHONE)
    msgs, events = await run(ActionThankContact(), tracker_of(history, {"contact_thanked": True}))
    assert texts(msgs) == "这个联系方式已经记下啦，放心～" and events == []
    wechat = [{"entity": "wechat", "value": "summer_rain07"}]
    history += turn("provide_contact", "微信 summer_rain07", wechat)
    msgs, _ = await run(ActionThankContact(), tracker_of(history, {"contact_thanked": True}))
    assert texts(msgs) == "好的，这个联系方式也记下了～"


async def test_a_contact_in_a_message_not_understood_is_thanked(data_dir):
    msgs, _ = await run(
        ActionDefaultFallback(), tracker_of(turn("nlu_fallback", "嗯嗯 13912345678 晚上打", PHONE))
    )
    assert "记" in texts(msgs) and "换个说法" not in texts(msgs)


async def test_wholesale_asks_for_a_contact_or_thanks_for_it(data_dir):
    msgs, events = await run(ActionWholesale(), tracker_of(turn("ask_wholesale", "可以批发吗")))
    assert "批发" in texts(msgs) and offered(msgs)
    msgs, events = await run(
        ActionWholesale(), tracker_of(turn("ask_wholesale", "我要批发，手机13912345678", PHONE))
    )
    assert "招商顾问" in texts(msgs) and len(msgs) == 1
    assert SlotSet("contact_thanked", True) in events


async def test_a_contact_that_comes_with_a_question_is_thanked_after_the_answer(data_dir):
    history = turn("ask_price", "T恤多少钱 电话13912345678", PHONE)
    msgs, events = await run(ActionProductQuestion(), tracker_of(history, {"product": "P1001"}))
    assert "¥" in texts(msgs) and "记下" in texts(msgs) and not offered(msgs)
    assert SlotSet("contact_thanked", True) in events
