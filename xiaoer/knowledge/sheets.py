"""Reading and writing the knowledge base's spreadsheets (.xlsx with openpyxl, .csv).

Columns (the template, :func:`template`): ``问题``, ``相似问法`` (one per line, or separated by
``｜`` / ``|``), ``答案``; optional ``商品`` (product id or name), ``分类``, ``图片`` (an image
URL), ``按钮`` (one per line, ``标题`` or ``标题=内容``), ``启用`` (是/否). A few common
alternative headings of other tools' templates are understood (标准问题, 相似问题, 回答…).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

COLUMNS = ["问题", "相似问法", "答案", "商品", "分类", "图片", "按钮", "启用"]
REQUIRED = ["问题", "相似问法", "答案"]
ALIASES = {
    "标准问题": "问题",
    "标准问": "问题",
    "问题": "问题",
    "相似问法": "相似问法",
    "相似问题": "相似问法",
    "相似问": "相似问法",
    "扩展问法": "相似问法",
    "答案": "答案",
    "回答": "答案",
    "回复": "答案",
    "商品": "商品",
    "商品id": "商品",
    "适用商品": "商品",
    "分类": "分类",
    "类别": "分类",
    "图片": "图片",
    "图片链接": "图片",
    "按钮": "按钮",
    "启用": "启用",
    "状态": "启用",
}
TEMPLATE_ROWS = [
    {
        "问题": "可以货到付款吗",
        "相似问法": "支持货到付款吗\n能不能到付\n收到货再付钱可以吗",
        "答案": "亲，本店暂不支持货到付款，下单时可以用抖音支付、微信或支付宝付款哦～",
        "商品": "",
        "分类": "支付",
        "图片": "",
        "按钮": "",
        "启用": "是",
    },
    {
        "问题": "T恤可以机洗吗",
        "相似问法": "短袖能用洗衣机洗吗｜T恤怎么洗",
        "答案": "可以机洗的亲，建议冷水、反面洗，不要暴晒哦～",
        "商品": "P1001",
        "分类": "商品使用",
        "图片": "",
        "按钮": "",
        "启用": "是",
    },
]


class SheetError(ValueError):
    """The file cannot be read as a knowledge-base table (Chinese message for merchants)."""


@dataclass
class Table:
    rows: list[dict[str, str]]  # canonical column -> cell text
    columns: list[str]  # canonical columns present
    first_row: int = 2  # the spreadsheet row number of rows[0] (1 is the header)


def _header(cells: Iterable[object]) -> list[str]:
    out = []
    for cell in cells:
        name = (
            str(cell or "").strip().replace(" ", "").replace("（可选）", "").replace("(可选)", "")
        )
        out.append(ALIASES.get(name.lower(), ALIASES.get(name, name)))
    return out


def _table(raw: list[list[object]]) -> Table:
    while raw and not any(str(c or "").strip() for c in raw[0]):
        raw = raw[1:]  # blank lines above the header
    if not raw:
        raise SheetError("表格是空的：第一行应是列名（问题、相似问法、答案）")
    header = _header(raw[0])
    if not set(header) & set(COLUMNS):
        raise SheetError(
            "文件不是知识库表格：第一行应是列名 问题、相似问法、答案"
            "（可选：商品、分类、图片、按钮、启用），请下载模板对照。"
        )
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SheetError(
            f"缺少列：{'、'.join(missing)}。第一行应是列名：问题、相似问法、答案"
            "（可选：商品、分类、图片、按钮、启用），请下载模板对照。"
        )
    rows = []
    for cells in raw[1:]:
        row = {}
        for name, value in zip(header, cells, strict=False):
            if name in COLUMNS:
                row[name] = "" if value is None else str(value).strip()
        rows.append(row)
    return Table(rows=rows, columns=[c for c in COLUMNS if c in header])


def read_table(data: bytes, filename: str = "") -> Table:
    """The rows of an .xlsx or .csv file (SheetError when it is neither, or lacks a
    required column)."""
    name = filename.lower()
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" or name.endswith(".xls"):
        raise SheetError("不支持旧版 .xls 文件：请在 Excel 中“另存为” .xlsx 或 .csv 后再导入")
    if name.endswith((".xlsx", ".xlsm")):
        raise SheetError("文件不是有效的 .xlsx 表格（可能已损坏），请重新保存后导入")
    return _read_csv(data)


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetError("文件不是有效的 .xlsx 表格（可能已损坏），请重新保存后导入") from exc
    try:
        sheet = book.worksheets[0]
        raw = [list(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    return _table(raw)


def _read_csv(data: bytes) -> Table:
    if b"\x00" in data[:4096]:
        raise SheetError("文件不是表格：请上传 .xlsx 或 .csv 文件（可下载模板）")
    text = None
    for encoding in ("utf-8-sig", "gb18030"):  # Excel saves Chinese CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        raise SheetError("文件不是表格：无法识别文字编码，请另存为 UTF-8 的 .csv 或 .xlsx")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        raw: list[list[object]] = [
            list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)
        ]
    except csv.Error as exc:
        raise SheetError(f"文件不是有效的表格：{exc}") from exc
    return _table(raw)


def write_xlsx(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    columns = columns or COLUMNS
    book = Workbook()
    sheet = book.active
    sheet.title = "知识库"
    sheet.append(columns)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([row.get(c, "") for c in columns])
    widths = {
        "问题": 28,
        "相似问法": 36,
        "答案": 50,
        "商品": 10,
        "分类": 12,
        "图片": 24,
        "按钮": 20,
    }
    for i, name in enumerate(columns):
        sheet.column_dimensions[chr(ord("A") + i)].width = widths.get(name, 8)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    columns = columns or COLUMNS
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")  # with BOM: Excel opens it as UTF-8


def write_table(rows: list[dict[str, str]], filename: str) -> bytes:
    if filename.lower().endswith(".csv"):
        return write_csv(rows)
    return write_xlsx(rows)


def template(kind: str = "xlsx") -> bytes:
    """The downloadable template with two example rows."""
    return write_csv(TEMPLATE_ROWS) if kind == "csv" else write_xlsx(TEMPLATE_ROWS)
