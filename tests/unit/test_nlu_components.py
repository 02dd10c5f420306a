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
