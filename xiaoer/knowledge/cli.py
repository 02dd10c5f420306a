"""``xiaoer kb``: the knowledge base from the command line (import, export, list, train)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

# the store and the importer are imported by the commands that use them, not by
# ``add_parser``: other ``xiaoer`` commands do not load the knowledge base's tables


def add_parser(sub: Any, func: Any) -> None:
    p = sub.add_parser(
        "kb", help="the knowledge base: import, export, list, train (docs/knowledge.md)"
    )
    kb = p.add_subparsers(dest="kb_command", required=True)
    q = kb.add_parser("import", help="import an .xlsx or .csv file (columns 问题, 相似问法, 答案…)")
    q.add_argument("file")
    q.add_argument("--train", action="store_true",
                   help="retrain and wait until the running assistant answers with the new model")  # fmt: skip
    q.add_argument("--strict", action="store_true", help="write nothing if any row is rejected")
    q.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    q.add_argument("--timeout", type=float, default=1800, help="seconds to wait with --train")
    q = kb.add_parser("export", help="export every entry to an .xlsx or .csv file")
    q.add_argument("file")
    q = kb.add_parser("template", help="write the import template (.xlsx or .csv)")
    q.add_argument("file")
    q = kb.add_parser("list", help="list the entries")
    q.add_argument("--search", default="")
    q.add_argument("--category", default="")
    q = kb.add_parser("train", help="retrain and wait until the running assistant answers with it")
    q.add_argument("--timeout", type=float, default=1800)
    kb.add_parser("runs", help="the latest retraining runs")
    p.set_defaults(func=func)


def run(args: argparse.Namespace) -> int:
    from xiaoer.knowledge.importing import export_bytes
    from xiaoer.knowledge.sheets import template
    from xiaoer.knowledge.store import get_knowledge_store

    command = args.kb_command
    if command == "import":
        return _import(args)
    if command == "export":
        path = Path(args.file)
        path.write_bytes(export_bytes(get_knowledge_store(), path.name))
        print(f"已导出 {len(get_knowledge_store().all())} 条到 {path}")
        return 0
    if command == "template":
        path = Path(args.file)
        path.write_bytes(template("csv" if path.suffix.lower() == ".csv" else "xlsx"))
        print(f"已生成导入模板：{path}")
        return 0
    if command == "list":
        entries = get_knowledge_store().search(args.search, args.category)
        print(f"知识库（{len(entries)} 条）")
        for e in entries:
            state = "" if e.enabled else " [已停用]"
            scope = f" [{e.product}]" if e.product else ""
            category = f"〔{e.category}〕" if e.category else ""
            print(
                f"  {e.key}{state}{scope} {category}{e.question}（相似问法 {len(e.phrasings)} 条）"
            )
            print(f"      答：{e.answer[:60]}")
        return 0
    if command == "train":
        return _train("xiaoer kb train", "命令行重新训练", args.timeout)
    if command == "runs":
        from xiaoer.training import latest_runs

        for r in latest_runs(10):
            took = f" {r['seconds']:.0f} 秒" if r["done"] else ""
            print(f"  #{r['id']} {r['state_label']}{took} {r['progress']} {r['error'][:100]}")
        return 0
    return 2


def _import(args: argparse.Namespace) -> int:
    from xiaoer.knowledge.importing import REJECTED, STATUS_LABELS, import_bytes, shop_products
    from xiaoer.knowledge.sheets import SheetError
    from xiaoer.knowledge.store import get_knowledge_store

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: 无法读取文件 {path}：{exc.strerror}")
        return 2
    products = asyncio.run(shop_products())
    from xiaoer.knowledge.modelcheck import running_classifier

    try:
        report = import_bytes(
            data, path.name, get_knowledge_store(), products,
            by="cli", strict=args.strict, dry_run=args.dry_run, classify=running_classifier(),
        )  # fmt: skip
    except SheetError as exc:
        print(f"error: {exc}（没有导入任何条目）")
        return 1
    for row in report.rows:
        if row.status == REJECTED:
            print(
                f"  第 {row.row} 行 {STATUS_LABELS[row.status]}：{row.question or '（无问题）'} — {row.reason}"
            )
    print(("预览（未写入）：" if args.dry_run else "导入完成：") + report.summary())
    if report.note():
        print(f"  注意：{report.note()}")
    code = 1 if report.count(REJECTED) else 0
    if args.train and not args.dry_run:
        if not report.written:
            print("未写入，不重新训练")
            return 1
        trained = _train("cli", f"导入 {path.name}", args.timeout)
        code = code or trained
    elif report.changed:
        print("几秒内新问题的原句即可直接回答；运行 xiaoer kb train 让机器人学会相似的说法。")
    return code


def _train(by: str, reason: str, timeout: float) -> int:
    from xiaoer.training import get_run, request_retrain

    run_id = request_retrain(by, reason)
    print(f"已加入训练队列（#{run_id}），后台任务（xiaoer worker）完成训练并切换模型后返回…")
    deadline = time.monotonic() + timeout
    shown = ""
    queued_since = time.monotonic()
    while True:
        run = get_run(run_id)
        if run is None:
            print("error: 训练记录不见了")
            return 1
        line = f"  [{run['state_label']}] {run['progress']}"
        if line != shown:
            print(line, flush=True)
            shown = line
        if run["done"]:
            break
        if run["state"] == "queued" and time.monotonic() - queued_since > 30:
            print("  仍在排队：请确认后台任务在运行（xiaoer up 或 xiaoer worker）", file=sys.stderr)
            queued_since = time.monotonic()
        if time.monotonic() > deadline:
            print(f"error: 等待超时（{timeout:.0f} 秒），训练仍在进行：xiaoer kb runs 查看进度")
            return 1
        time.sleep(1)
    if run["state"] == "live":
        print(
            f"新模型已上线（训练 {run['train_seconds'] or 0:.0f} 秒，共 {run['seconds']:.0f} 秒）：{Path(run['model']).name}"
        )
        return 0
    print(f"error: {run['state_label']}：{run['error']}")
    return 1
