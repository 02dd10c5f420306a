"""Several questions in one message: clause splitting and grouping (xiaoer/nlu/multi.py).

The grouping is tested with a table of clause intents (what the NLU says of each clause);
the trained model is used in tests/nlu/test_robust_parsing.py and the REST end-to-end test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xiaoer.nlu.multi import clauses, split_requests
from xiaoer.text.parsing import parse_order_id

INTENTS = {
    "这件T恤多少钱": ("ask_price", 0.95),
    "多少钱": ("ask_price", 0.95),
    "价格多少": ("ask_price", 0.9),
    "包邮吗": ("ask_shipping", 0.93),
    "什么时候发": ("shipping_time", 0.9),
    "黑色M码有货吗": ("ask_stock", 0.92),
    "亲": ("greet", 0.7),
    "在吗": ("greet", 0.95),
    "谢谢": ("thank", 0.99),
    "帮我取消": ("cancel_order", 0.99),
    "发票能开吗": ("ask_invoice", 0.97),
    "还有发票能开吗": ("ask_invoice", 0.96),
    "帮我查下订单": ("order_status", 0.8),
    "到哪了": ("order_status", 0.85),
    "嗯": ("affirm", 0.5),
    "转人工": ("request_human", 0.99),
    "随便说说": ("out_of_scope", 0.4),
    "收到的鞋子开胶了": ("quality_issue", 0.9),
    "质量太差": ("complain", 0.85),
    "服务太差": ("complain", 0.9),
}


async def fake_parse(text: str) -> dict[str, Any]:
    if text == "订单6938271045123400001不要了":  # DIET unsure; the entity rule decided
        intent = {"name": "order_status", "confidence": 0.9, "entity_rule": True}
        return {"intent": intent, "entities": [{"entity": "order_id"}]}
    if "投诉" in text:  # a merchant's handoff keyword
        return {"intent": {"name": "complain", "confidence": 1.0, "handoff_keyword": "投诉"}}
    name, confidence = INTENTS.get(text, ("nlu_fallback", 0.3))
    if text not in INTENTS and " " in text:  # a request of several clauses: its first one's
        first = next((c for c in text.split(" ") if c in INTENTS), "")
        name, confidence = INTENTS.get(first, ("inform_order_id", 0.9))
    entities = (
        [{"entity": "order_id", "value": parse_order_id(text)}] if parse_order_id(text) else []
    )
    if entities and text not in INTENTS:
        name, confidence = "inform_order_id", 0.9
    return {"intent": {"name": name, "confidence": confidence}, "entities": entities}


def split(text: str) -> list[str]:
    return asyncio.run(split_requests(text, fake_parse))


def test_clauses_cut_at_punctuation_spaces_and_connectives_not_inside_numbers():
    assert [c.text for c in clauses("这件T恤多少钱，包邮吗？")] == ["这件T恤多少钱", "包邮吗"]
    assert [c.text for c in clauses("多少钱 什么时候发")] == ["多少钱", "什么时候发"]
    assert [c.text for c in clauses("单号 6938 2710 4512 3400 002")] == [
        "单号",
        "6938 2710 4512 3400 002",
    ]
    assert [c.text for c in clauses("到哪了还有发票能开吗")] == ["到哪了", "还有发票能开吗"]


@pytest.mark.parametrize(
    ("message", "requests"),
    [
        ("这件T恤多少钱，包邮吗", ["这件T恤多少钱", "包邮吗"]),
        ("多少钱 什么时候发", ["多少钱", "什么时候发"]),
        ("这件T恤多少钱？黑色M码有货吗？", ["这件T恤多少钱", "黑色M码有货吗"]),
        # small talk is left out of the requests
        ("亲 在吗 多少钱 包邮吗 谢谢", ["多少钱", "包邮吗"]),
        # the same request asked again is answered once
        ("多少钱 包邮吗 价格多少", ["多少钱", "包邮吗"]),
        (
            "帮我查下订单 6938271045123400002 到哪了，发票能开吗",
            ["帮我查下订单 6938271045123400002 到哪了", "发票能开吗"],
        ),
        # an order number goes with the request after it, never split from its verb
        ("多少钱，订单6938271045123400002，到哪了", ["多少钱", "订单6938271045123400002 到哪了"]),
        (
            "6938271045123400002 到哪了 还有发票能开吗",
            ["6938271045123400002 到哪了", "还有发票能开吗"],
        ),
    ],
)
def test_several_requests_are_split_in_order(message, requests):
    assert split(message) == requests


@pytest.mark.parametrize(
    "message",
    [
        "这件T恤多少钱",  # one clause
        "帮我查下订单 6938271045123400002",  # the README example: one request
        "多少钱，价格多少",  # the same request twice
        "亲，在吗",  # small talk only
        "多少钱 随便说说",  # an unsure clause stays with the request before it
        "订单6938271045123400001不要了，帮我取消",  # one request: the number's intent was a guess
        "多少钱 转人工",  # a human takes the whole message
        "多少钱 包邮吗 不然我去投诉",  # so does a handoff keyword
        '/choose{"a": 1, "b": 2}',  # a button payload
        "收到的鞋子开胶了，质量太差",  # anger is the tone of the quality issue, not a request
    ],
)
def test_messages_with_one_request_are_not_split(message):
    assert split(message) == [message]


def test_a_complaint_joins_the_order_request_it_is_about():
    assert split("服务太差 包邮吗 收到的鞋子开胶了") == ["包邮吗", "收到的鞋子开胶了 服务太差"]
    assert split("服务太差 包邮吗") == ["服务太差", "包邮吗"]  # no order request to join


def test_a_long_message_is_reduced_to_its_requests():
    filler = "我跟你说我真的是很无语，" * 12
    message = (
        f"{filler}帮我查下订单，6938271045123400002，到哪了，{filler}"
        "黑色M码有货吗，还有发票能开吗"
    )
    assert len(message) > 300
    parts = split(message)
    assert len(parts) == 3
    assert parts == ["帮我查下订单 6938271045123400002 到哪了", "黑色M码有货吗", "还有发票能开吗"]


class _Store:
    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    async def retrieve(self, sender_id: str) -> Any:
        return self.tracker


class _Agent:
    """The two things handle_message uses of a Rasa agent: its tracker store and NLU."""

    def __init__(self, tracker: Any) -> None:
        self.tracker_store = _Store(tracker)

    async def parse_message(self, text: str) -> dict[str, Any]:
        return await fake_parse(text)


def _handled(tracker: Any, text: str = "多少钱 包邮吗", **metadata: Any) -> list[str]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    from xiaoer.nlu.multi import handle_message

    received: list[str] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message.text or "")

    message = UserMessage(text, CollectingOutputChannel(), "buyer-1", metadata=metadata)
    asyncio.run(handle_message(message, on_new_message, _Agent(tracker)))
    return received


def test_requests_reach_the_assistant_one_after_the_other():
    assert _handled(None) == ["多少钱", "包邮吗"]


def test_no_split_while_a_form_waits_a_question_awaits_an_answer_or_a_button_was_used():
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActiveLoop, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    domain = Domain.empty()
    in_form = DialogueStateTracker.from_events(
        "buyer-1", [ActiveLoop("change_address_form")], domain.slots
    )
    assert _handled(in_form) == ["多少钱 包邮吗"]
    asked = DialogueStateTracker.from_events(
        "buyer-1",
        [
            UserUttered("取消订单"),
            BotUttered("确定取消吗？", {"buttons": [{"title": "确认取消", "payload": "/affirm"}]}),
        ],
        domain.slots,
    )
    assert _handled(asked) == ["多少钱 包邮吗"]
    answered = DialogueStateTracker.from_events(
        "buyer-1", [UserUttered("你好"), BotUttered("您好～")], domain.slots
    )
    assert _handled(answered) == ["多少钱", "包邮吗"]
    assert _handled(None, chosen_option=1) == ["多少钱 包邮吗"]


def test_clauses_that_only_name_values_go_with_the_request():
    """'T恤 165 55kg穿什么码' is one size question: the product and the height are values."""

    async def parse(text: str) -> dict[str, Any]:
        known = {
            "T恤": ("product_info", 0.9, [("product", 0, 2)]),
            "165": ("inform_order_id", 0.7, [("height_cm", 0, 3)]),
            "55kg穿什么码": ("ask_size", 0.95, [("weight_kg", 0, 4)]),
            "包邮吗": ("ask_shipping", 0.95, []),
        }
        name, confidence, spans = known.get(text, ("ask_size", 0.95, []))
        entities = [{"entity": e, "start": s, "end": t} for e, s, t in spans]
        return {"intent": {"name": name, "confidence": confidence}, "entities": entities}

    message = "T恤 165 55kg穿什么码"
    assert asyncio.run(split_requests(message, parse)) == [message]
    both = "T恤 165 55kg穿什么码 包邮吗"
    assert asyncio.run(split_requests(both, parse)) == ["T恤 165 55kg穿什么码", "包邮吗"]


def test_every_message_carries_its_channel_for_the_keyword_rules():
    """Keyword rules limited to a channel read ``channel`` from the metadata, set here from
    the input channel (the sandbox channel sets the channel it simulates itself)."""
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    from xiaoer.nlu.multi import handle_message

    seen: list[dict[str, Any]] = []

    async def on_new_message(message: UserMessage) -> None:
        seen.append(dict(message.metadata or {}))

    for metadata in ({}, {"channel": "douyin"}):
        message = UserMessage("在吗", CollectingOutputChannel(), "x", input_channel="rest",
                              metadata=dict(metadata))  # fmt: skip
        asyncio.run(handle_message(message, on_new_message, _Agent(None)))
    assert [m["channel"] for m in seen] == ["rest", "douyin"]
