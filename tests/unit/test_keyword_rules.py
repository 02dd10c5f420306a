"""Keyword rules (关键词回复): matching modes, priority, time window, channel, negation and
exclusion words, validation, the one-time migration of the old handoff keywords, the NLU
component, the reply action and the command line."""

from __future__ import annotations

from datetime import datetime

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from actions.keyword_replies import ActionKeywordReply
from tests.helpers import run, tracker
from xiaoer.core.clock import BEIJING
from xiaoer.core.settings import SettingsStore, get_settings_store
from xiaoer.keywords import RuleError, explain, get_keyword_store, match
from xiaoer.keywords.store import KeywordRuleStore, validate
from xiaoer.nlu.keywords import HandoffKeywordClassifier

pytestmark = pytest.mark.usefixtures("data_dir")


def rule(**form):
    base = {"action": "reply", "reply_text": "好的"}
    return get_keyword_store().add({**base, **form})


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=BEIJING)


def nlu(text: str, intent: str = "nlu_fallback", confidence: float = 0.4, **metadata):
    ranking = [{"name": intent, "confidence": confidence}]
    message = Message(
        {TEXT: text, INTENT: ranking[0], INTENT_RANKING_KEY: ranking, "metadata": metadata}
    )
    HandoffKeywordClassifier({}).process([message])
    return message.get(INTENT)


# --- matching -----------------------------------------------------------------------------
def test_contains_exact_and_regex_modes():
    invoice = rule(keywords="发票\n开票", reply_text="电子发票下单时填写抬头即可")
    hello = rule(mode="exact", keywords="在吗", reply_text="在的亲")
    cod = rule(mode="regex", pattern=r"货到付款|到付", reply_text="暂不支持货到付款")
    assert match("请问怎么开票？").rule.id == invoice.id
    assert match("在吗？").rule.id == hello.id
    assert match("在吗，我想问发票").rule.id == invoice.id  # exact: the whole message only
    assert match("可以到付吗").rule.id == cod.id
    assert match("今天发货吗") is None
    # full-width, Traditional and case do not matter
    assert match("開票").rule.id == invoice.id


def test_priority_decides_between_rules_and_the_explanation_says_why():
    low = rule(keywords="退货", reply_text="七天无理由", priority="10")
    high = rule(keywords="退货地址", reply_text="寄到杭州", priority="90")
    result = explain("退货地址在哪")
    assert result.match.rule.id == high.id
    assert "之后" in result.reasons[low.id]
    assert "命中规则" in result.summary and "退货地址" in result.summary


def test_time_window_in_the_shops_clock_wraps_midnight():
    night = rule(
        keywords="发货", reply_text="夜间订单明早发出", window_start="22:00", window_end="08:00"
    )
    assert match("什么时候发货", now=at(23, 30)).rule.id == night.id
    assert match("什么时候发货", now=at(7, 59)).rule.id == night.id
    assert match("什么时候发货", now=at(12)) is None
    assert "生效时段 22:00-08:00" in explain("发货", now=at(12)).reasons[night.id]


def test_channel_limited_rules_apply_on_that_channel_only():
    douyin = rule(keywords="福袋", reply_text="福袋在直播间", channel="douyin")
    assert match("福袋怎么抢", channel="douyin").rule.id == douyin.id
    assert match("福袋怎么抢", channel="rest") is None
    assert match("福袋怎么抢") is None
    assert "抖音" in explain("福袋", channel="rest").reasons[douyin.id]


def test_switched_off_rules_do_not_match():
    off = rule(keywords="包邮", reply_text="满59包邮", enabled="")
    assert match("包邮吗") is None
    assert explain("包邮吗").reasons[off.id] == "规则已关闭"


# --- negation and context (issue 16) ------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "不用转人工，我不是要投诉",
        "不是要投诉",
        "我不投诉了",
        "没有要投诉的意思",
        "这款手机拍照曝光怎么调",
    ],
)
def test_negated_or_other_sense_keywords_hand_nothing_over(text):
    assert match(text) is None, explain(text).summary


