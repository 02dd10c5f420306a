"""What a designer does with the inbox: preview, accept, dismiss. Used by the console
(xiaoer/console/learning_views.py) and the ``xiaoer inbox`` command alike.

Accepting writes the examples (:mod:`xiaoer.learning.nludata`), validates the data, marks
the items accepted and asks for a retrain with the hot swap
(``xiaoer.training.request_retrain``, the same machinery as the knowledge base's). Where
that package is not installed the examples are written and the result says that a
retrain (``xiaoer train`` and a restart) is needed.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoer.learning.inbox import InboxItem, InboxStore, get_inbox_store
from xiaoer.learning.nludata import NluDataError, Plan, apply, clean_example, plan

log = logging.getLogger(__name__)

# one accept at a time per process: two designers must not interleave file writes
_write_lock = threading.Lock()


class InboxError(ValueError):
    """A request the inbox refuses (unknown or already handled items, bad intent…)."""


@dataclass
class AcceptResult:
    plan: Plan
    written: bool
    validation: str
    run_id: int | None
    retrain_message: str


def project_root() -> Path:
    """The folder whose data/ the retrain trains (xiaoer.training.trainer.project_dir)."""
    from xiaoer.training.trainer import project_dir

    return project_dir()


def _open_items(store: InboxStore, item_ids: list[int]) -> list[InboxItem]:
    items = []
    for item_id in item_ids:
        item = store.get(item_id)
        if item is None:
            raise InboxError(f"没有编号为 {item_id} 的待学习消息")
        if item.status != "open":
            raise InboxError(f"消息 {item_id} 已处理过（{item.status}）")
        items.append(item)
    if not items:
        raise InboxError("请至少选择一条消息")
    return items


def preview(
    item_ids: list[int],
    intent: str,
    topic: str | None = None,
    *,
    store: InboxStore | None = None,
    root: Path | None = None,
) -> Plan:
    """The change accepting these items would make (nothing written)."""
    store = store or get_inbox_store()
    items = _open_items(store, item_ids)
    try:
        return plan(root or project_root(), intent, [i.text for i in items], topic)
    except NluDataError as exc:
        raise InboxError(str(exc)) from exc


def request_retrain(by: str, reason: str) -> tuple[int | None, str]:
    """Queue a retrain with the hot swap, when the training package is there."""
    try:
        training = importlib.import_module("xiaoer.training")
    except ModuleNotFoundError:
        return None, "已写入训练数据；需要重新训练模型（xiaoer train）并重启后生效"
    try:
        run_id = int(training.request_retrain(requested_by=by, reason=reason))
    except Exception as exc:  # noqa: BLE001 - the examples are written: say so, and why not live
        log.exception("inbox: retrain request failed")
        return None, f"已写入训练数据，但提交重新训练失败（{exc}）：请稍后重试或运行 xiaoer train"
    return run_id, f"已提交重新训练（任务 {run_id}），完成后自动上线"


def accept(
    item_ids: list[int],
    intent: str,
    by: str,
    topic: str | None = None,
    *,
    store: InboxStore | None = None,
    root: Path | None = None,
    check: bool = True,
    retrain: bool = True,
) -> AcceptResult:
    """Write the items' texts as examples of ``intent``, validate, mark them accepted,
    request the retrain. A failed validation writes nothing and leaves the items open."""
    store = store or get_inbox_store()
    with _write_lock:
        change = preview(item_ids, intent, topic, store=store, root=root)
        written, output = False, ""
        if not change.empty:
            try:
                written, output = apply(change, check=check)
            except NluDataError as exc:
                raise InboxError(str(exc)) from exc
            if not written:
                raise InboxError("训练数据校验未通过，已撤销修改：\n" + output[-1500:])
        store.resolve(item_ids, "accepted", intent, by)
    run_id, message = None, "这些例句已在训练数据中，无需修改"
    if written and retrain:
        run_id, message = request_retrain(by, f"待学习：{len(change.examples)} 条例句 → {intent}")
    elif written:
        message = "已写入训练数据"
    log.info("inbox: %s accepted %s as %s (%s)", by, item_ids, intent, message)
    return AcceptResult(change, written, output, run_id, message)


@dataclass
class KbAssignResult:
    entry_id: int
    question: str
    created: bool
    added: list[str]  # the phrasings added to the entry
    run_id: int | None
    retrain_message: str


def assign_to_kb(
    item_ids: list[int],
    by: str,
    *,
    entry_id: int | None = None,
    question: str = "",
    answer: str = "",
    category: str = "",
    store: InboxStore | None = None,
    kb: Any = None,
    retrain: bool = True,
) -> KbAssignResult:
    """Assign inbox messages to a knowledge-base entry: an existing one (``entry_id``: the
    messages become its phrasings) or a new one (``answer`` given; its question is
    ``question`` or the first message, the other messages its phrasings). Saved through the
    knowledge base's store (its checks: a phrasing another entry or an intent already has
    is refused, nothing saved), the messages marked accepted (resolution ``kb:<id>``), a
    retrain requested. Customers' contacts never go into an entry."""
    from xiaoer.knowledge.store import Entry, KnowledgeError, get_knowledge_store, match_key

    store = store or get_inbox_store()
    kb = kb or get_knowledge_store()
    with _write_lock:
        items = _open_items(store, item_ids)
        texts = [clean_example(i.text) for i in items]
        if entry_id is not None:
            entry = kb.get(entry_id)
            if entry is None:
                raise InboxError(f"知识库中没有编号为 {entry_id} 的条目")
            created = False
        else:
            if not answer.strip():
                raise InboxError("新建知识库条目需要填写答案")
            first = question.strip() or texts[0]
            entry = Entry(question=first, answer=answer.strip(), category=category.strip())
            created = True
        known = {match_key(t) for t in entry.examples()}
        added = []
        for text in texts:
            key = match_key(text)
            if key and key not in known:
                known.add(key)
                added.append(text)
        entry.phrasings = [*entry.phrasings, *added]
        changed = created or bool(added)
        if changed:
            try:
                entry = kb.save(entry, by=by)
            except KnowledgeError as exc:
                raise InboxError(str(exc)) from exc
        assert entry.id is not None
        store.resolve(item_ids, "accepted", f"kb:{entry.id}", by)
    run_id, message = None, "这些问法已在该知识库条目中，无需修改"
    if changed and retrain:
        what = "新建" if created else "补充"
        run_id, message = request_retrain(by, f"待学习：{what}知识库条目 kb{entry.id}")
        message = f"已{what}知识库条目 kb{entry.id}（原句即刻可答）；{message}"
    elif changed:
        message = f"已{'新建' if created else '补充'}知识库条目 kb{entry.id}"
    log.info("inbox: %s assigned %s to kb%s", by, item_ids, entry.id)
    return KbAssignResult(entry.id, entry.question, created, added, run_id, message)


def dismiss(item_ids: list[int], status: str, by: str, *, store: InboxStore | None = None) -> int:
    """Mark items out of scope or ignored."""
    if status not in ("out_of_scope", "ignored"):
        raise InboxError("只能标记为超出范围或忽略")
    store = store or get_inbox_store()
    _open_items(store, item_ids)
    return store.resolve(item_ids, status, "", by)
