"""Leads in the agent console: list with filters, lead view with the conversation, status
and notes, reassignment (admins), CSV / XLSX export (audited), the audit log (admins).

An agent sees (and notes, exports) only the leads of their skill groups and those
assigned to them (``xiaoer.console.access``). Phone numbers and WeChat ids are masked for
roles not listed in ``leads.full_contacts_roles`` (xiaoer.yml), on the pages, in the JSON
and in exports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.agents import Agent
from xiaoer.console.access import full_contacts, shown, shown_contact, visible_leads
from xiaoer.console.web import (
    NAV_ITEMS,
    agents_by_id,
    current_agent,
    forbidden,
    login_required,
    render,
    wants_json,
)
from xiaoer.handoff.desk import RasaApiError, chat_lines
from xiaoer.leads import CATEGORY_LABELS, SCORE_LABELS, STATUS_LABELS, Lead, get_lead_store
from xiaoer.leads.crm import get_crm_outbox
from xiaoer.leads.export import contacts_view, export
from xiaoer.leads.rules import CATEGORIES, SCORES, STATUSES

bp = Blueprint("leads")
NAV_ITEMS.append(("/leads", "线索", None))
FILTERS = ("category", "score", "status", "assignee", "date_from", "date_to")
MAX_NOTE = 1000


def _filters(request: Request) -> dict[str, str]:
    return {k: (request.args.get(k) or "").strip() for k in FILTERS}


def _query(filters: dict[str, str]) -> dict[str, Any]:
    """Store arguments from the page's filters; ValueError for bad values."""
    args: dict[str, Any] = {
        "category": filters["category"] or None,
        "score": filters["score"] or None,
        "status": filters["status"] or None,
        "date_from": filters["date_from"] or None,
        "date_to": filters["date_to"] or None,
    }
    assignee = filters["assignee"]
    if assignee == "none":
        args["unassigned"] = True
    elif assignee:
        if not assignee.isdigit():
            raise ValueError("assignee")
        args["assignee_id"] = int(assignee)
    return args


def _bad_filter(request: Request) -> HTTPResponse:
    message = "筛选条件不正确（日期格式为 YYYY-MM-DD）"
    if wants_json(request):
        return response.json({"error": "bad_filter", "message": message}, status=400)
    return render(request, "error.html", status=400, title="筛选条件不正确", message=message)


def _row(lead: Lead, me: Agent, names: dict[int, Agent]) -> dict[str, Any]:
    view = contacts_view(lead, full_contacts(me))
    assignee = names.get(lead.assignee_id) if lead.assignee_id is not None else None
    return {
        "id": lead.id,
        "name": lead.name,
        "phones": view["phones"],
        "wechats": view["wechats"],
        "category": lead.category,
        "category_label": CATEGORY_LABELS.get(lead.category, lead.category),
        "score": lead.score,
        "score_label": SCORE_LABELS.get(lead.score, lead.score),
        "points": lead.points,
        "status": lead.status,
        "status_label": STATUS_LABELS.get(lead.status, lead.status),
        "assignee_id": lead.assignee_id,
        "assignee": assignee.display_name if assignee else "",
        "source_sender_id": lead.source_sender_id,
        "source_message": shown(me, lead.source_message),
        "created_at": lead.created_at,
        "last_activity_at": lead.last_activity_at,
    }