@pytest.mark.parametrize(
    "text,keyword",
    [("我要投诉你们", "投诉"), ("不满意，我要投诉", "投诉"), ("不然我就去投诉", "投诉"),
     ("再不处理我就曝光你们", "曝光"), ("我要打12315", "12315")],
)  # fmt: skip
def test_plain_complaints_still_hand_over(text, keyword):
    found = match(text)
    assert found is not None and found.keyword == keyword and found.rule.action == "handoff"


def test_the_test_box_says_why_a_negated_or_excluded_keyword_did_not_count():
    rules = get_keyword_store().all()
    complaint = next(r for r in rules if r.keywords == ("投诉",))
    exposure = next(r for r in rules if r.keywords == ("曝光",))
    assert "否定词「不是」" in explain("我不是要投诉").reasons[complaint.id]
    assert "排除词「拍照」" in explain("这款手机拍照曝光怎么调").reasons[exposure.id]


def test_negation_can_be_switched_off_per_rule():
    strict = rule(keywords="退款", reply_text="退款说明", negation="")
    assert match("不要退款了").rule.id == strict.id


# --- validation ---------------------------------------------------------------------------
def test_validation_names_every_bad_field():
    with pytest.raises(RuleError) as caught:
        validate({"mode": "regex", "pattern": "(", "action": "reply", "reply_text": "您好{oops",
                  "priority": "abc", "window_start": "25:00", "window_end": ""})  # fmt: skip
    errors = caught.value.errors
    assert set(errors) == {"pattern", "reply_text", "priority", "window"}
    assert "正则表达式有误" in errors["pattern"] and "花括号" in errors["reply_text"]
    with pytest.raises(RuleError) as caught:
        validate({"keywords": "", "action": "reply", "reply_text": "{unknown} 您好"})
    assert "请至少填写一个关键词" in caught.value.errors["keywords"]
    assert "未知的占位符 {unknown}" in caught.value.errors["reply_text"]
    with pytest.raises(RuleError) as caught:
        validate({"mode": "regex", "pattern": ".*", "action": "handoff", "handoff_reason": "x"})
    assert "空消息" in caught.value.errors["pattern"]
    assert "handoff_reason" in caught.value.errors


def test_a_refused_rule_writes_nothing():
    before = len(get_keyword_store().all(fresh=True))
    with pytest.raises(RuleError):
        get_keyword_store().add({"keywords": "x", "action": "reply", "reply_text": ""})
    assert len(get_keyword_store().all(fresh=True)) == before


# --- migration of the old handoff keywords ------------------------------------------------
def test_old_handoff_keywords_become_rules_once_without_loss(tmp_path):
    db = tmp_path / "old.db"
    SettingsStore(db).save("keywords", ["12315", "差评", "曝光"], by="boss")
    store = KeywordRuleStore(db)
    rules = store.all(fresh=True)
    assert [r.keywords for r in rules] == [("12315",), ("差评",), ("曝光",)]
    assert all(r.action == "handoff" and r.handoff_reason == "complaint" for r in rules)
    assert "拍照" in rules[2].exclude
    # read once: a later edit of the old setting or a second start adds nothing
    SettingsStore(db).save("keywords", ["律师"], by="boss")
    assert len(KeywordRuleStore(db).all(fresh=True)) == 3
    # no loss: the old setting is kept as it was
    assert SettingsStore(db).overrides(fresh=True)["keywords"] == ["律师"]
    store.remove(rules[0].id)
    assert [r.keywords for r in KeywordRuleStore(db).all(fresh=True)] == [("差评",), ("曝光",)]


def test_without_an_old_setting_the_file_or_default_keywords_migrate():
    keywords = {r.keywords[0] for r in get_keyword_store().all(fresh=True)}
    assert {"12315", "投诉", "律师"} <= keywords


# --- the NLU component and the reply action -----------------------------------------------
def test_component_sets_keyword_reply_with_the_rule_id():
    invoice = rule(keywords="发票", reply_text="{shop_name}支持电子发票")
    assert nlu("发票怎么开", "ask_invoice", 0.9) == {
        "name": "keyword_reply", "confidence": 1.0, "keyword_rule": invoice.id,
    }  # fmt: skip


