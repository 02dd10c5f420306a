"""The inbox (待学习): collection from the event stream, de-duplication, grouping,
suggestions, and writing accepted examples into the NLU data."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.learning import grouping, nludata, service
from xiaoer.learning.inbox import LEARNING_INBOX_TABLES, InboxCollector, InboxStore


@pytest.fixture()
def store(project_db: Any) -> InboxStore:
    from xiaoer.core.db import metadata

    # the lead generates the migration for these tables at integration
    metadata.create_all(project_db.engine, tables=list(LEARNING_INBOX_TABLES), checkfirst=True)
    return InboxStore(project_db)


_clock = itertools.count(1000)


def user(sender: str, mid: str, text: str, intent: str, conf: float, **more: float) -> dict:
    ranking = [{"name": intent, "confidence": conf}] + [
        {"name": k, "confidence": v} for k, v in more.items()
    ]
    return {
        "event": "user",
        "sender_id": sender,
        "text": text,
        "message_id": mid,
        "timestamp": float(next(_clock)),
        "parse_data": {
            "intent": {"name": intent, "confidence": conf},
            "intent_ranking": ranking,
        },
    }


def bot(sender: str, text: str = "好的") -> dict:
    return {"event": "bot", "sender_id": sender, "text": text, "timestamp": 1001.0}


def action(sender: str, name: str) -> dict:
    return {"event": "action", "sender_id": sender, "name": name, "timestamp": 1001.0}


def play(collector: InboxCollector, events: list[dict]) -> None:
    for e in events:
        collector(e)


def test_collects_fallback_low_confidence_handoff_and_correction(store: InboxStore) -> None:
    c = InboxCollector(store, low_confidence=0.7)
    play(
        c,
        [
            user("a", "m1", "能帮我包成礼物吗", "nlu_fallback", 0.4, ask_invoice=0.3),
            action("a", "action_default_fallback"),
            bot("a"),
            user("b", "m2", "衣服洗了会缩水不", "product_info", 0.6, ask_size=0.2),
            bot("b"),
            user("c", "m3", "你们家有实体店吗", "ask_shipping", 0.9),
            bot("c", "一般48小时内发货"),
            user("c", "m4", "不是，我问实体店", "deny", 0.8),
            user("d", "m5", "这个跟我想的不一样", "product_info", 0.8),
            action("d", "action_handoff"),
            user("e", "m6", "转人工", "request_human", 0.99),
            action("e", "action_handoff"),
        ],
    )
    items = {i.text: i for i in store.items()}
    assert set(items) == {
        "能帮我包成礼物吗",
        "衣服洗了会缩水不",
        "你们家有实体店吗",
        "这个跟我想的不一样",
    }
    assert items["能帮我包成礼物吗"].reasons == ["fallback"]
    assert items["能帮我包成礼物吗"].suggestions()[0][0] == "ask_invoice"
    assert items["衣服洗了会缩水不"].reasons == ["low_confidence"]
    assert items["你们家有实体店吗"].reasons == ["corrected"]
    assert items["这个跟我想的不一样"].reasons == ["handoff"]
    # the conversation is one click away: its sender id is kept
    assert store.get(items["你们家有实体店吗"].id).senders == ["c"]  # type: ignore[union-attr]


def test_duplicates_counted_replays_ignored_sandbox_and_payloads_skipped(store: InboxStore) -> None:
    c = InboxCollector(store, low_confidence=0.7)
    first = user("a", "m1", "能开专票吗？", "nlu_fallback", 0.3)
    play(
        c,
        [
            first,
            first,  # a replayed row
            user(
                "b", "m2", "能开专票吗", "nlu_fallback", 0.3
            ),  # later, same text, another customer
            user("test-chat:1", "m3", "沙盒里的奇怪问题", "nlu_fallback", 0.2),
            user("f", "m4", "/affirm", "affirm", 0.1),
        ],
    )
    items = store.items()
    assert [(i.text, i.count) for i in items] == [("能开专票吗？", 2)]
    assert store.get(items[0].id).senders == ["b", "a"]  # type: ignore[union-attr]


def test_grouping_puts_paraphrases_together(store: InboxStore) -> None:
    texts = ["能包装成礼物吗", "可以礼物包装吗", "礼物包装怎么弄", "你们有实体店吗", "实体店在哪里"]
    for n, t in enumerate(texts):
        store.collect(message_id=f"m{n}", sender_id="s", text=t, reason="fallback",
                      intent="nlu_fallback", confidence=0.3,
                      ranking=[{"name": "product_info", "confidence": 0.3}])  # fmt: skip
    groups = grouping.group_items(store.items())
    by_label = [{i.text for i in g.items} for g in groups]
    assert {"能包装成礼物吗", "可以礼物包装吗", "礼物包装怎么弄"} in by_label
    assert {"你们有实体店吗", "实体店在哪里"} in by_label
    assert groups[0].suggestions()[0][0] == "product_info"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the project's Rasa files to write into."""
    for name in ("data", "domain.yml", "config.yml"):
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy(src, tmp_path / name)
    return tmp_path


