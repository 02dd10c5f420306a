"""Importing and exporting the knowledge base as a spreadsheet.

An import is idempotent (the same file twice changes nothing) and reports each row:
added, updated, unchanged or rejected with the reason (empty answer, empty question, a
question twice in the file, a phrasing colliding with an existing intent's examples or
another entry's, a question the current model gives to a flow answering from shop data
(:mod:`xiaoer.knowledge.modelcheck`, when a model is available), an unknown product). Every accepted row is written in ONE transaction;
a file that is not a spreadsheet or lacks a column writes nothing. With ``strict`` a single
rejected row writes nothing either. Entries not in the file are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xiaoer.knowledge.collisions import Collision, CollisionIndex
from xiaoer.knowledge.modelcheck import Classify, check_entry, refusal
from xiaoer.knowledge.sheets import Table, read_table, write_table
from xiaoer.knowledge.store import Button, Entry, KnowledgeStore, match_key

ADDED, UPDATED, UNCHANGED, REJECTED = "added", "updated", "unchanged", "rejected"
STATUS_LABELS = {ADDED: "新增", UPDATED: "更新", UNCHANGED: "未变", REJECTED: "未导入"}
_SPLIT = re.compile(r"[\n\r｜|]+")
_NO = {"否", "停用", "关闭", "no", "n", "false", "0", "off"}


@dataclass
class RowResult:
    row: int  # spreadsheet row number (the header is row 1)
    status: str
    question: str
    reason: str = ""
    entry_id: int | None = None
    collisions: list[Collision] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "status": self.status,
            "status_label": STATUS_LABELS[self.status],
            "question": self.question,
            "reason": self.reason,
            "entry_id": self.entry_id,
            "collisions": [c.as_dict() for c in self.collisions],
        }


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    written: bool = False
    model_checked: bool = False  # the current model classified the new entries' texts

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def changed(self) -> bool:
        return self.written and (self.count(ADDED) + self.count(UPDATED)) > 0

    def summary(self) -> str:
        text = (
            f"新增 {self.count(ADDED)} 条，更新 {self.count(UPDATED)} 条，"
            f"未变 {self.count(UNCHANGED)} 条，未导入 {self.count(REJECTED)} 条"
        )
        if not self.written and (self.count(ADDED) + self.count(UPDATED)):
            text += "（有未导入的行，严格模式下未写入任何条目）"
        return text

    def note(self) -> str:
        """What the merchant should know besides the counts."""
        if self.model_checked:
            return ""
        return "机器人服务未连接：只检查了与已有例句相同的问法，未检查已有流程会回答的问题"

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "written": self.written,
            "model_checked": self.model_checked,
            "counts": {s: self.count(s) for s in (ADDED, UPDATED, UNCHANGED, REJECTED)},
            "rows": [r.as_dict() for r in self.rows],
        }


def split_phrasings(cell: str) -> list[str]:
    return [p.strip() for p in _SPLIT.split(cell or "") if p.strip()]


def parse_buttons(cell: str) -> list[Button]:
    buttons = []
    for line in re.split(r"[\n\r]+", cell or ""):
        line = line.strip()
        if not line:
            continue
        title, _, payload = line.partition("=")
        buttons.append(Button(title.strip(), (payload or title).strip()))
    return buttons


def format_buttons(buttons: list[Button]) -> str:
    return "\n".join(b.title if b.payload == b.title else f"{b.title}={b.payload}" for b in buttons)


def product_index(products: Any) -> dict[str, str]:
    """id and name (normalised) -> product id, from the shop's products."""
    out: dict[str, str] = {}
    for p in products:
        out[match_key(p.product_id)] = p.product_id
        out[match_key(p.name)] = p.product_id
        for synonym in getattr(p, "synonyms", ()) or ():
            out.setdefault(match_key(synonym), p.product_id)
    return out


async def shop_products() -> dict[str, str]:
    """The product index of the configured shop (empty when the shop cannot be reached:
    then only rows without a product can be imported)."""
    from xiaoer.shop.backend import BackendError
    from xiaoer.shop.factory import get_backend

    try:
        return product_index(await get_backend().list_products())
    except BackendError:
        return {}