def test_component_handoff_rules_choose_the_intent_by_reason():
    human = rule(keywords="找真人", action="handoff", handoff_reason="request")
    assert nlu("我要找真人") == {
        "name": "request_human",
        "confidence": 1.0,
        "keyword_rule": human.id,
    }
    assert nlu("我要投诉")["handoff_keyword"] == "投诉"


def test_component_reads_the_channel_from_the_metadata():
    douyin = rule(keywords="福袋", reply_text="福袋在直播间", channel="douyin")
    assert nlu("福袋呢", channel="douyin")["keyword_rule"] == douyin.id
    assert nlu("福袋呢", channel="rest")["name"] == "nlu_fallback"


def test_component_drops_a_negated_complaint_of_the_model():
    intent = nlu("我不是要投诉，就问问", "complain", 0.7)
    assert intent["name"] != "complain" and intent["negated"] == "投诉"
    message = Message(
        {
            TEXT: "不是要投诉，订单到哪了",
            INTENT: {"name": "complain", "confidence": 0.6},
            INTENT_RANKING_KEY: [
                {"name": "complain", "confidence": 0.6},
                {"name": "order_status", "confidence": 0.35},
            ],
        }
    )
    HandoffKeywordClassifier({}).process([message])
    assert message.get(INTENT)["name"] == "order_status"
    # a plain complaint of the model stands
    assert nlu("你们太过分了我要投诉", "complain", 0.9)["name"] == "complain"


def test_component_drops_a_model_complaint_whose_word_is_excluded_in_context():
    # the model may read a complaint in a camera question: the migrated rule of 曝光
    # excludes 拍照, so the complaint is dropped, the next intent answers
    found = nlu("这款手机拍照曝光怎么调", "complain", 0.8)
    assert found["name"] == "nlu_fallback" and found["negated"] == "曝光"
    assert nlu("你们再不处理我就曝光你们", "complain", 0.9)["name"] == "complain"
    assert nlu("拍照曝光不对，我要投诉", "complain", 0.9)["name"] == "complain"


def test_an_edit_is_live_for_the_component_within_the_cache():
    store = get_keyword_store()
    invoice = rule(keywords="发票", reply_text="旧回复")
    assert nlu("发票")["keyword_rule"] == invoice.id
    store.set_enabled(invoice.id, False)  # this process: at once
    assert nlu("发票")["name"] == "nlu_fallback"


