"""The knowledge base (知识库) in the console: list with search and category filter, add /
edit / switch off, import (with the per-row report and the collisions), export, the
template, and retraining with its progress.

Every logged-in agent may read the knowledge base (to answer like the bot does); changing
it, importing and retraining are for admins (the merchant). An edit is live at once (the
answer is read when the bot answers); new questions and phrasings are learnt by a retrain
(the worker's ``training.retrain`` job), until then their exact wording is matched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render, wants_json
from xiaoer.knowledge.importing import (
    REJECTED,
    STATUS_LABELS,
    export_bytes,
    format_buttons,
    import_bytes,
    parse_buttons,
    shop_products,
    split_phrasings,
)
from xiaoer.knowledge.sheets import SheetError, template
from xiaoer.knowledge.store import Entry, KnowledgeError, get_knowledge_store

logger = logging.getLogger(__name__)

bp = Blueprint("knowledge", url_prefix="/knowledge")
NAV_ITEMS.append(("/knowledge", "知识库", None))
MAX_UPLOAD = 900_000


def _training_state() -> dict[str, Any]:
    from xiaoer.training import latest_runs, retrain_needed

    runs = latest_runs(5)
    return {"runs": runs, "latest": runs[0] if runs else None, "needed": retrain_needed()}


async def _products() -> list[tuple[str, str]]:
    from xiaoer.shop.backend import BackendError
    from xiaoer.shop.factory import get_backend

    try:
        return [(p.product_id, p.name) for p in await get_backend().list_products()]
    except BackendError:
        return []


@bp.get("")
@login_required()
async def index(request: Request) -> HTTPResponse:
    store = get_knowledge_store()
    query = str(request.args.get("q") or "")[:100]
    category = str(request.args.get("category") or "")[:50]
    entries = store.search(query, category)
    if wants_json(request):
        return response.json({"entries": [e.as_dict() for e in entries]})
    return render(
        request,
        "knowledge.html",
        entries=entries,
        total=len(store.all()),
        categories=store.categories(),
        query=query,
        category=category,
        products=dict(await _products()),
        training=_training_state(),
        notice=_notice(request),
    )


def _notice(request: Request) -> str:
    return {
        "saved": "已保存，答案立即生效。新的问法在重新训练后识别更准（原句几秒内即可直接回答）。",
        "off": "已停用：机器人不再用这条回答。",
        "on": "已启用。",
        "train": "已开始重新训练，完成后自动切换到新模型，期间机器人照常回复。",
    }.get(str(request.args.get("done") or ""), "")


def _entry_page(
    request: Request,
    entry: Entry,
    products: list[tuple[str, str]],
    error: str = "",
    status: int = 200,
) -> HTTPResponse:
    return render(
        request,
        "knowledge_edit.html",
        status=status,
        entry=entry,
        phrasings="\n".join(entry.phrasings),
        buttons=format_buttons(entry.buttons),
        products=products,
        categories=get_knowledge_store().categories(),
        error=error,
    )


@bp.get("/new")
@login_required(role="admin")
async def new_entry(request: Request) -> HTTPResponse:
    return _entry_page(request, Entry(question="", answer=""), await _products())


@bp.get("/<entry_id:int>")
@login_required()
async def show_entry(request: Request, entry_id: int) -> HTTPResponse:
    entry = get_knowledge_store().get(entry_id)
    if entry is None:
        return render(
            request, "error.html", status=404, title="没有这个条目", message="条目不存在或已删除"
        )
    if wants_json(request):
        return response.json(entry.as_dict())
    if not current_agent(request).is_admin:
        return render(request, "knowledge_view.html", entry=entry)
    return _entry_page(request, entry, await _products())


def _from_form(form: Any, entry_id: int | None) -> Entry:
    return Entry(
        id=entry_id,
        question=str(form.get("question") or "").strip()[:200],
        phrasings=split_phrasings(str(form.get("phrasings") or ""))[:100],
        answer=str(form.get("answer") or "").strip()[:2000],
        image_url=str(form.get("image_url") or "").strip()[:500],
        buttons=parse_buttons(str(form.get("buttons") or ""))[:6],
        product=str(form.get("product") or "").strip()[:40],
        category=str(form.get("category") or "").strip()[:40],
        enabled=form.get("enabled") == "1",
    )


async def _model_check(entry: Entry) -> str:
    """The import's model check for one entry: its new texts that the running assistant
    gives to a shop-data flow (empty: none, or no assistant running to ask)."""
    from xiaoer.knowledge.modelcheck import check_entry, refusal, running_classifier

    saved = get_knowledge_store().get(entry.id) if entry.id else None

    def run() -> str:
        classify = running_classifier()
        if classify is None:
            logger.warning("knowledge entry checked without the model: no assistant answers")
        before = saved.examples() if saved is not None else None
        hits = check_entry(entry.question, entry.examples(), before, classify)
        return refusal(hits) if hits else ""

    try:
        return await asyncio.get_running_loop().run_in_executor(None, run)
    except Exception:  # noqa: BLE001 - the assistant being down must not block a save
        logger.warning("knowledge entry saved without the model check", exc_info=True)
        return ""


async def _save(request: Request, entry_id: int | None) -> HTTPResponse:
    form = request.form or {}
    entry = _from_form(form, entry_id)
    entry.phrasings = entry.examples()[1:] if entry.question else entry.phrasings
    products = await _products()
    error = ""
    if entry.product and entry.product not in dict(products):
        error = "请选择店铺里的商品"
    elif entry.image_url and not entry.image_url.startswith(("https://", "http://")):
        error = "图片应是以 https:// 开头的链接"
    store = get_knowledge_store()
    if not error:
        try:
            store.check(entry)  # empty fields, phrasings equal to an intent's or entry's
        except KnowledgeError as exc:
            error = str(exc)
    if not error and entry.enabled:
        error = await _model_check(entry)  # what the running assistant already answers
    if not error:
        try:
            store.save(entry, by=current_agent(request).username)
        except KnowledgeError as exc:
            error = str(exc)
    if error:
        return _entry_page(request, entry, products, error=error, status=400)
    return response.redirect("/knowledge?done=saved")


@bp.post("")
@login_required(role="admin")
async def create_entry(request: Request) -> HTTPResponse:
    return await _save(request, None)


@bp.post("/<entry_id:int>")
@login_required(role="admin")
async def update_entry(request: Request, entry_id: int) -> HTTPResponse:
    if get_knowledge_store().get(entry_id) is None:
        return render(
            request, "error.html", status=404, title="没有这个条目", message="条目不存在或已删除"
        )
    return await _save(request, entry_id)


@bp.post("/<entry_id:int>/switch")
@login_required(role="admin")
async def switch_entry(request: Request, entry_id: int) -> HTTPResponse:
    on = (request.form or {}).get("enabled") == "1"
    if not get_knowledge_store().set_enabled(entry_id, on, by=current_agent(request).username):
        return render(
            request, "error.html", status=404, title="没有这个条目", message="条目不存在或已删除"
        )
    return response.redirect(f"/knowledge?done={'on' if on else 'off'}")


@bp.get("/import")
@login_required(role="admin")
async def import_page(request: Request) -> HTTPResponse:
    return render(request, "knowledge_import.html", report=None, error="", filename="")


@bp.post("/import")
@login_required(role="admin")
async def import_upload(request: Request) -> HTTPResponse:
    upload = request.files.get("file") if request.files else None
    if upload is None or not upload.body:
        return render(request, "knowledge_import.html", status=400, report=None, filename="",
                      error="请选择要导入的 .xlsx 或 .csv 文件")  # fmt: skip
    if len(upload.body) > MAX_UPLOAD:
        return render(request, "knowledge_import.html", status=400, report=None, filename=upload.name,
                      error="文件太大（上限约 900 KB），请分成几个文件导入")  # fmt: skip
    form = request.form or {}
    products = await shop_products()

    def run_import() -> Any:  # in a thread: the model check asks the Rasa server
        from xiaoer.knowledge.modelcheck import running_classifier

        return import_bytes(
            upload.body,
            upload.name or "",
            get_knowledge_store(),
            products,
            by=current_agent(request).username,
            strict=form.get("strict") == "1",
            classify=running_classifier(),
        )

    try:
        report = await asyncio.get_running_loop().run_in_executor(None, run_import)
    except SheetError as exc:
        return render(request, "knowledge_import.html", status=400, report=None,
                      filename=upload.name, error=f"{exc}（没有导入任何条目）")  # fmt: skip
    run_id = None
    if form.get("train") == "1" and report.changed:
        from xiaoer.training import request_retrain

        run_id = request_retrain(current_agent(request).username, f"导入 {upload.name}")
    return render(
        request,
        "knowledge_import.html",
        report=report,
        rejected=[r for r in report.rows if r.status == REJECTED],
        labels=STATUS_LABELS,
        filename=upload.name,
        run_id=run_id,
        error="",
    )


def _download(data: bytes, filename: str) -> HTTPResponse:
    mime = (
        "text/csv; charset=utf-8"
        if filename.endswith(".csv")
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return response.raw(
        data,
        content_type=mime,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@bp.get("/export")
@login_required()
async def export(request: Request) -> HTTPResponse:
    kind = "csv" if request.args.get("format") == "csv" else "xlsx"
    name = f"知识库.{kind}"
    return _download(export_bytes(get_knowledge_store(), name), name)


@bp.get("/template")
@login_required()
async def download_template(request: Request) -> HTTPResponse:
    kind = "csv" if request.args.get("format") == "csv" else "xlsx"
    return _download(template(kind), f"知识库导入模板.{kind}")


@bp.post("/train")
@login_required(role="admin")
async def train(request: Request) -> HTTPResponse:
    from xiaoer.training import request_retrain

    run_id = request_retrain(current_agent(request).username, "工作台：重新训练")
    if wants_json(request):
        return response.json({"run_id": run_id})
    return response.redirect("/knowledge?done=train")


@bp.get("/runs")
@login_required()
async def runs(request: Request) -> HTTPResponse:
    """The latest retraining runs (JSON, polled by the page's progress bar)."""
    state = _training_state()
    keep = ("id", "state", "state_label", "progress", "percent", "error", "done", "seconds")
    return response.json(
        {
            "needed": state["needed"],
            "runs": [{k: r.get(k) for k in keep} for r in state["runs"]],
        }
    )