def _choices() -> dict[str, Any]:
    return {
        "categories": [(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
        "scores": [(s, SCORE_LABELS[s]) for s in SCORES],
        "statuses": [(s, STATUS_LABELS[s]) for s in STATUSES],
    }


@bp.get("/leads")
@login_required()
async def leads_page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    filters = _filters(request)
    try:
        leads = visible_leads(me, get_lead_store().list_leads(**_query(filters)))
    except ValueError:
        return _bad_filter(request)
    names = agents_by_id()
    full = full_contacts(me)
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "leads.html",
        rows=[_row(lead, me, names) for lead in leads],
        filters=filters,
        agents=[a for a in names.values() if a.active],
        query=query,
        full=full,
        **_choices(),
    )


@bp.get("/api/leads")
@login_required()
async def leads_json(request: Request) -> HTTPResponse:
    me = current_agent(request)
    try:
        leads = visible_leads(me, get_lead_store().list_leads(**_query(_filters(request))))
    except ValueError:
        return _bad_filter(request)
    names = agents_by_id()
    return response.json({"leads": [_row(lead, me, names) for lead in leads]})


@bp.get("/leads/export.csv")
@login_required()
async def export_csv(request: Request) -> HTTPResponse:
    return _export(request, "csv")


@bp.get("/leads/export.xlsx")
@login_required()
async def export_xlsx(request: Request) -> HTTPResponse:
    return _export(request, "xlsx")


def _export(request: Request, fmt: str) -> HTTPResponse:
    me = current_agent(request)
    filters = _filters(request)
    try:
        leads = visible_leads(me, get_lead_store().list_leads(**_query(filters), limit=100_000))
    except ValueError:
        return _bad_filter(request)
    names = {i: a.display_name for i, a in agents_by_id().items()}
    data = export(
        get_lead_store(), leads, fmt=fmt, actor=me.username, role=me.role,
        filters=filters, agent_names=names,
    )  # fmt: skip
    mime = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return response.raw(
        data,
        content_type=mime,
        headers={"Content-Disposition": f'attachment; filename="leads.{fmt}"'},
    )


@bp.get("/leads/audit")
@login_required(role="admin")
async def audit_page(request: Request) -> HTTPResponse:
    return render(request, "leads_audit.html", rows=get_lead_store().audit_log(500))


def _lead_or_404(request: Request, lead_id: int) -> Lead | HTTPResponse:
    """The lead if the logged-in agent may see it; 404 alike for a missing lead and one of
    another group (no hint that it exists)."""
    lead = get_lead_store().get(lead_id)
    if lead is None or not visible_leads(current_agent(request), [lead]):
        if wants_json(request):
            return response.json({"error": "not_found", "message": "没有这条线索"}, status=404)
        return render(
            request, "error.html", status=404, title="没有这条线索", message="没有这条线索"
        )
    if lead.id != lead_id:
        return response.redirect(f"/leads/{lead.id}")  # merged into an older lead
    return lead


@bp.get("/leads/<lead_id:int>")
@login_required()
async def lead_page(request: Request, lead_id: int) -> HTTPResponse:
    me = current_agent(request)
    lead = _lead_or_404(request, lead_id)
    if isinstance(lead, HTTPResponse):
        return lead
    store = get_lead_store()
    full = full_contacts(me)
    conversations: list[dict[str, Any]] = []
    error = ""
    for sender in lead.senders:
        try:
            tracker = await request.app.ctx.desk.tracker(sender)
        except RasaApiError as exc:
            error = str(exc)
            break
        lines = chat_lines(tracker.get("events") or [])
        if lines:
            conversations.append({"sender_id": sender, "lines": lines})
    if error:  # the bot server is unreachable: the customer messages the lead store kept
        conversations = [
            {
                "sender_id": "",
                "lines": [
                    {"who": "customer", "time": a["at"][5:16].replace("T", " "), "text": a["text"]}
                    for a in store.activity(lead.id)
                ],
            }
        ]
    for conv in conversations:
        conv["lines"] = [
            {"who": _get(m, "who"), "time": _get(m, "time"), "text": shown(me, _get(m, "text"))}
            for m in conv["lines"]
        ]
    names = agents_by_id()
    return render(
        request,
        "leads_view.html",
        lead=_row(lead, me, names),
        contacts=[{"kind": c["kind"], "value": shown_contact(me, c)} for c in lead.contacts],
        senders=lead.senders,
        conversations=conversations,
        notes=[_shown_note(me, n, names) for n in store.notes(lead.id)],
        agents=[a for a in names.values() if a.active],
        can_edit=me.is_admin or lead.assignee_id in (None, me.id),
        crm=[r for r in get_crm_outbox().rows() if r.lead_id == lead.id][-5:],
        error=error,
        full=full,
        **_choices(),
    )


def _shown_note(me: Agent, note: Any, names: dict[int, Agent]) -> Any:
    """A note as the console shows it: its author by display name (notes keep the user
    name, which stays unique when a display name changes)."""
    by_username = {a.username: a.display_name for a in names.values()}
    author = by_username.get(note.author, note.author or "系统")
    return replace(note, text=shown(me, note.text), author=author)


def _get(line: Any, key: str) -> str:
    return str(line[key] if isinstance(line, dict) else getattr(line, key))


def _form(request: Request, key: str) -> str:
    return ((request.form.get(key) if request.form else None) or "").strip()


@bp.post("/leads/<lead_id:int>/status")
@login_required()
async def set_status(request: Request, lead_id: int) -> HTTPResponse:
    me = current_agent(request)
    lead = _lead_or_404(request, lead_id)
    if isinstance(lead, HTTPResponse):
        return lead
    if not (me.is_admin or lead.assignee_id in (None, me.id)):
        return forbidden(request, "这条线索由其他客服负责")
    status, note = _form(request, "status"), _form(request, "note")[:MAX_NOTE]
    if status not in STATUSES:
        return render(
            request, "error.html", status=400, title="状态不正确", message="请选择线索状态"
        )
    updated = get_lead_store().set_status(lead.id, status, me.username, note)
    get_crm_outbox().enqueue(updated, created=False)
    return response.redirect(f"/leads/{lead.id}")


@bp.post("/leads/<lead_id:int>/note")
@login_required()
async def add_note(request: Request, lead_id: int) -> HTTPResponse:
    me = current_agent(request)
    lead = _lead_or_404(request, lead_id)
    if isinstance(lead, HTTPResponse):
        return lead
    note = _form(request, "note")[:MAX_NOTE]
    if not note:
        return render(request, "error.html", status=400, title="备注为空", message="请填写备注内容")
    get_lead_store().add_note(lead.id, me.username, note)
    return response.redirect(f"/leads/{lead.id}")


@bp.post("/leads/<lead_id:int>/assign")
@login_required(role="admin")
async def reassign(request: Request, lead_id: int) -> HTTPResponse:
    me = current_agent(request)
    lead = _lead_or_404(request, lead_id)
    if isinstance(lead, HTTPResponse):
        return lead
    value = _form(request, "agent_id")
    names = agents_by_id()
    if value and (not value.isdigit() or int(value) not in names):
        return render(request, "error.html", status=400, title="客服不存在", message="请选择客服")
    updated = get_lead_store().set_assignee(lead.id, int(value) if value else None, me.username)
    get_crm_outbox().enqueue(updated, created=False)
    return response.redirect(f"/leads/{lead.id}")
