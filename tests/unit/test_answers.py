"""Answers that answer, from the shop's facts (issue 12): one sentence per shipping
question, service hours, stock per variant with same-size suggestions, attribute yes/no
from the catalogue, coupons only where they apply, and the live-room vocabulary."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message
from rasa_sdk.events import SlotSet

from actions import faq as faq_module
from actions.faq import ActionAnswerFaq, ActionServiceHours
from actions.live_room import ActionLiveRoom
from actions.products import ActionProductQuestion
from tests.helpers import ROOT, run, texts, tracker
from xiaoer.core.clock import BEIJING
from xiaoer.nlu.live_room import LinkNumberExtractor, find_link_numbers
from xiaoer.shop import policies as policies_module
from xiaoer.shop.regions import find_region


@pytest.fixture(autouse=True)
def _shop(data_dir):
    """Every test gets a freshly seeded demo shop."""
    yield


def ents(**values: str) -> list[dict[str, Any]]:
    return [{"entity": k, "value": v} for k, v in values.items()]


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=BEIJING)


async def ask(action, intent: str, text: str = "", **kwargs: Any) -> tuple[str, list, list]:
    msgs, events = await run(action, tracker(intent=intent, text=text, **kwargs))
    return texts(msgs), msgs, events


# --- shipping: one sentence per question ------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected", "absent"),
    [
        ("发新疆吗 要加运费吗", ["新疆", "+15元", "15元"], ["港澳台", "顺丰"]),
        ("乌鲁木齐能发吗", ["乌鲁木齐", "15元"], ["顺丰"]),
        ("寄拉萨包邮吗", ["拉萨", "15元"], ["全国包邮哦"]),
        ("寄到香港可以吗", ["香港", "不发"], ["包邮", "15元"]),
        ("能发台湾吗", ["台湾", "不发"], ["包邮"]),
        ("美国能寄吗", ["美国", "不发"], ["包邮"]),
        ("可以发顺丰吗", ["顺丰速运", "10元"], ["新疆", "港澳台"]),
        ("发什么快递", ["中通快递、圆通速递"], ["新疆", "港澳台"]),
        ("从哪里发货", ["杭州"], ["新疆", "顺丰"]),
        ("几天能到", ["2-4天"], ["新疆", "顺丰"]),
        ("包邮吗", ["包邮", "新疆、西藏、青海", "15元"], ["顺丰"]),
        ("发北京包邮吗", ["北京包邮"], ["顺丰"]),
    ],
)
async def test_each_shipping_question_gets_its_own_sentence(text, expected, absent):
    reply, msgs, _ = await ask(ActionAnswerFaq(), "ask_shipping", text)
    for fragment in expected:
        assert fragment in reply, (text, reply)
    for fragment in absent:
        assert fragment not in reply.split("\n")[0], (text, reply)


async def test_two_shipping_questions_get_two_sentences():
    reply, _, _ = await ask(ActionAnswerFaq(), "ask_shipping", "顺丰到新疆要几天")
    assert "15元" in reply and "顺丰速运" in reply and "10元" in reply and "2-4天" in reply


@pytest.mark.parametrize(("hour", "tomorrow"), [(10, False), (17, True)])
async def test_when_it_ships_depends_on_the_same_day_cutoff(monkeypatch, hour, tomorrow):
    monkeypatch.setattr(policies_module, "now_beijing", lambda: at(hour))
    reply, _, _ = await ask(ActionAnswerFaq(), "shipping_time", "今天拍今天能发吗")
    assert "16:00" in reply and "48小时" in reply and f"{hour}:00" in reply
    assert ("明天发出" in reply) is tomorrow


async def test_unrecognised_shipping_question_gets_the_general_answer():
    reply, _, _ = await ask(ActionAnswerFaq(), "ask_shipping", "快递的事问一下")
    assert "杭州" in reply and "港澳台" in reply and "15元" in reply


def test_region_gazetteer():
    assert find_region("发乌鲁木齐要几天") == ("新疆", "乌鲁木齐")
    assert find_region("寄澳门") == ("港澳台", "澳门")
    assert find_region("寄到澳大利亚") == ("海外", "澳大利亚")
    assert find_region("广州到吗") == ("内地", "广州")
    assert find_region("多少钱") is None


# --- human service hours ----------------------------------------------------------------
async def test_service_hours_in_hours_says_online(monkeypatch):
    monkeypatch.setattr(faq_module, "now_beijing", lambda: at(10, 30))
    reply, _, events = await ask(ActionServiceHours(), "ask_service_hours", "人工客服几点上班")
    assert "09:00-22:00" in reply and "在线" in reply and "10:30" in reply
    assert events == []  # a question about the hours: no handoff, no pause


async def test_service_hours_off_hours_says_when_agents_are_back(monkeypatch):
    monkeypatch.setattr(faq_module, "now_beijing", lambda: at(23, 15))
    reply, _, events = await ask(ActionServiceHours(), "ask_service_hours", "人工几点下班")
    assert "09:00-22:00" in reply and "23:15" in reply and "明天" in reply
    assert "下班" in reply or "不在上班时间" in reply
    assert events == []


# --- stock --------------------------------------------------------------------------------
async def test_black_m_is_out_of_stock_with_restock_date_and_white_m_suggested():
    reply, _, events = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "T恤黑色M码有吗",
        entities=ents(product="P1001", color="黑色", size="M"),
    )
    restock = datetime.now(BEIJING) + timedelta(days=10)
    assert "缺货" in reply and f"{restock:%m月%d日}补货" in reply
    assert "白色 M（有货）" in reply
    assert "M 有货" not in reply
    assert SlotSet("focus_product", "P1001") in events


async def test_general_stock_never_lists_black_m_as_available():
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_stock", "T恤有货吗", entities=ents(product="P1001")
    )
    available = reply.split("。")[0]
    assert "黑色 L/XL" in available and "黑色 M" not in available
    assert "黑色 M暂时缺货" in reply


async def test_blue_110_raincoat_suggests_yellow_110_never_a_t_shirt():
    reply, _, _ = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "蓝色110有没有",
        entities=ents(product="P1004", color="蓝色"),  # bare 110: read from the text
    )
    assert "蓝色 110 暂时缺货" in reply and "黄色 110" in reply
    assert "T恤" not in reply and "跑步鞋" not in reply


async def test_restock_alert_only_when_out_of_stock():
    in_stock, _, events = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "黑色L有吗",
        entities=ents(product="P1001", color="黑色", size="L"),
    )
    assert "有货" in in_stock and "补货" not in in_stock and "到货" not in in_stock
    assert SlotSet("contact_offered", True) not in events
    out, _, events = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "黑色M有吗",
        entities=ents(product="P1001", color="黑色", size="M"),
    )
    assert "缺货" in out and ("到货" in out or "补货提醒" in out)
    assert SlotSet("contact_offered", True) in events


async def test_short_size_question_uses_the_product_in_focus():
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_stock", "有没有L", slots={"focus_product": "P1001"}
    )
    assert "纯棉短袖T恤 L 有货" in reply


async def test_colour_with_some_sizes_out_names_both():
    reply, _, _ = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "黑色有吗",
        entities=ents(product="P1001", color="黑色"),
    )
    assert "黑色 L、黑色 XL 有货" in reply and "黑色 M（预计" in reply


# --- attribute questions ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("product", "text", "expected"),
    [
        ("P1003", "能放洗碗机吗", "是的"),
        ("P1001", "可以机洗吗", "是的"),
        ("P1001", "是100%棉的吗", "是的"),
        ("P1004", "真的防水吗", "是的"),
        ("P1001", "防水吗", "不防水"),
        ("P1002", "防水吗", "不防水"),
    ],
)
async def test_attribute_questions_are_answered_yes_or_no(product, text, expected):
    reply, msgs, events = await ask(
        ActionProductQuestion(), "product_info", text, entities=ents(product=product)
    )
    assert expected in reply
    assert "不确定" not in reply and "颜色：" not in reply  # not the list of attributes
    assert SlotSet("handoff_offered", True) not in events


@pytest.mark.parametrize(("product", "text"), [("P1003", "能放微波炉吗"), ("P1001", "会缩水吗")])
async def test_attribute_not_in_catalogue_is_not_guessed(product, text):
    reply, msgs, events = await ask(
        ActionProductQuestion(), "product_info", text, entities=ents(product=product)
    )
    assert "不确定" in reply and "我帮您问问同事" in reply
    assert "是的" not in reply
    assert [b["title"] for b in msgs[-1]["buttons"]] == ["转人工", "不用了"]
    assert SlotSet("handoff_offered", True) in events


# --- coupons ------------------------------------------------------------------------------
async def test_coupon_not_claimed_for_a_single_89_yuan_item():
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_price", "T恤多少钱", entities=ents(product="P1001")
    )
    assert "¥89.00" in reply and "满199" in reply and "¥110.00" in reply
    assert "券后" not in reply and "叠加" not in reply
    assert reply.count("¥89.00") == 1  # the price once, not again before the coupon


async def test_coupon_applies_to_the_299_yuan_shoes():
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_price", "跑鞋多少钱", entities=ents(product="P1002")
    )
    assert "¥299.00" in reply and "券后 ¥279.00" in reply
    assert reply.count("¥299.00") == 1


async def test_discount_question_about_a_product_says_what_is_missing():
    reply, _, _ = await ask(
        ActionAnswerFaq(), "ask_discount", "T恤有优惠吗", slots={"product": "P1001"}
    )
    assert "满199减20" in reply and "¥110.00" in reply and "券后" not in reply


# --- live room ----------------------------------------------------------------------------
def test_link_numbers_in_digits_and_chinese_numerals():
    assert [v for _, _, v in find_link_numbers("3号链接有货吗")] == ["3"]
    assert [v for _, _, v in find_link_numbers("三号链接还有吗")] == ["3"]
    assert [v for _, _, v in find_link_numbers("十二号链接多少钱")] == ["12"]
    assert [v for _, _, v in find_link_numbers("链接2有吗")] == ["2"]
    assert [v for _, _, v in find_link_numbers("１号有货吗")] == ["1"]
    assert find_link_numbers("42号有吗") == []  # a shoe size
    assert find_link_numbers("3号能到吗") == []  # a date
    assert find_link_numbers("12月3号有货吗") == []


def test_link_number_component_adds_entities():
    message = Message(data={"text": "三号链接还有吗"})
    LinkNumberExtractor().process([message])
    [entity] = message.get("entities")
    assert (entity["entity"], entity["value"], entity["start"], entity["end"]) == (
        "link_no",
        "3",
        0,
        4,
    )


async def test_stock_of_link_3():
    reply, _, events = await ask(
        ActionProductQuestion(), "ask_stock", "3号链接有货吗", entities=ents(link_no="3")
    )
    assert "3号链接是陶瓷马克杯" in reply and "有货" in reply
    assert SlotSet("focus_product", "P1003") in events


async def test_price_of_what_the_host_wears():
    reply, _, _ = await ask(ActionProductQuestion(), "ask_price", "主播身上那件多少钱")
    assert "纯棉短袖T恤" in reply and "¥89.00" in reply


async def test_unknown_link_number_lists_the_links():
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_stock", "9号链接有货吗", entities=ents(link_no="9")
    )
    assert "没有9号链接" in reply and "1号 纯棉短袖T恤" in reply and "4号 儿童防水雨衣" in reply


async def test_which_link_is_the_t_shirt():
    reply, _, _ = await ask(
        ActionLiveRoom(), "ask_live_link", "几号链接是T恤", entities=ents(product="P1001")
    )
    assert "纯棉短袖T恤是1号链接" in reply


async def test_what_is_link_3():
    reply, _, _ = await ask(
        ActionLiveRoom(), "ask_live_link", "3号链接是什么", entities=ents(link_no="3")
    )
    assert "3号链接是陶瓷马克杯" in reply and "¥39.90" in reply


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ("how_to_buy", "小黄车"),
        ("ask_comment_one", "扣1"),
        ("ask_lucky_bag", "福袋"),
        ("ask_live_link", "1号 纯棉短袖T恤"),
    ],
)
async def test_live_room_words_get_useful_answers(intent, expected):
    reply, _, _ = await ask(ActionLiveRoom(), intent, "怎么弄")
    assert expected in reply


async def test_merchant_edits_the_live_room_in_xiaoer_yml(tmp_path, monkeypatch):
    from tests.conftest import _clear_caches

    raw = yaml.safe_load((ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
    raw["live_room"] = {
        "links": {7: "P1004"},
        "presenting": "P1002",
        "replies": {"lucky_bag": "今晚8点开超级福袋，{shop_name}宝宝们冲！"},
    }
    config = Path(tmp_path) / "xiaoer.yml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("XIAOER_CONFIG", str(config))
    _clear_caches()
    reply, _, _ = await ask(ActionLiveRoom(), "ask_lucky_bag", "福袋几点")
    assert reply == "今晚8点开超级福袋，小二优选旗舰店宝宝们冲！"
    reply, _, _ = await ask(ActionProductQuestion(), "ask_price", "主播手上的多少钱")
    assert "男士轻量跑步鞋" in reply
    reply, _, _ = await ask(
        ActionProductQuestion(), "ask_stock", "7号链接有吗", entities=ents(link_no="7")
    )
    assert "儿童防水雨衣" in reply


async def test_black_m_written_in_lower_case_is_not_called_available():
    """Regression: with only the colour extracted, "黑色m码有吗" was answered "黑色 有货"."""
    reply, _, _ = await ask(
        ActionProductQuestion(),
        "ask_stock",
        "黑色m码有吗",
        entities=ents(product="P1001", color="黑色"),
    )
    assert "黑色 M 暂时缺货" in reply and "有货，可以放心拍" not in reply


def test_region_words_inside_other_words_are_not_regions():
    assert find_region("在平台中下单的") is None
    assert find_region("阿里旺旺联系不上") is None
