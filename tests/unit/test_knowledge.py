"""The knowledge base: import (every rejection reason), export round trip, idempotence,
live answers, the run-time matcher, the generated training data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import Workbook, load_workbook

from xiaoer.core.labels import INTENTS
from xiaoer.knowledge.answers import Matcher, answer_for, describe
from xiaoer.knowledge.collisions import intent_examples
from xiaoer.knowledge.importing import (
    ADDED,
    REJECTED,
    UNCHANGED,
    UPDATED,
    export_bytes,
    import_bytes,
)
from xiaoer.knowledge.sheets import SheetError, read_table, template, write_csv, write_xlsx
from xiaoer.knowledge.store import Entry, KnowledgeError, KnowledgeStore
from xiaoer.knowledge.training_data import intents_of, write_inputs

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = {"p1001": "P1001", "纯棉短袖t恤": "P1001", "p1003": "P1003", "陶瓷马克杯": "P1003"}

GOOD = [
    {
        "问题": "可以货到付款吗",
        "相似问法": "支持货到付款吗\n能不能到付｜收到货再付钱可以吗",
        "答案": "亲，暂不支持货到付款哦",
        "分类": "支付",
    },
    {
        "问题": "T恤可以机洗吗",
        "相似问法": "短袖能用洗衣机洗吗|T恤怎么洗",
        "答案": "可以机洗，建议冷水反面洗",
        "商品": "纯棉短袖T恤",
        "分类": "商品使用",
    },
    {"问题": "有没有实体店", "相似问法": "线下有店吗", "答案": "我们只有线上店铺哦"},
]


@pytest.fixture()
def store(project_db: Any, data_dir: Path) -> KnowledgeStore:
    return KnowledgeStore(project_db)


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    return write_csv(rows)


def an_intent_example() -> tuple[str, str]:
    """A real training example of an existing intent (data/nlu)."""
    intent, example = next(v for v in intent_examples().values() if v[0] == "ask_wholesale")
    return intent, example


def test_good_csv_is_imported_with_its_phrasings(store: KnowledgeStore) -> None:
    report = import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    assert [r.status for r in report.rows] == [ADDED, ADDED, ADDED]
    entries = {e.question: e for e in store.all()}
    assert entries["可以货到付款吗"].phrasings == [
        "支持货到付款吗",
        "能不能到付",
        "收到货再付钱可以吗",
    ]
    assert entries["T恤可以机洗吗"].phrasings == ["短袖能用洗衣机洗吗", "T恤怎么洗"]
    assert entries["T恤可以机洗吗"].product == "P1001"  # the name became the product id
    assert entries["可以货到付款吗"].category == "支付"
    assert report.rows[1].row == 3  # spreadsheet row numbers (header is row 1)


def test_the_same_file_twice_changes_nothing(store: KnowledgeStore) -> None:
    import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    before = [(e.id, e.updated_at, e.content()) for e in store.all()]
    again = import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    assert [r.status for r in again.rows] == [UNCHANGED] * 3
    assert [(e.id, e.updated_at, e.content()) for e in store.all()] == before
    assert not again.changed


def test_a_changed_answer_updates_the_entry_in_place(store: KnowledgeStore) -> None:
    import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    first_id = store.all()[0].id
    rows = [dict(GOOD[0], 答案="现在支持货到付款了"), *GOOD[1:]]
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS)
    assert [r.status for r in report.rows] == [UPDATED, UNCHANGED, UNCHANGED]
    entry = store.get(first_id or 0)
    assert entry is not None and entry.answer == "现在支持货到付款了"
    assert len(store.all()) == 3


def test_every_rejection_reason_is_reported_and_good_rows_still_imported(
    store: KnowledgeStore,
) -> None:
    store.save(Entry(question="有没有实体店", answer="只有线上店", phrasings=["线下有店吗"]))
    intent, example = an_intent_example()
    rows = [
        {"问题": "能开发票吗吗吗", "相似问法": "", "答案": ""},  # empty answer
        {"问题": "", "相似问法": "随便问问", "答案": "有答案没问题"},  # empty question
        {"问题": "周末发货吗", "相似问法": "", "答案": "发的"},
        {"问题": "周末發貨嗎？", "相似问法": "", "答案": "重复"},  # duplicate (normalised)
        {"问题": "能批量买吗", "相似问法": example, "答案": "可以"},  # an intent's example
        {"问题": "有门店吗", "相似问法": "线下有店吗！", "答案": "没有"},  # another entry's
        {"问题": "杯子送礼盒吗", "相似问法": "", "答案": "送", "商品": "P9999"},  # unknown product
    ]
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS)
    by_row = {r.row: r for r in report.rows}
    assert by_row[2].status == REJECTED and by_row[2].reason == "答案为空"
    assert by_row[3].status == REJECTED and by_row[3].reason == "问题为空"
    assert by_row[4].status == ADDED
    assert by_row[5].status == REJECTED and "与第 4 行的问题相同" in by_row[5].reason
    assert by_row[6].status == REJECTED and f"已有意图「{INTENTS[intent]}」" in by_row[6].reason
    assert by_row[6].collisions[0].example == example
    assert by_row[7].status == REJECTED and "有没有实体店" in by_row[7].reason
    assert by_row[7].collisions[0].example == "线下有店吗"
    assert by_row[8].status == REJECTED and "未知商品「P9999」" in by_row[8].reason
    assert sorted(e.question for e in store.all()) == ["周末发货吗", "有没有实体店"]


def test_the_same_question_for_two_products_is_two_entries(store: KnowledgeStore) -> None:
    rows = [
        {
            "问题": "可以定制刻字吗",
            "相似问法": "能印名字吗",
            "答案": "T恤可以印字",
            "商品": "P1001",
        },
        {
            "问题": "可以定制刻字吗",
            "相似问法": "能印名字吗",
            "答案": "杯子可以刻字",
            "商品": "P1003",
        },
    ]
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS)
    assert [r.status for r in report.rows] == [ADDED, ADDED]
    first, second = store.all()
    assert answer_for(first.key, "P1003", store) == second
    assert answer_for(first.key, "P1001", store) == first
    # the model learns the question once; the product picks the answer
    assert list(intents_of(store.all())) == [first.intent]


@pytest.mark.parametrize(
    "data,name",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.csv"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.xls"),
        (b"PK\x03\x04not really a zip", "broken.xlsx"),
        ("问题,答案\n可以货到付款吗,不可以\n".encode(), "nocolumn.csv"),
    ],
)
def test_a_file_that_is_no_knowledge_table_writes_nothing(
    store: KnowledgeStore, data: bytes, name: str
) -> None:
    with pytest.raises(SheetError) as error:
        import_bytes(data, name, store, PRODUCTS)
    assert error.value.args[0]  # a sentence for the merchant
    if name == "nocolumn.csv":
        assert "缺少列：相似问法" in str(error.value)
    assert store.all() == []


def test_strict_import_writes_nothing_when_a_row_is_rejected(store: KnowledgeStore) -> None:
    rows = [*GOOD, {"问题": "没答案的问题", "相似问法": "", "答案": ""}]
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS, strict=True)
    assert not report.written and report.count(REJECTED) == 1
    assert store.all() == []


def test_an_import_failing_midway_leaves_nothing_half_written(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._write
    calls = []

    def failing(conn: Any, entry: Entry, by: str) -> Entry:
        calls.append(entry.question)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(conn, entry, by)

    monkeypatch.setattr(store, "_write", failing)
    with pytest.raises(RuntimeError):
        import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    monkeypatch.setattr(store, "_write", real)
    assert store.all() == []


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_export_round_trip(store: KnowledgeStore, kind: str) -> None:
    import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    entry = store.all()[0]
    entry.image_url = "https://img.example.com/cod.png"
    entry.enabled = False
    from xiaoer.knowledge.store import Button

    entry.buttons = [Button("转人工", "/request_human"), Button("查订单", "查订单")]
    store.save(entry)
    before = [e.content() for e in store.all()]
    data = export_bytes(store, f"kb.{kind}")
    if kind == "xlsx":
        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        assert [c.value for c in sheet[1]][:3] == ["问题", "相似问法", "答案"]
    report = import_bytes(data, f"kb.{kind}", store, PRODUCTS)
    assert {r.status for r in report.rows} == {UNCHANGED}
    assert [e.content() for e in store.all()] == before


def test_xlsx_with_other_tools_headings_and_the_template_read(store: KnowledgeStore) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["标准问题", "相似问题", "回答"])
    sheet.append(["支持七天无理由吗", "七天能退吗", "支持的亲"])
    out = io.BytesIO()
    book.save(out)
    report = import_bytes(out.getvalue(), "kb.xlsx", store, PRODUCTS)
    assert [r.status for r in report.rows] == [ADDED]
    for kind in ("xlsx", "csv"):
        table = read_table(template(kind), f"t.{kind}")
        assert table.columns[:3] == ["问题", "相似问法", "答案"] and len(table.rows) == 2
    assert write_xlsx([])[:2] == b"PK"


def test_console_checks_refuse_collisions_and_empty_answers(store: KnowledgeStore) -> None:
    _, example = an_intent_example()
    with pytest.raises(KnowledgeError, match="答案不能为空"):
        store.save(Entry(question="有会员积分吗", answer=" "))
    with pytest.raises(KnowledgeError, match="冲突"):
        store.save(Entry(question="批量", answer="可以", phrasings=[example]))
    saved = store.save(Entry(question="有会员积分吗", answer="有小礼物"))
    saved.phrasings = ["积分怎么用"]
    store.save(saved)  # an entry never collides with itself
    assert store.get(saved.id or 0).phrasings == ["积分怎么用"]  # type: ignore[union-attr]


def test_answers_are_read_live_and_a_switched_off_entry_is_not_used(store: KnowledgeStore) -> None:
    entry = store.save(Entry(question="有没有实体店", answer="只有线上店"))
    assert answer_for(entry.intent, None, store).answer == "只有线上店"  # type: ignore[union-attr]
    entry.answer = "杭州有一家体验店"
    store.save(entry)
    assert answer_for(entry.intent, None, store).answer == "杭州有一家体验店"  # type: ignore[union-attr]
    store.set_enabled(entry.id or 0, False)
    assert answer_for(entry.intent, None, store) is None


def test_describe_names_the_entry_for_the_test_chat(store: KnowledgeStore) -> None:
    entry = store.save(Entry(question="有没有实体店", answer="只有线上店", category="店铺"))
    parse = {
        "intent": {"name": "faq", "confidence": 0.9},
        "response_selector": {"faq": {"response": {"intent_response_key": entry.intent}}},
    }
    for what in (entry.intent, entry.key, f"utter_{entry.intent}", parse):
        described = describe(what)
        assert described is not None
        assert (
            described["question"] == "有没有实体店"
            and described["edit_url"] == f"/knowledge/{entry.id}"
        )
    assert describe("greet") is None
    assert describe({"intent": {"name": "greet"}}) is None


def test_matcher_answers_exact_and_near_exact_phrasings_only(store: KnowledgeStore) -> None:
    entry = store.save(
        Entry(question="可以货到付款吗", answer="不支持", phrasings=["收到货以后再付钱可以吗"])
    )
    matcher = Matcher(store, ttl=0)
    assert matcher.match("可以货到付款吗？").key == entry.key  # type: ignore[union-attr]
    assert matcher.match("可以貨到付款嗎").key == entry.key  # type: ignore[union-attr]
    assert matcher.match("收到货以后再付钱可以吗亲").key == entry.key  # type: ignore[union-attr]
    assert matcher.match("可以退款吗") is None
    assert matcher.match("我要投诉你们") is None
    store.set_enabled(entry.id or 0, False)
    assert matcher.match("可以货到付款吗") is None


def test_training_data_is_generated_outside_data(store: KnowledgeStore, tmp_path: Path) -> None:
    store.save(
        Entry(question="有没有实体店", answer="只有线上店", phrasings=["线下有店吗", "[门店]在哪"])
    )
    off = store.save(Entry(question="送礼盒吗", answer="送"))
    store.set_enabled(off.id or 0, False)
    inputs = write_inputs(tmp_path / "build", store.all(), ROOT)
    nlu = yaml.safe_load((tmp_path / "build" / "data" / "knowledge_nlu.yml").read_text("utf-8"))
    assert nlu["nlu"] == [
        {
            "intent": store.all()[0].intent,
            "examples": "- 有没有实体店\n- 线下有店吗\n- 【门店】在哪\n",
        }
    ]
    domain = yaml.safe_load((inputs.domain / "knowledge.yml").read_text("utf-8"))
    assert domain["intents"] == [{"faq": {"is_retrieval_intent": True}}]
    assert domain["actions"] == ["action_kb_answer", "utter_faq"]
    assert (inputs.domain / "domain.yml").read_text("utf-8") == (ROOT / "domain.yml").read_text(
        "utf-8"
    )
    assert inputs.data == [ROOT / "data", tmp_path / "build" / "data"]
    assert inputs.entries == 1


def test_nearest_picks_the_entry_with_the_most_similar_example(store: KnowledgeStore) -> None:
    cod = store.save(Entry(question="支持货到付款吗", answer="不支持", phrasings=["能到付吗"]))
    store.save(Entry(question="可以开纸质收据吗", answer="可以", phrasings=["要一张收据"]))
    matcher = Matcher(store, ttl=0)
    near = matcher.nearest("货到了再付款行不行")
    assert near is not None and near.key == cod.key and 0 < near.score < 100


def test_the_response_selector_breaks_a_near_tie(store: KnowledgeStore) -> None:
    returns = store.save(Entry(question="退货运费谁出", answer="七天无理由退货运费由买家承担"))
    exchange = store.save(Entry(question="换货运费谁出", answer="质量问题换货运费由我们承担"))
    matcher = Matcher(store, ttl=0)
    plain = matcher.nearest("运费谁出")
    assert plain is not None and plain.key in (returns.key, exchange.key)
    other = exchange if plain.key == returns.key else returns
    # the selector is sure of the other entry: it wins the tie, the score stays the example's
    chosen = matcher.nearest("运费谁出", {other.key: 0.9, plain.key: 0.05})
    assert chosen is not None and chosen.key == other.key and chosen.score == plain.score
    # a selector's whim does not beat a clearly closer example
    assert matcher.nearest("退货的运费谁出", {exchange.key: 0.9}).key == returns.key  # type: ignore[union-attr]


def test_the_nlu_component_answers_faq_and_rescues_close_misses(store: KnowledgeStore) -> None:
    from rasa.shared.nlu.training_data.message import Message

    from xiaoer.nlu.knowledge import KnowledgeMatcher

    cod = store.save(Entry(question="支持货到付款吗", answer="不支持", phrasings=["能到付吗"]))
    receipt = store.save(
        Entry(question="可以开纸质收据吗", answer="可以", phrasings=["要一张收据"])
    )
    component = KnowledgeMatcher({**KnowledgeMatcher.get_default_config(), "refresh_seconds": 0})

    def parse(text: str, intent: str, confidence: float = 0.9) -> dict[str, Any]:
        message = Message(data={"text": text})
        message.set("intent", {"name": intent, "confidence": confidence})
        message.set("intent_ranking", [{"name": intent, "confidence": confidence}])
        component.process([message])
        return {
            "intent": message.get("intent"),
            "response_selector": message.get("response_selector") or {},
        }

    exact = parse("支持貨到付款嗎？", "ask_discount", 0.4)  # before any retrain: the matcher
    assert exact["intent"]["name"] == "faq" and describe(exact)["id"] == cod.id  # type: ignore[index]
    similar = parse("纸质的收据能开一张吗", "faq", 0.8)  # the classifier knew it is an faq
    assert describe(similar)["id"] == receipt.id  # type: ignore[index]
    assert similar["intent"]["confidence"] == 0.8
    rescued = parse("货到再付款行不", "nlu_fallback", 0.3)
    assert rescued["intent"]["name"] == "faq" and describe(rescued)["id"] == cod.id  # type: ignore[index]
    other = parse("我的快递到哪了", "order_status", 0.95)  # other intents are left alone
    assert other["intent"]["name"] == "order_status" and other["response_selector"] == {}


def test_nearest_reads_the_answer_too(store: KnowledgeStore) -> None:
    # no phrasing says "当面给钱", the answer does: the entry is found by its answer
    cod = store.save(
        Entry(question="支持货到付款吗", answer="支持货到付款，快递送到时当面给钱即可",
              phrasings=["能到付吗"])
    )  # fmt: skip
    store.save(Entry(question="可以开纸质收据吗", answer="可以", phrasings=["要一张收据"]))
    near = Matcher(store, ttl=0).nearest("能不能当面给钱")
    assert near is not None and near.key == cod.key


def _trained_matcher(tmp_path: Path, examples: dict[str, list[str]]) -> Any:
    """A KnowledgeMatcher trained on ``examples`` and loaded back, as in a model."""
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from xiaoer.nlu.knowledge import KnowledgeMatcher

    context = ExecutionContext(GraphSchema({}), "test")
    storage = LocalModelStorage(tmp_path)
    config = {**KnowledgeMatcher.get_default_config(), "refresh_seconds": 0}
    messages = [
        Message(data={"text": text, "intent": intent})
        for intent, texts in examples.items()
        for text in texts
    ]
    messages.append(Message(data={"text": "有实体店吗", "intent": "faq"}))  # the KB's own
    KnowledgeMatcher.create(config, storage, Resource("kb"), context).train(TrainingData(messages))
    return KnowledgeMatcher.load(config, storage, Resource("kb"), context)


def test_an_unsure_intent_closer_to_an_entry_is_the_entry(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    from rasa.shared.nlu.training_data.message import Message

    receipt = store.save(
        Entry(question="可以开纸质收据吗", answer="可以的", phrasings=["要一张纸质收据"])
    )
    component = _trained_matcher(
        tmp_path, {"ask_invoice": ["能开发票吗", "电子发票怎么开", "发票抬头填公司"]}
    )
    assert "faq" not in component.matcher.intent_examples  # only the intents' examples

    def parse(text: str, intent: str, confidence: float, **data: Any) -> dict[str, Any]:
        message = Message(data={"text": text, **data})
        message.set("intent", {"name": intent, "confidence": confidence})
        component.process([message])
        return {
            "intent": message.get("intent"),
            "response_selector": message.get("response_selector"),
        }

    closer = parse("纸质收据能给一张不", "ask_invoice", 0.7)
    assert closer["intent"]["name"] == "faq" and describe(closer)["id"] == receipt.id  # type: ignore[index]
    assert closer["intent"]["knowledge_match_kind"] == "closer"
    # the intent's own examples are as close: the classifier keeps it
    assert parse("电子发票能开吗", "ask_invoice", 0.7)["intent"]["name"] == "ask_invoice"
    # a confident classifier keeps it
    assert parse("纸质收据能给一张不", "ask_invoice", 0.99)["intent"]["name"] == "ask_invoice"
    # an order number leads: the order flows keep it
    with_order = parse("纸质收据能给一张不 6938271045123400001", "ask_invoice", 0.7,
                       entities=[{"entity": "order_id", "value": "6938271045123400001"}])  # fmt: skip
    assert with_order["intent"]["name"] == "ask_invoice"


def test_a_faq_message_much_closer_to_the_next_intent_goes_back_to_it(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    from rasa.shared.nlu.training_data.message import Message

    store.save(Entry(question="支付密码忘了怎么办", answer="在抖音支付设置里找回"))
    store.save(Entry(question="有实体店吗", answer="只有线上店"))
    component = _trained_matcher(
        tmp_path,
        {
            "change_address": [
                "地址写错了",
                "收货地址能改吗",
                "帮我改下地址",
                "地址里的路名写错了",
            ],
            "out_of_scope": ["今天天气怎么样", "wifi密码是多少"],
        },
    )

    def parse(text: str) -> Message:
        message = Message(data={"text": text})
        ranking = [
            {"name": "faq", "confidence": 0.97},
            {"name": "change_address", "confidence": 0.02},
            {"name": "out_of_scope", "confidence": 0.01},
        ]
        message.set("intent", ranking[0])
        message.set("intent_ranking", ranking)
        component.process([message])
        return message

    # "the road name in my address is mistyped" is an address change, not the password entry
    back = parse("地址里的路名打错了")
    assert back.get("intent")["name"] == "change_address"
    assert back.get("intent")["confidence"] == 0.02
    assert [r["name"] for r in back.get("intent_ranking")] == ["change_address", "out_of_scope"]
    assert back.get("response_selector") is None
    # a message as close to an entry stays the entry's
    kept = parse("支付密码忘记了咋办")
    assert (
        kept.get("intent")["name"] == "faq"
        and describe(
            {"intent": kept.get("intent"), "response_selector": kept.get("response_selector")}
        )["question"]
        == "支付密码忘了怎么办"
    )  # type: ignore[index]


def test_an_unsure_intent_is_kept_when_another_intent_is_much_closer(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    from rasa.shared.nlu.training_data.message import Message

    store.save(Entry(question="可以帮忙写贺卡吗", answer="可以，下单时备注贺卡内容"))
    component = _trained_matcher(
        tmp_path,
        {
            "refund": ["退款什么时候到账", "钱退到哪里"],
            "ask_payment": ["钱会退到我付款那张卡上吗", "能用信用卡付款吗"],
        },
    )
    message = Message(data={"text": "钱会退到我付款那张卡上吗"})
    message.set("intent", {"name": "refund", "confidence": 0.6})
    component.process([message])
    # closer to an example of ask_payment than to the greeting-card entry: not the entry
    assert message.get("intent")["name"] == "refund"


def test_a_model_without_kept_examples_never_overrides(store: KnowledgeStore) -> None:
    from rasa.shared.nlu.training_data.message import Message

    from xiaoer.nlu.knowledge import KnowledgeMatcher

    store.save(Entry(question="可以开纸质收据吗", answer="可以的", phrasings=["要一张纸质收据"]))
    component = KnowledgeMatcher({"refresh_seconds": 0})  # an older model: nothing kept
    message = Message(data={"text": "纸质收据能给一张不"})
    message.set("intent", {"name": "ask_invoice", "confidence": 0.5})
    component.process([message])
    assert message.get("intent")["name"] == "ask_invoice"


class ModelVerdicts:
    """The current model's classification of texts (intent, confidence), as the Rasa
    server's /model/parse gives it; records what it was asked."""

    def __init__(self, verdicts: dict[str, tuple[str, float]]) -> None:
        self.verdicts = verdicts
        self.asked: list[str] = []

    def __call__(self, texts: list[str]) -> dict[str, tuple[str, float]]:
        self.asked += texts
        return {t: self.verdicts.get(t, ("nlu_fallback", 0.3)) for t in texts}