def import_table(
    table: Table,
    store: KnowledgeStore,
    products: Mapping[str, str] | None = None,
    *,
    by: str = "",
    strict: bool = False,
    dry_run: bool = False,
    classify: Classify | None = None,
) -> ImportReport:
    """``classify``: the current model (:mod:`xiaoer.knowledge.modelcheck`); a new or changed
    entry with a text it gives to a shop-data flow with confidence is refused."""
    products = products or {}
    existing = store.all()
    by_ident = {(e.question_key, e.product): e for e in existing}
    index = CollisionIndex.build(existing)
    report = ImportReport(model_checked=classify is not None)
    to_write: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    for offset, row in enumerate(table.rows):
        number = table.first_row + offset
        question = row.get("问题", "").strip()
        answer = row.get("答案", "").strip()
        if not any(v.strip() for v in row.values()):
            continue  # a blank line
        result = RowResult(number, REJECTED, question)
        report.rows.append(result)
        if not question:
            result.reason = "问题为空"
            continue
        if not answer:
            result.reason = "答案为空"
            continue
        product = ""
        if row.get("商品", "").strip():
            product = products.get(match_key(row["商品"]), "")
            if not product:
                result.reason = f"未知商品「{row['商品']}」：请填写店铺里的商品编号或商品名称"
                continue
        entry = Entry(
            question=question,
            answer=answer,
            phrasings=[p for p in split_phrasings(row.get("相似问法", ""))],
            product=product,
            category=row.get("分类", "").strip(),
            image_url=row.get("图片", "").strip(),
            buttons=parse_buttons(row.get("按钮", "")),
            enabled=row.get("启用", "").strip().lower() not in _NO,
        )
        # the phrasings without repeats and without the question itself
        entry.phrasings = entry.examples()[1:]
        ident = (entry.question_key, product)
        if ident in seen:
            result.reason = f"问题重复：与第 {seen[ident]} 行的问题相同"
            continue
        if image := entry.image_url:
            if not image.startswith(("https://", "http://")):
                result.reason = "图片应是以 https:// 开头的链接"
                continue
        clashes = index.collisions(entry)
        if clashes:
            result.reason = "问法冲突：" + "；".join(c.message() for c in clashes)
            result.collisions = clashes
            continue
        current = by_ident.get(ident)
        unchanged = current is not None and current.content() == entry.content()
        if classify is not None and not unchanged:
            hits = check_entry(
                entry.question,
                entry.examples(),
                current.examples() if current is not None else None,
                classify,
            )
            if hits:
                result.reason = refusal(hits)
                result.collisions = [Collision(h.text, with_intent=h.intent, flow=h.label,
                                               confidence=h.confidence) for h in hits]  # fmt: skip
                continue
        seen[ident] = number
        if current is not None:
            entry.id = current.id
            entry.created_at = current.created_at
            if unchanged:
                result.status, result.entry_id = UNCHANGED, current.id
                index.replace(entry)
                continue
            result.status = UPDATED
        else:
            result.status = ADDED
        index.replace(entry)
        to_write.append(entry)
        result.entry_id = entry.id
    rejected = report.count(REJECTED)
    if dry_run or (strict and rejected):
        return report
    store.write_many(to_write, by=by)
    report.written = True
    for result, entry in zip(
        [r for r in report.rows if r.status in (ADDED, UPDATED)], to_write, strict=False
    ):
        result.entry_id = entry.id
    return report


def import_bytes(
    data: bytes,
    filename: str,
    store: KnowledgeStore,
    products: Mapping[str, str] | None = None,
    **options: Any,
) -> ImportReport:
    """Import a spreadsheet (SheetError when it is not one or lacks a column)."""
    return import_table(read_table(data, filename), store, products, **options)


def export_rows(store: KnowledgeStore) -> list[dict[str, str]]:
    rows = []
    for e in store.all():
        rows.append(
            {
                "问题": e.question,
                "相似问法": "\n".join(e.phrasings),
                "答案": e.answer,
                "商品": e.product,
                "分类": e.category,
                "图片": e.image_url,
                "按钮": format_buttons(e.buttons),
                "启用": "是" if e.enabled else "否",
            }
        )
    return rows


def export_bytes(store: KnowledgeStore, filename: str) -> bytes:
    return write_table(export_rows(store), filename)
