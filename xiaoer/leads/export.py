"""Lead exports (CSV, XLSX) with contact masking, each export written to the audit log.

Who sees full contacts: roles listed in ``leads.full_contacts_roles`` (default: admin).
Everyone else gets masked phones (138****5678) and WeChat ids, also inside the source
message text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from xiaoer.core.config import get_settings
from xiaoer.leads.rules import CATEGORY_LABELS, SCORE_LABELS, STATUS_LABELS
from xiaoer.leads.store import Lead, LeadStore, mask_contact
from xiaoer.text.contacts import find_contacts

COLUMNS = [
    "线索编号", "客户昵称", "手机号", "微信", "分类", "评分", "分值", "状态", "负责客服",
    "来源会话", "来源消息", "创建时间", "最近活动",
]  # fmt: skip


def full_contacts_roles() -> list[str]:
    return list(get_settings().section("leads").get("full_contacts_roles") or ["admin"])


def can_see_contacts(role: str | None) -> bool:
    return bool(role) and role in full_contacts_roles()


def mask_text(text: str) -> str:
    """The text with every phone and WeChat id in it masked (the contact finder, then the
    plain mobile-number pattern of the log filter as a safety net)."""
    from xiaoer.core.logsafe import mask_pii

    out, last = [], 0
    for c in find_contacts(text):
        if c.start < last:
            continue
        out.append(text[last : c.start])
        out.append(mask_contact(c.kind, c.value))
        last = c.end
    out.append(text[last:])
    return mask_pii("".join(out))


def contacts_view(lead: Lead, full: bool) -> dict[str, str]:
    def pick(kind: str) -> str:
        return "、".join(
            c["value"] if full else c["masked"] for c in lead.contacts if c["kind"] == kind
        )

    return {"phones": pick("phone"), "wechats": pick("wechat")}


def rows(
    leads: Sequence[Lead], full: bool, agent_names: dict[int, str] | None = None
) -> list[list[Any]]:
    names = agent_names or {}
    out: list[list[Any]] = []
    for lead in leads:
        view = contacts_view(lead, full)
        assignee = (
            "" if lead.assignee_id is None else names.get(lead.assignee_id, f"#{lead.assignee_id}")
        )
        out.append(
            [
                lead.id,
                lead.name,
                view["phones"],
                view["wechats"],
                CATEGORY_LABELS.get(lead.category, lead.category),
                SCORE_LABELS.get(lead.score, lead.score),
                lead.points,
                STATUS_LABELS.get(lead.status, lead.status),
                assignee,
                lead.source_sender_id,
                lead.source_message if full else mask_text(lead.source_message),
                lead.created_at,
                lead.last_activity_at,
            ]
        )
    return out


def _csv(table: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows([[_cell(v) for v in row] for row in table])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 correctly


def _xlsx(table: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "线索"
    ws.append(COLUMNS)
    for row in table:
        ws.append([_cell(v) for v in row])
    for col, width in zip(
        "ABCDEFGHIJKLM", (8, 14, 16, 16, 10, 6, 6, 8, 12, 24, 40, 22, 22), strict=True
    ):
        ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# C0 controls except TAB / LF / CR, DEL, C1 controls and lone surrogates: XML (XLSX) cannot
# hold them and they have no place in a spreadsheet cell
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# what a spreadsheet may read as the start of a formula (also after leading whitespace)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_LEADING_SPACE = " \t\r\n\u3000\xa0"


def _cell(value: Any) -> Any:
    """A value safe for a spreadsheet cell: control characters removed, formulas in
    customer text neutralised (CSV / formula injection) by a leading apostrophe."""
    if not isinstance(value, str):
        return value
    value = _CONTROL.sub("", value)
    if value.startswith(_FORMULA_START) or value.lstrip(_LEADING_SPACE).startswith(_FORMULA_START):
        return "'" + value
    return value


def export(
    store: LeadStore,
    leads: Sequence[Lead],
    *,
    fmt: str,
    actor: str,
    role: str | None,
    filters: dict[str, Any] | None = None,
    agent_names: dict[int, str] | None = None,
) -> bytes:
    """The file content; the export is recorded in the audit log before it is returned."""
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"unknown export format: {fmt}")
    full = can_see_contacts(role)
    table = rows(leads, full, agent_names)
    data = _csv(table) if fmt == "csv" else _xlsx(table)
    store.audit(
        actor,
        f"export_{fmt}",
        {
            "filters": {k: v for k, v in (filters or {}).items() if v not in (None, "")},
            "count": len(leads),
            "lead_ids": [lead.id for lead in leads][:1000],
            "full_contacts": full,
        },
    )
    return data