def test_a_question_a_shop_data_flow_answers_is_refused_as_a_collision(
    store: KnowledgeStore,
) -> None:
    model = ModelVerdicts({
        "电子发票怎么开": ("ask_invoice", 0.97),
        "能给开个票吗": ("ask_invoice", 0.91),
        "有线下门店吗": ("out_of_scope", 0.99),  # not a flow: the knowledge base may answer
        "包装环保吗": ("product_info", 0.42),  # not with confidence
    })  # fmt: skip
    rows = [
        {"问题": "电子发票怎么开", "相似问法": "能给开个票吗|发票在哪下载", "答案": "订单页申请"},
        {"问题": "有线下门店吗", "相似问法": "", "答案": "只有线上店"},
        {"问题": "包装环保吗", "相似问法": "", "答案": "可降解包装"},
    ]
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS, classify=model)
    assert report.model_checked and report.note() == ""
    refused = report.rows[0]
    assert refused.status == REJECTED
    assert refused.reason.startswith("已有流程会回答：问发票")
    assert "「电子发票怎么开」" in refused.reason and "「能给开个票吗」" in refused.reason
    assert [c.message() for c in refused.collisions] == [
        "「电子发票怎么开」已有流程会回答：问发票",
        "「能给开个票吗」已有流程会回答：问发票",
    ]
    assert [r.status for r in report.rows[1:]] == [ADDED, ADDED]
    assert sorted(e.question for e in store.all()) == ["包装环保吗", "有线下门店吗"]
    # the same file again: the entries already in are not asked about again
    model.asked.clear()
    again = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS, classify=model)
    assert [r.status for r in again.rows] == [REJECTED, UNCHANGED, UNCHANGED]
    assert "有线下门店吗" not in model.asked and "包装环保吗" not in model.asked