def test_an_edit_by_another_process_is_live_here_within_a_second(data_dir):
    """As a second Sanic worker of the Rasa server: the rules are in this process's memory
    when another process (the console, the CLI) adds, edits and switches off a rule."""
    import os
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    store = get_keyword_store()
    assert nlu("可以货到付款吗")["name"] == "nlu_fallback"  # the rules are now in memory

    def elsewhere(code: str) -> None:
        script = "from xiaoer.keywords.store import KeywordRuleStore as S; s = S(); " + code
        env = {**os.environ, "XIAOER_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)

    def live_within(check, limit: float) -> None:
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < limit, "not live within the limit"
            time.sleep(0.05)

    elsewhere("s.add({'keywords': '到付', 'action': 'reply', 'reply_text': '不支持到付'})")
    started = time.monotonic()
    live_within(lambda: nlu("可以货到付款吗")["name"] == "keyword_reply", 1.0)
    [added] = [r for r in store.all() if r.keywords == ("到付",)]
    elsewhere(f"s.update({added.id}, {{**s.get({added.id}).as_form(), 'keywords': '货到付款'}})")
    live_within(lambda: ("货到付款",) in [r.keywords for r in store.enabled()], 1.0)
    elsewhere(f"s.set_enabled({added.id}, False)")
    live_within(lambda: nlu("可以货到付款吗")["name"] == "nlu_fallback", 1.0)
    assert time.monotonic() - started < 60


async def test_reply_action_says_the_rules_reply_with_buttons_and_image():
    invoice = rule(
        keywords="发票",
        reply_text="{shop_name}支持电子发票",
        buttons="怎么开专票\n发票抬头|我要填写发票抬头",
        image_url="https://img.example.com/invoice.png",
    )
    t = tracker("keyword_reply", "发票")
    t.latest_message["intent"]["keyword_rule"] = invoice.id
    [message], _ = await run(ActionKeywordReply(), t)
    assert message["text"] == "小二优选旗舰店支持电子发票"
    assert message["image"] == "https://img.example.com/invoice.png"
    assert [b["payload"] for b in message["buttons"]] == ["怎么开专票", "我要填写发票抬头"]
    # edited: the next answer says the new reply
    get_keyword_store().update(
        invoice.id, {**invoice.as_form(), "reply_text": "新回复", "buttons": "", "image_url": ""}
    )
    messages, _ = await run(ActionKeywordReply(), t)
    assert messages[0]["text"] == "新回复"


async def test_reply_action_without_a_rule_asks_to_rephrase():
    messages, _ = await run(ActionKeywordReply(), tracker("keyword_reply", "KEYWORD_REPLY"))
    assert "换个说法" in messages[0]["text"] or "换种说法" in messages[0]["text"]


# --- command line -------------------------------------------------------------------------
def test_cli_add_list_test_remove(capsys):
    from xiaoer.cli import main

    assert main(["keywords", "add", "发票", "开票", "--reply", "电子发票", "--priority", "70"]) == 0
    added = capsys.readouterr().out
    rule_id = int(added.split("#")[1].split()[0])
    assert main(["keywords", "list"]) == 0
    assert f"#{rule_id} [包含关键词] 发票、开票 → 回复「电子发票」" in capsys.readouterr().out
    assert main(["keywords", "test", "怎么开票"]) == 0
    assert f"命中规则 #{rule_id}" in capsys.readouterr().out
    assert main(["keywords", "test", "不用转人工，我不是要投诉", "-v"]) == 0
    out = capsys.readouterr().out
    assert "没有命中任何关键词规则" in out and "否定词" in out
    assert main(["keywords", "add", "x", "--reply", "{oops"]) == 2
    assert "花括号" in capsys.readouterr().err
    assert main(["keywords", "remove", str(rule_id)]) == 0
    assert main(["keywords", "remove", str(rule_id)]) == 1
    assert get_keyword_store().get(rule_id) is None


def test_settings_store_is_untouched_by_rule_edits():
    rule(keywords="发票", reply_text="x")
    assert "keywords" not in get_settings_store().overrides(fresh=True)


async def test_a_keyword_reply_in_the_middle_of_a_form_is_answered_and_the_form_goes_on():
    from actions.digressions import answer_digression
    from tests.helpers import DOMAIN

    invoice = rule(keywords="发票", reply_text="电子发票下单时填写抬头即可", buttons="怎么开专票")
    t = tracker("keyword_reply", "发票怎么开", slots={"requested_slot": "order_id"})
    t.latest_message["intent"]["keyword_rule"] = invoice.id
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    assert await answer_digression(dispatcher, t, DOMAIN) is True
    [message] = dispatcher.messages
    assert message["text"] == "电子发票下单时填写抬头即可" and not message["buttons"]


def test_rules_store_and_migration_on_sqlite_and_postgresql(project_db):
    """The same store on both databases of the project (migration marker, insert, update)."""
    SettingsStore(project_db).save("keywords", ["12315", "差评"], by="boss")
    store = KeywordRuleStore(project_db)
    assert [r.keywords for r in store.all(fresh=True)] == [("12315",), ("差评",)]
    added = store.add({"keywords": "发票", "action": "reply", "reply_text": "电子发票"})
    store.update(added.id, {**added.as_form(), "priority": "99"})
    assert store.all(fresh=True)[0].id == added.id
    assert match("开发票吗", rules=store.all()).rule.id == added.id
    assert len(KeywordRuleStore(project_db).all(fresh=True)) == 3  # migrated once