def test_plan_appends_to_the_intents_own_file_keeping_everything_else(project: Path) -> None:
    before = (project / "data/nlu/service.yml").read_text(encoding="utf-8")
    change = nludata.plan(project, "request_human", ["帮我 叫个 活人", "转人工", "[坏]的(订单)"])
    assert change.skipped == ["转人工"]  # already an example
    assert [c.path.name for c in change.changes] == ["service.yml"]
    assert "+    - 帮我 叫个 活人" in change.diff and "+    - ［坏］的(订单)" in change.diff
    assert [
        line
        for line in change.diff.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ] == []
    ok, _ = nludata.apply(change, check=False)
    after = (project / "data/nlu/service.yml").read_text(encoding="utf-8")
    assert ok and after.startswith(before.split("- 转人工")[0])
    assert len(after.splitlines()) == len(before.splitlines()) + 2
    examples = yaml.safe_load(after)["nlu"]
    human = next(e for e in examples if e["intent"] == "request_human")
    assert "- 帮我 叫个 活人" in human["examples"].splitlines()


def test_plan_new_intent_goes_to_topic_file_and_domain(project: Path) -> None:
    change = nludata.plan(project, "ask_gift_wrap", ["能包装成礼物吗", "可以礼物包装吗"], "gifts")
    assert change.new_intent
    nludata.apply(change, check=False)
    data = yaml.safe_load((project / "data/nlu/gifts.yml").read_text(encoding="utf-8"))
    assert data["nlu"][0]["intent"] == "ask_gift_wrap"
    assert "ask_gift_wrap" in nludata.domain_intents(project)
    domain_before = (PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8")
    domain_after = (project / "domain.yml").read_text(encoding="utf-8")
    assert len(domain_after.splitlines()) == len(domain_before.splitlines()) + 1


def test_plan_refuses_bad_names(project: Path) -> None:
    with pytest.raises(nludata.NluDataError, match="意图名"):
        nludata.plan(project, "Ask Gift", ["x"])
    with pytest.raises(nludata.NluDataError, match="主题"):
        nludata.plan(project, "ask_gift", ["能包装吗"], "../evil")


def test_accept_validates_writes_and_marks(store: InboxStore, project: Path) -> None:
    item = store.collect(message_id="m1", sender_id="s", text="给我找个活人聊聊", reason="fallback",
                         intent="nlu_fallback", confidence=0.3)  # fmt: skip
    assert item is not None
    result = service.accept([item], "request_human", "admin", store=store, root=project)
    assert result.written, result.validation
    assert "- 给我找个活人聊聊" in (project / "data/nlu/service.yml").read_text(encoding="utf-8")
    assert store.get(item).status == "accepted"  # type: ignore[union-attr]
    with pytest.raises(service.InboxError, match="已处理"):
        service.accept([item], "request_human", "admin", store=store, root=project)


def test_accept_that_fails_validation_writes_nothing(store: InboxStore, project: Path) -> None:
    item = store.collect(message_id="m1", sender_id="s", text="随便说说", reason="fallback")
    assert item is not None
    domain_before = (project / "domain.yml").read_text(encoding="utf-8")
    (project / "config.yml").write_text("pipeline: [\n", encoding="utf-8")  # Rasa refuses it
    with pytest.raises(service.InboxError):
        service.accept([item], "ask_gift_wrap", "admin", store=store, root=project)
    assert not (project / "data/nlu/learned.yml").exists()
    assert (project / "domain.yml").read_text(encoding="utf-8") == domain_before
    assert store.get(item).status == "open"  # type: ignore[union-attr]


def test_cli_list_json_and_accept(
    store: InboxStore,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from xiaoer import cli
    from xiaoer.core.config import get_settings

    shutil.copy(PROJECT_ROOT / "xiaoer.yml", project / "xiaoer.yml")
    monkeypatch.setenv("XIAOER_CONFIG", str(project / "xiaoer.yml"))
    get_settings.cache_clear()
    monkeypatch.setattr("xiaoer.learning.inbox.get_inbox_store", lambda: store)
    try:
        item = store.collect(message_id="m1", sender_id="rest:a", text="电话13812345678的那个人是谁",
                             reason="fallback", intent="nlu_fallback", confidence=0.2)  # fmt: skip
        assert cli.main(["inbox", "list", "--json"]) == 0
        groups = json.loads(capsys.readouterr().out)["groups"]
        assert groups[0]["items"][0]["id"] == item
        assert "13812345678" not in groups[0]["items"][0]["text"]  # masked
        monkeypatch.setattr("sys.stdin.isatty", lambda: False)
        assert cli.main(["inbox", "accept", str(item), "request_human"]) == 1
        out = capsys.readouterr().out
        # the customer's number never reaches the training data
        assert "+    - 电话13800000000的那个人是谁" in out and "--yes" in out
        assert "13812345678" not in out
        assert store.get(item).status == "open"  # type: ignore[union-attr]
        assert (
            cli.main(["inbox", "accept", str(item), "request_human", "--yes", "--no-retrain"]) == 0
        )
        assert "已写入训练数据" in capsys.readouterr().out
        written = (project / "data/nlu/service.yml").read_text(encoding="utf-8")
        assert "电话13800000000的那个人是谁" in written and "13812345678" not in written
        assert cli.main(["inbox", "ignore", str(item)]) == 1
        assert "已处理" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_examples_never_carry_a_customers_contact() -> None:
    assert nludata.clean_example("加我微信 abc_12345 或者打 138 1234 5678") == (
        "加我微信 wxid_example 或者打 13800000000"
    )
    # an order number is no contact: it stays
    assert nludata.clean_example("订单6938271045123400002到哪了") == "订单6938271045123400002到哪了"


def test_retrain_is_requested_through_the_training_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    calls: list[tuple[str, str]] = []
    fake = types.ModuleType("xiaoer.training")

    def request_retrain(requested_by: str, reason: str) -> int:
        calls.append((requested_by, reason))
        return 7

    fake.request_retrain = request_retrain  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xiaoer.training", fake)
    assert service.request_retrain("admin", "待学习") == (
        7,
        "已提交重新训练（任务 7），完成后自动上线",
    )
    assert calls == [("admin", "待学习")]

    def broken(requested_by: str, reason: str) -> int:
        raise RuntimeError("queue full")

    fake.request_retrain = broken  # type: ignore[attr-defined]
    run_id, message = service.request_retrain("admin", "待学习")
    assert run_id is None and "queue full" in message and "已写入训练数据" in message


# --- assigning messages to the knowledge base -------------------------------------------------
def test_assign_to_an_existing_and_a_new_knowledge_base_entry(store: InboxStore) -> None:
    from xiaoer.knowledge.store import Entry, KnowledgeStore
    from xiaoer.training import get_run

    kb = KnowledgeStore(store.db)
    receipt = kb.save(Entry(question="可以开纸质收据吗", answer="可以，随包裹寄出～"), by="boss")
    a = store.collect(message_id="k1", sender_id="rest:a", text="纸质收据能不能给一张",
                      reason="fallback", intent="nlu_fallback", confidence=0.3)  # fmt: skip
    b = store.collect(message_id="k2", sender_id="rest:b", text="收据寄给我 电话13812345678",
                      reason="low_confidence", intent="ask_invoice", confidence=0.5)  # fmt: skip
    assert a is not None and b is not None
    done = service.assign_to_kb([a, b], "boss", entry_id=receipt.id, store=store, kb=kb)
    entry = kb.get(receipt.id)  # type: ignore[arg-type]
    assert entry is not None and not done.created
    # the messages are the entry's phrasings now; no customer's number goes in
    assert entry.phrasings == ["纸质收据能不能给一张", "收据寄给我 电话13800000000"]
    assert entry.answer == "可以，随包裹寄出～" and entry.updated_by == "boss"
    assert store.get(a).status == "accepted"  # type: ignore[union-attr]
    assert store.get(b).resolution == f"kb:{receipt.id}"  # type: ignore[union-attr]
    # a retrain is requested through the training package (queued in the project database)
    assert done.run_id is not None and get_run(done.run_id)["state"] == "queued"  # type: ignore[index]
    assert f"kb{receipt.id}" in done.retrain_message and "重新训练" in done.retrain_message

    # a new entry: its question is the first message, the others its phrasings
    c = store.collect(message_id="k3", sender_id="rest:c", text="你们店有没有会员积分",
                      reason="fallback", intent="nlu_fallback", confidence=0.2)  # fmt: skip
    d = store.collect(message_id="k4", sender_id="rest:d", text="积分怎么攒",
                      reason="fallback", intent="nlu_fallback", confidence=0.2)  # fmt: skip
    assert c is not None and d is not None
    with pytest.raises(service.InboxError, match="答案"):
        service.assign_to_kb([c, d], "boss", store=store, kb=kb, retrain=False)
    new = service.assign_to_kb([c, d], "boss", answer="暂时没有会员积分哦～", category="店铺",
                               store=store, kb=kb, retrain=False)  # fmt: skip
    created = kb.get(new.entry_id)
    assert new.created and created is not None
    assert (created.question, created.phrasings) == ("你们店有没有会员积分", ["积分怎么攒"])
    assert created.answer == "暂时没有会员积分哦～" and created.category == "店铺"
    assert new.run_id is None and store.get(d).resolution == f"kb:{new.entry_id}"  # type: ignore[union-attr]


def test_assign_to_knowledge_base_refusals_change_nothing(store: InboxStore) -> None:
    from xiaoer.knowledge.store import Entry, KnowledgeStore

    kb = KnowledgeStore(store.db)
    first = kb.save(Entry(question="支持分期付款吗", answer="支持月付～"), by="boss")
    other = kb.save(Entry(question="有线下门店吗", answer="没有哦～"), by="boss")
    item = store.collect(message_id="r1", sender_id="rest:r", text="有线下门店吗",
                         reason="fallback", intent="nlu_fallback", confidence=0.2)  # fmt: skip
    assert item is not None
    with pytest.raises(service.InboxError, match="没有编号"):
        service.assign_to_kb([item], "boss", entry_id=9999, store=store, kb=kb)
    # another entry's question as this entry's phrasing: the store's collision check
    with pytest.raises(service.InboxError):
        service.assign_to_kb([item], "boss", entry_id=first.id, store=store, kb=kb, retrain=False)
    assert kb.get(first.id).phrasings == []  # type: ignore[arg-type,union-attr]
    assert store.get(item).status == "open"  # type: ignore[union-attr]
    # assigned to the entry that already has it: nothing to add, no retrain, item handled
    done = service.assign_to_kb([item], "boss", entry_id=other.id, store=store, kb=kb)
    assert done.added == [] and done.run_id is None and "无需修改" in done.retrain_message
    assert store.get(item).status == "accepted"  # type: ignore[union-attr]
    with pytest.raises(service.InboxError, match="已处理"):
        service.assign_to_kb([item], "boss", entry_id=other.id, store=store, kb=kb)


def test_cli_assigns_to_the_knowledge_base(
    store: InboxStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from xiaoer import cli
    from xiaoer.knowledge.store import KnowledgeStore

    monkeypatch.setattr("xiaoer.learning.inbox.get_inbox_store", lambda: store)
    monkeypatch.setattr("xiaoer.learning.service.get_inbox_store", lambda: store)
    item = store.collect(message_id="c1", sender_id="rest:c", text="能不能刻字定制",
                         reason="fallback", intent="nlu_fallback", confidence=0.2)  # fmt: skip
    assert item is not None
    assert cli.main(["inbox", "kb", str(item), "--answer", "暂不支持刻字定制哦～",
                     "--no-retrain"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    entry = next(e for e in KnowledgeStore(store.db).all() if e.question == "能不能刻字定制")
    assert f"已新建知识库条目 kb{entry.id}" in out and entry.answer == "暂不支持刻字定制哦～"
    assert cli.main(["inbox", "kb", str(item), "--entry", str(entry.id)]) == 1
    assert "已处理" in capsys.readouterr().out


def test_collecting_does_not_hold_the_database_while_loading_the_segmenter(
    store: InboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first message the worker collects loads pkuseg (tens of seconds on a busy
    machine). On SQLite a transaction holds the write lock from its start, so that load
    must happen before it: another process writing meanwhile (a Rasa worker recording a
    handoff, lead capture) must not wait."""
    import sqlite3

    from xiaoer.learning import inbox

    if store.db.sqlite_path is None:
        pytest.skip("PostgreSQL locks rows, not the database")
    other_writer: list[str] = []

    def slow_segmenter(message: str) -> list[str]:
        # what another writer sees while the segmenter loads: the lock, at once
        conn = sqlite3.connect(str(store.db.sqlite_path), timeout=0.1, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            other_writer.append("got the lock")
        except sqlite3.OperationalError as exc:
            other_writer.append(str(exc))
        finally:
            conn.close()
        return list(message)

    monkeypatch.setattr(inbox, "_tokenize_fn", slow_segmenter)
    item = store.collect(message_id="m-lock", sender_id="s1", text="这个咋整", reason="fallback")
    assert item is not None
    assert other_writer == ["got the lock"]