def test_without_a_model_the_import_says_the_flows_were_not_checked(
    store: KnowledgeStore,
) -> None:
    report = import_bytes(csv_bytes(GOOD), "kb.csv", store, PRODUCTS)
    assert not report.model_checked and "未检查已有流程" in report.note()


def test_one_phrasing_of_several_a_flow_would_take_does_not_refuse_the_entry(
    store: KnowledgeStore,
) -> None:
    model = ModelVerdicts({"发货用的什么包装": ("ask_shipping", 0.95)})
    rows = [{"问题": "包装盒可以回收吗", "相似问法": "发货用的什么包装|盒子能回收吗|纸盒环保吗",
             "答案": "纸盒可回收"}]  # fmt: skip
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS, classify=model)
    assert [r.status for r in report.rows] == [ADDED]
    # half of them: refused
    model.verdicts.update({"快递用什么箱子": ("ask_shipping", 0.95),
                           "箱子多大": ("product_info", 0.93)})  # fmt: skip
    rows = [{"问题": "外箱能留着用吗", "相似问法": "快递用什么箱子|箱子多大|外箱结实吗",
             "答案": "外箱很结实"}]  # fmt: skip
    report = import_bytes(csv_bytes(rows), "kb.csv", store, PRODUCTS, classify=model)
    assert report.rows[0].status == REJECTED
    assert "已有流程会回答：问物流、商品信息" in report.rows[0].reason


