"""The console's learning pages (admins: they change what the assistant learns and says).

* ``/learning`` (待学习): the inbox grouped by similarity, with the suggested intents;
  select messages (or a whole group) and assign them to an intent (existing or new),
  preview the change as a diff, accept it (written, validated, retrain requested); or
  to a knowledge-base entry (existing or new: the messages become its phrasings,
  retrain requested); or mark them out of scope / ignore them. ``/learning/conversation?sender=…`` shows the
  conversation a message came from.
* ``/learning/variants`` (回复优化): for each response chosen by outcomes, per customer
  segment, every variant's exposures, outcomes and success rate with its 95 % interval;
  pin a winner, switch a variant off or on, add one.

Services: xiaoer/learning/ (inbox, grouping, service, variants).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.access import shown
from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render, wants_json
from xiaoer.core.rasa_api import RasaApiError
from xiaoer.handoff.desk import chat_lines
from xiaoer.learning import service, variants
from xiaoer.learning.grouping import group_items
from xiaoer.learning.inbox import REASON_LABELS, STATUS_LABELS, get_inbox_store
from xiaoer.learning.nludata import domain_intents

bp = Blueprint("learning")
NAV_ITEMS.append(("/learning", "待学习", "admin"))  # its pages link to 回复优化


def _ids(request: Request) -> list[int]:
    values = request.form.getlist("ids") if request.form else []
    try:
        return [int(v) for v in values]
    except ValueError:
        return []


def _intent(request: Request) -> str:
    form = request.form or {}
    new = str(form.get("new_intent") or "").strip()
    return new or str(form.get("intent") or "").strip()


def _digest(diff: str) -> str:
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()[:16]


def _inbox_page(
    request: Request, error: str = "", notice: str = "", status: int = 200
) -> HTTPResponse:
    me = current_agent(request)
    state = request.args.get("status", "open")
    if state not in (*STATUS_LABELS, "all"):
        state = "open"
    store = get_inbox_store()
    items = store.items(status=None if state == "all" else state)
    groups = group_items(items)
    for g in groups:
        for item in g.items:
            item.text = shown(me, item.text)
    if wants_json(request):
        return response.json({"groups": [g.as_dict() for g in groups]}, status=status)
    return render(
        request,
        "learning.html",
        status=status,
        groups=groups,
        counts=store.counts(),
        state=state,
        intents=domain_intents(service.project_root()),
        kb_entries=_kb_entries(),
        reasons=REASON_LABELS,
        statuses=STATUS_LABELS,
        error=error,
        notice=notice,
    )


def _kb_entries() -> list[tuple[int, str]]:
    from xiaoer.knowledge.store import get_knowledge_store

    return [(e.id, e.question) for e in get_knowledge_store().all() if e.id is not None]


@bp.get("/learning")
@login_required(role="admin")
async def inbox(request: Request) -> HTTPResponse:
    return _inbox_page(request, notice=request.args.get("notice", ""))


@bp.post("/learning/preview")
@login_required(role="admin")
async def preview(request: Request) -> HTTPResponse:
    ids, intent = _ids(request), _intent(request)
    topic = str((request.form or {}).get("topic") or "").strip() or None
    if not intent:
        return _inbox_page(request, error="请选择或填写一个意图", status=400)
    try:
        change = service.preview(ids, intent, topic)
    except service.InboxError as exc:
        return _inbox_page(request, error=str(exc), status=400)
    store = get_inbox_store()
    me = current_agent(request)
    items = [store.get(i) for i in ids]
    return render(
        request,
        "learning_preview.html",
        ids=ids,
        intent=intent,
        topic=topic or "",
        change=change,
        diff=shown(me, change.diff),
        digest=_digest(change.diff),
        items=[i for i in items if i is not None],
    )


@bp.post("/learning/accept")
@login_required(role="admin")
async def accept(request: Request) -> HTTPResponse:
    me = current_agent(request)
    ids, intent = _ids(request), _intent(request)
    form = request.form or {}
    topic = str(form.get("topic") or "").strip() or None
    try:
        change = service.preview(ids, intent, topic)
        if _digest(change.diff) != str(form.get("digest") or ""):
            raise service.InboxError("训练数据在预览之后有变化，请重新预览")
        # rasa data validate takes seconds: off the event loop
        result = await asyncio.to_thread(service.accept, ids, intent, me.username, topic)
    except service.InboxError as exc:
        return _inbox_page(request, error=str(exc), status=400)
    if wants_json(request):
        return response.json({"written": result.written, "run_id": result.run_id,
                              "message": result.retrain_message})  # fmt: skip
    from urllib.parse import quote

    return response.redirect(f"/learning?notice={quote(result.retrain_message)}", status=303)


@bp.post("/learning/kb")
@login_required(role="admin")
async def assign_kb(request: Request) -> HTTPResponse:
    """Assign the selected messages to a knowledge-base entry (existing or new)."""
    me = current_agent(request)
    form = request.form or {}
    chosen = str(form.get("kb_entry") or "").strip()
    try:
        entry_id = None if chosen in ("", "new") else int(chosen)
    except ValueError:
        return _inbox_page(request, error="请选择一个知识库条目", status=400)
    try:
        result = await asyncio.to_thread(
            service.assign_to_kb,
            _ids(request),
            me.username,
            entry_id=entry_id,
            question=str(form.get("kb_question") or "")[:200],
            answer=str(form.get("kb_answer") or "")[:2000],
            category=str(form.get("kb_category") or "")[:50],
        )
    except service.InboxError as exc:
        return _inbox_page(request, error=str(exc), status=400)
    if wants_json(request):
        return response.json({"entry_id": result.entry_id, "created": result.created,
                              "added": result.added, "run_id": result.run_id,
                              "message": result.retrain_message})  # fmt: skip
    from urllib.parse import quote

    return response.redirect(f"/learning?notice={quote(result.retrain_message)}", status=303)


@bp.post("/learning/dismiss")
@login_required(role="admin")
async def dismiss(request: Request) -> HTTPResponse:
    me = current_agent(request)
    status = str((request.form or {}).get("as") or "")
    try:
        n = service.dismiss(_ids(request), status, me.username)
    except service.InboxError as exc:
        return _inbox_page(request, error=str(exc), status=400)
    from urllib.parse import quote

    label = STATUS_LABELS.get(status, status)
    return response.redirect(f"/learning?notice={quote(f'已将 {n} 条标记为{label}')}", status=303)


@bp.get("/learning/conversation")
@login_required(role="admin")
async def conversation(request: Request) -> HTTPResponse:
    me = current_agent(request)
    sender = request.args.get("sender", "")
    highlight = request.args.get("text", "")
    error = ""
    events: list[dict[str, Any]] = []
    if not sender:
        error = "缺少会话编号"
    else:
        try:
            events = (await request.app.ctx.desk.tracker(sender)).get("events") or []
        except RasaApiError as exc:
            error = f"无法读取会话：{exc}"
    lines = [
        {"who": line.who, "time": line.time, "text": shown(me, line.text)}
        for line in chat_lines(events)
    ]
    return render(
        request,
        "learning_conversation.html",
        sender=sender,
        lines=lines,
        highlight=shown(me, highlight),
        error=error,
    )


# --- reply variants --------------------------------------------------------------------------
def _variants_page(request: Request, error: str = "", status: int = 200) -> HTTPResponse:
    catalogue = variants.message_catalogue()
    store = variants.get_variant_store()
    reports = []
    for key in variants.RESPONSES:
        if key not in catalogue and not store.variants(key):
            continue  # a response this project does not have (yet)
        reports.append(variants.report(key, catalogue.get(key, []), store))
    if wants_json(request):
        return response.json({"responses": reports}, status=status)
    return render(
        request,
        "learning_variants.html",
        status=status,
        reports=reports,
        outcome_labels=variants.OUTCOME_LABELS,
        error=error,
        warmup=variants.WARMUP,
    )


@bp.get("/learning/variants")
@login_required(role="admin")
async def variants_page(request: Request) -> HTTPResponse:
    return _variants_page(request)


@bp.post("/learning/variants/<response_key:str>")
@login_required(role="admin")
async def variants_change(request: Request, response_key: str) -> HTTPResponse:
    me = current_agent(request)
    if response_key not in variants.RESPONSES:
        return _variants_page(request, error="未知的回复", status=404)
    form = request.form or {}
    action = str(form.get("action") or "")
    key = str(form.get("variant") or "")
    store = variants.get_variant_store()
    catalogue = variants.message_catalogue().get(response_key, [])
    known = {v.key: v for v in store.variants(response_key, catalogue)}
    try:
        if action == "add":
            store.add(
                response_key,
                str(form.get("text") or ""),
                str(form.get("segment") or ""),
                str(form.get("daypart") or ""),
                by=me.username,
            )
        elif action == "unpin":
            store.pin(response_key, None)
        elif action in ("pin", "off", "on"):
            if key not in known:
                raise ValueError("未知的回复版本")
            text = known[key].text
            if action == "pin":
                store.pin(response_key, key, text)
            else:
                store.set_active(response_key, key, action == "on", text)
        else:
            raise ValueError("未知的操作")
    except ValueError as exc:
        return _variants_page(request, error=str(exc), status=400)
    return response.redirect("/learning/variants", status=303)
