"""The pkuseg tokenizer and the shop entity extractor as Rasa graph components."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.importers.rasa import RasaFileImporter
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from xiaoer.nlu.extractor import ShopEntityExtractor
from xiaoer.nlu.tokenizer import PkusegTokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalogue_data() -> TrainingData:
    return RasaFileImporter(
        training_data_paths=[str(ROOT / "data/nlu/catalogue.yml")]
    ).get_nlu_data()


@pytest.fixture()
def storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


@pytest.fixture()
def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def _tokenizer(storage, context, data: TrainingData) -> PkusegTokenizer:
    config = PkusegTokenizer.get_default_config()
    resource = Resource("tokenizer")
    PkusegTokenizer.create(config, storage, resource, context).train(data)
    return PkusegTokenizer.load(config, storage, resource, context)


def _texts(tokenizer: PkusegTokenizer, text: str) -> list[str]:
    return [t.text for t in tokenizer.tokenize(Message(data={TEXT: text}), TEXT)]


def test_segments_shop_language(storage, context, catalogue_data):
    tok = _tokenizer(storage, context, catalogue_data)
    assert _texts(tok, "我想退货，运费险怎么算") == [
        "我",
        "想",
        "退货",
        ",",
        "运费险",
        "怎么",
        "算",
    ]
    assert "纯棉短袖t恤" in _texts(tok, "纯棉短袖T恤有XL吗")
    assert "七天无理由" in _texts(tok, "支持七天无理由吗")


def test_user_dictionary_is_persisted_with_the_model(storage, context):
    data = TrainingData(lookup_tables=[{"name": "product", "elements": ["小二牌保温杯"]}])
    tok = _tokenizer(storage, context, data)
    assert "小二牌保温杯" in tok.terms
    assert "运费险" in tok.terms  # project domain terms are always included
    assert _texts(tok, "小二牌保温杯多少钱")[0] == "小二牌保温杯"


def test_traditional_and_full_width_input_gives_simplified_tokens(storage, context, catalogue_data):
    tok = _tokenizer(storage, context, catalogue_data)
    text = "我的訂單到哪裡了？？ＸＬ"
    tokens = tok.tokenize(Message(data={TEXT: text}), TEXT)
    assert [t.text for t in tokens][:3] == ["我", "的", "订单"]
    assert tokens[-1].text == "xl"
    # offsets point into what the customer wrote
    assert text[tokens[2].start : tokens[2].end] == "訂單"
    assert text[tokens[-1].start : tokens[-1].end] == "ＸＬ"


def test_empty_and_whitespace_messages_give_no_tokens(storage, context, catalogue_data):
    tok = _tokenizer(storage, context, catalogue_data)
    assert _texts(tok, "   ") == []


def _extractor(storage, context, data: TrainingData) -> ShopEntityExtractor:
    resource = Resource("extractor")
    ShopEntityExtractor.create({}, storage, resource, context).train(data)
    return ShopEntityExtractor.load({}, storage, resource, context)


def _entities(extractor: ShopEntityExtractor, text: str) -> list[tuple[str, str, str]]:
    message = Message(data={TEXT: text})
    extractor.process([message])
    return [(e["entity"], e["value"], text[e["start"] : e["end"]]) for e in message.get(ENTITIES)]


def test_entities_are_extracted_and_normalised(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "单号 6938 2710 4512 3400 002 到哪了") == [
        ("order_id", "6938271045123400002", "6938 2710 4512 3400 002")
    ]
    assert _entities(ex, "T恤黑色XL还有吗") == [
        ("product", "P1001", "T恤"),
        ("color", "黑色", "黑色"),
        ("size", "XL", "XL"),
    ]
    assert _entities(ex, "跑鞋42码有白的吗") == [
        ("product", "P1002", "跑鞋"),
        ("size", "42", "42码"),
        ("color", "白色", "白"),
    ]
    assert _entities(ex, "纯棉短袖Ｔ恤ＸＸＬ") == [
        ("product", "P1001", "纯棉短袖Ｔ恤"),
        ("size", "XXL", "ＸＸＬ"),
    ]


def test_body_measures_are_extracted_in_cm_and_kg(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "身高175cm体重70kg") == [
        ("height_cm", "175", "175cm"),
        ("weight_kg", "70", "70kg"),
    ]
    assert _entities(ex, "一米六五 一百斤穿什么码") == [
        ("height_cm", "165", "一米六五"),
        ("weight_kg", "50", "一百斤"),
    ]


def test_no_false_entities(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "运费89元") == []
    assert _entities(ex, "运单号SF1234567890123") == []
    assert _entities(ex, "黑心商家") == []
    assert _entities(ex, "") == []


# --- entities first (issue 12) ------------------------------------------------------
def test_order_ids_in_punctuation_numerals_and_several_per_message(
    storage, context, catalogue_data
):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "订单号：6938271045123400006！") == [
        ("order_id", "6938271045123400006", "6938271045123400006")
    ]
    assert _entities(ex, "帮我查下订单 6938271045123400002") == [
        ("order_id", "6938271045123400002", "6938271045123400002")
    ]
    assert _entities(ex, "订单六九三八二七一零四五一二三四零零零零二到哪了") == [
        ("order_id", "6938271045123400002", "六九三八二七一零四五一二三四零零零零二")
    ]
    assert _entities(ex, "６９３８－２７１０－４５１２－３４００－００３") == [
        ("order_id", "6938271045123400003", "６９３８－２７１０－４５１２－３４００－００３")
    ]
    assert _entities(ex, "6938271045123400004和6938271045123400002，都没到") == [
        ("order_id", "6938271045123400004", "6938271045123400004"),
        ("order_id", "6938271045123400002", "6938271045123400002"),
    ]


def test_after_sales_case_number(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "AS20261101 退款怎么样了") == [("case_id", "AS20261101", "AS20261101")]
    assert _entities(ex, "售后单号as20261105") == [("case_id", "AS20261105", "as20261105")]


def test_entities_survive_typos_and_cantonese(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)
    assert _entities(ex, "马克被有冇白色") == [
        ("product", "P1003", "马克被"),
        ("color", "白色", "白色"),
    ]
    assert _entities(ex, "有没有L") == [("size", "L", "L")]


def _ruled(text: str, intent: str, confidence: float, entities: list[dict]) -> str:
    from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY

    from xiaoer.nlu.rules import EntityIntentRule

    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": intent, "confidence": confidence})
    message.set(INTENT_RANKING_KEY, [{"name": intent, "confidence": confidence}])
    message.set(ENTITIES, entities)
    rule = EntityIntentRule(EntityIntentRule.get_default_config())
    rule.process([message])
    assert message.get(INTENT_RANKING_KEY)[0]["name"] == message.get(INTENT)["name"]
    return message.get(INTENT)["name"]


def test_an_order_number_decides_an_unsure_intent(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)

    def entities(text: str) -> list[dict]:
        message = Message(data={TEXT: text})
        ex.process([message])
        return message.get(ENTITIES)

    readme = "帮我查下订单 6938271045123400002"
    assert _ruled(readme, "nlu_fallback", 0.55, entities(readme)) == "order_status"
    for text in ["6938271045123400002 到哪了", "看下 6938271045123400002", "查6938271045123400002"]:
        assert _ruled(text, "nlu_fallback", 0.4, entities(text)) == "order_status"
    for text in [
        "订单号：6938271045123400006！",
        "6938271045123400002",
        "单号 六九三八二七一零四五一二三四零零零零二 哦",
    ]:
        assert _ruled(text, "greet", 0.9, entities(text)) == "inform_order_id"
    case = "AS20261101 怎么样了"
    assert _ruled(case, "nlu_fallback", 0.3, entities(case)) == "refund"
    # a clear verb beside the order number keeps its own intent, not a status question
    for text, verb in [
        ("上个月买的还能退吗 6938271045123400001", "return_goods"),
        ("6938271045123400003 这单退了", "return_goods"),
        ("6938271045123400002 退款多久到", "refund"),
        ("6938271045123400002 帮我取消", "cancel_order"),
        ("6938271045123400002 想换个颜色", "exchange"),
    ]:
        assert _ruled(text, "nlu_fallback", 0.4, entities(text)) == verb, text
    # a confident general return question about a named order is a return of that order
    named = "上个月买的还能退吗 6938271045123400001"
    assert _ruled(named, "return_policy", 0.9, entities(named)) == "return_goods"
    general = "上个月买的还能退吗"
    assert _ruled(general, "return_policy", 0.9, entities(general)) == "return_policy"
    # confident intents and messages without a number are left alone
    urge = "6938271045123400002 快点发货"
    assert _ruled(urge, "urge_shipment", 0.95, entities(urge)) == "urge_shipment"
    assert _ruled("帮我订张机票", "out_of_scope", 0.9, entities("帮我订张机票")) == "out_of_scope"


def test_body_measures_with_a_size_word_ask_for_a_size(storage, context, catalogue_data):
    ex = _extractor(storage, context, catalogue_data)

    def entities(text: str) -> list[dict]:
        message = Message(data={TEXT: text})
        ex.process([message])
        return message.get(ENTITIES)

    for text, intent in [
        ("T恤 165 55kg穿什么码", "product_info"),  # the README example, read as a product
        ("一米七 一百二十斤 穿哪个码", "nlu_fallback"),
        ("170 60公斤 黑色合适吗", "ask_stock"),
    ]:
        assert _ruled(text, intent, 0.9, entities(text)) == "ask_size", text
    # measures without a size word, or a size word without measures, are left alone
    assert _ruled("165 55kg", "inform_order_id", 0.6, entities("165 55kg")) == "inform_order_id"
    assert _ruled("T恤有什么码", "ask_stock", 0.9, entities("T恤有什么码")) == "ask_stock"