def _featurised(texts_by_intent: dict[str, list[str]], tmp_path: Path) -> Any:
    """Training data tokenised and featurised (character n-grams), as DIET receives it."""
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
        CountVectorsFeaturizer,
    )
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    context = ExecutionContext(GraphSchema({}), "test")
    (tmp_path / "models").mkdir(parents=True)
    storage = LocalModelStorage(tmp_path / "models")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    featurizer = CountVectorsFeaturizer.create(
        {**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb",
         "min_ngram": 1, "max_ngram": 2},
        storage, Resource("cv"), context,
    )  # fmt: skip
    data = TrainingData(
        [
            Message(data={"text": text, "intent": intent})
            for intent, texts in texts_by_intent.items()
            for text in texts
        ]
    )
    tokenizer.process_training_data(data)
    featurizer.train(data)
    featurizer.process_training_data(data)

    def featurise(text: str) -> Message:
        message = Message(data={"text": text})
        tokenizer.process([message])
        featurizer.process([message])
        return message

    return data, featurise, storage, context


def test_the_intents_alone_classifier_learns_without_the_knowledge_base(tmp_path: Path) -> None:
    from rasa.engine.storage.resource import Resource

    from xiaoer.nlu.knowledge import ALONE_FIELD, IntentsAlone

    examples = {
        "order_status": ["我的快递到哪了", "物流怎么不动了", "查一下订单", "包裹到哪里了"],
        "refund": ["我要退款", "钱什么时候退", "退款到账了吗", "申请退款"],
        "faq": ["支持货到付款吗", "能到付吗", "有实体店吗", "门店在哪"],
    }
    data, featurise, storage, context = _featurised(examples, tmp_path)
    config = {**IntentsAlone.get_default_config(), "epochs": 30, "random_seed": 1,
              "entity_recognition": False}  # fmt: skip
    IntentsAlone.create(config, storage, Resource("alone"), context).train(data)
    alone = IntentsAlone.load(config, storage, Resource("alone"), context)

    message = featurise("快递到哪了")
    message.set("intent", {"name": "nlu_fallback", "confidence": 0.55})
    alone.process([message])
    # the message's own intent is left alone; the verdict is recorded beside it
    assert message.get("intent") == {"name": "nlu_fallback", "confidence": 0.55}
    verdict = message.get(ALONE_FIELD)
    assert verdict["intent"]["name"] == "order_status"
    assert {r["name"] for r in verdict["ranking"]} == {"order_status", "refund"}  # no faq

    # without any entry there is nothing to learn apart: no model, nothing recorded
    no_kb = {k: v for k, v in examples.items() if k != "faq"}
    data, featurise, storage, context = _featurised(no_kb, tmp_path / "no-kb")
    IntentsAlone.create(config, storage, Resource("alone"), context).train(data)
    untrained = IntentsAlone.load(config, storage, Resource("alone"), context)
    message = featurise("快递到哪了")
    untrained.process([message])
    assert message.get(ALONE_FIELD) is None


def test_a_message_not_understood_and_no_entrys_takes_the_intents_alone_verdict(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    from rasa.shared.nlu.training_data.message import Message

    from xiaoer.nlu.knowledge import ALONE_FIELD

    store.save(Entry(question="支持货到付款吗", answer="不支持", phrasings=["能到付吗"]))
    component = _trained_matcher(tmp_path, {"change_address": ["地址写错了", "帮我改下地址"]})

    def parse(text: str, alone: str, confidence: float) -> Message:
        message = Message(data={"text": text})
        message.set("intent", {"name": "nlu_fallback", "confidence": 0.55})
        message.set("intent_ranking", [{"name": "nlu_fallback", "confidence": 0.55}])
        ranking = [{"name": alone, "confidence": confidence}, {"name": "greet", "confidence": 0.01}]
        message.set(ALONE_FIELD, {"intent": ranking[0], "ranking": ranking})
        component.process([message])
        return message

    sure = parse("收件人电话留错了", "change_address", 0.93)
    assert sure.get("intent")["name"] == "change_address"
    assert sure.get("intent")["classifier"] == "intents_alone"
    assert [r["name"] for r in sure.get("intent_ranking")] == ["change_address", "greet"]
    # not sure enough: still not understood
    assert parse("收件人电话留错了", "change_address", 0.5).get("intent")["name"] == "nlu_fallback"
    # an entry's question is the entry's, whatever the other classifier says
    cod = parse("货到再付款行不", "change_address", 0.93)
    assert cod.get("intent")["name"] == "faq"


def test_a_message_the_intents_alone_classifier_knows_is_not_rescued_by_a_loose_entry(
    store: KnowledgeStore, tmp_path: Path
) -> None:
    """Not understood, and some entry's example a little alike: the classifier trained
    without the knowledge base decides when it is sure, or fairly sure and the entry only
    loosely alike (heldout: "早安 亲" was answered with the privacy entry)."""
    from rasa.shared.nlu.training_data.message import Message

    from xiaoer.nlu.knowledge import ALONE_FIELD

    store.save(
        Entry(
            question="怎么给商品写评价", answer="在订单页点“评价”即可", phrasings=["评价在哪里写"]
        )
    )
    store.save(
        Entry(question="早上几点开始发货", answer="每天早上9点开始发货", phrasings=["每天几点发货"])
    )
    component = _trained_matcher(tmp_path, {"greet": ["你好", "在吗", "早上好"]})

    def parse(text: str, confidence: float) -> Message:
        message = Message(data={"text": text})
        message.set("intent", {"name": "nlu_fallback", "confidence": 0.55})
        message.set("intent_ranking", [{"name": "nlu_fallback", "confidence": 0.55}])
        ranking = [
            {"name": "greet", "confidence": confidence},
            {"name": "thank", "confidence": 0.01},
        ]
        message.set(ALONE_FIELD, {"intent": ranking[0], "ranking": ranking})
        component.process([message])
        return message

    loose, close = "你好早", "早上好"
    assert 25 <= component.matcher.nearest(loose).score < 35  # rescued before
    assert component.matcher.nearest(close).score >= 35
    # loosely alike: fairly sure is enough for the intent
    assert parse(loose, 0.8).get("intent")["name"] == "greet"
    assert parse(loose, 0.8).get("intent")["classifier"] == "intents_alone"
    # not sure: the entry still rescues it
    assert parse(loose, 0.5).get("intent")["name"] == "faq"
    # closer: only a sure verdict keeps it from the entry
    assert parse(close, 0.9).get("intent")["name"] == "faq"
    assert parse(close, 0.97).get("intent")["name"] == "greet"
