"""The queue (live), the conversation view, and the agent's actions on a conversation."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.agents import Agent, get_agent_store
from xiaoer.console import labels
from xiaoer.console.access import can_see_handoff, shown, shown_contact
from xiaoer.console.customer import customer_panel
from xiaoer.console.web import (
    SESSION_COOKIE,
    agents_by_id,
    current_agent,
    forbidden,
    login_required,
    render,
)
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.desk import ChatLine, RasaApiError, chat_lines
from xiaoer.handoff.store import HandoffRequest, get_handoff_store
from xiaoer.leads.export import mask_text

logger = logging.getLogger(__name__)
bp = Blueprint("console_queue")

MAX_REPLY_CHARS = 1000
STREAM_POLL_SECONDS = 0.4
STREAM_PING_SECONDS = 15.0
STREAM_AUTH_SECONDS = 2.0  # how often an open stream checks its session between events


def lines_for(me: Agent, events: list[dict[str, Any]]) -> list[ChatLine]:
    """The chat history as this agent may read it (contacts masked for non-admins)."""
    return [replace(line, text=shown(me, line.text)) for line in chat_lines(events)]


def can_act(agent: Agent, request: HandoffRequest) -> bool:
    """Whoever holds it (or anyone who may see it while it waits); admins always."""
    if agent.is_admin:
        return True
    if request.status == "active":
        return request.agent_id == agent.id
    return can_see_handoff(agent, request)


def item(request: HandoffRequest, names: dict[int, Agent]) -> dict[str, Any]:
    last = [m for m in request.summary.get("last_messages") or [] if m.get("who") == "user"]
    holder = names.get(request.agent_id or 0)
    return {
        "id": request.id,
        "customer": request.sender_id[:24],
        "group": request.group_name or "未分组",
        "priority": request.priority,
        "priority_label": labels.priority(request.priority),
        "reason": labels.reason(request.reason),
        "intent": labels.intent(request.intent),
        "status": request.status,
        "status_label": labels.STATUSES.get(request.status, request.status),
        "agent": holder.display_name if holder else "",
        "waiting_seconds": request.waiting_seconds(),
        "created_at": request.created_at,
        "in_hours": request.in_hours,
        # the queue's one-line preview is masked for everyone (the conversation shows more)
        "preview": mask_text(last[-1]["text"] if last else request.details)[:60],
        "order_id": request.summary.get("order_id") or "",
    }


def queue_for(agent: Agent) -> dict[str, Any]:
    store = get_handoff_store()
    names = agents_by_id()
    visible = [r for r in store.open_requests() if can_see_handoff(agent, r)]
    return {
        "revision": store.revision(),
        "items": [item(r, names) for r in visible],
        "waiting": sum(r.status == "waiting" for r in visible),
        "mine": sum(r.status == "active" and r.agent_id == agent.id for r in visible),
    }


def _load(agent: Agent, request_id: int) -> HandoffRequest | None:
    request = get_handoff_store().get(request_id)
    if request is None or not can_see_handoff(agent, request):
        return None
    return request


def _not_found(request: Request) -> HTTPResponse:
    if request.path.startswith("/api/"):
        return response.json({"error": "not_found", "message": "没有这个会话"}, status=404)
    return render(
        request, "error.html", status=404, title="没有这个会话", message="会话不存在或您无权查看"
    )


# --- pages --------------------------------------------------------------------------------
@bp.get("/")
@login_required()
async def queue_page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    settings = handoff_settings()
    return render(
        request,
        "queue.html",
        queue=queue_for(me),
        in_hours=settings.in_hours(),
        hours=settings.hours_text,
        on_shift=[a.display_name for a in get_agent_store().on_shift()],
    )


@bp.get("/history")
@login_required()
async def history_page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    names = agents_by_id()
    rows = [
        item(r, names) | {"note": shown(me, r.note), "closed_at": r.closed_at}
        for r in get_handoff_store().recent_closed(50)
        if can_see_handoff(me, r)
    ]
    return render(request, "history.html", rows=rows)


@bp.get("/handoffs/<request_id:int>")
@login_required()
async def conversation_page(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    error = ""
    events: list[dict[str, Any]] = []
    paused = False
    try:
        tracker = await request.app.ctx.desk.tracker(handoff.sender_id)
        events, paused = tracker.get("events") or [], bool(tracker.get("paused"))
    except RasaApiError as exc:
        error = str(exc)
    settings = handoff_settings()
    names = agents_by_id()
    panel = await customer_panel(handoff, events)
    return render(
        request,
        "conversation.html",
        h=handoff,
        info=item(handoff, names),
        lines=lines_for(me, events),
        paused=paused,
        panel=panel,
        contacts=[{"kind": c["kind"], "value": shown_contact(me, c)} for c in panel.contacts],
        note=shown(me, handoff.note),
        slots=[
            (labels.SLOTS.get(k, k), shown(me, v))
            for k, v in (handoff.summary.get("slots") or {}).items()
            if k != "order_id"
        ],
        quick_replies=settings.quick_replies,
        can_act=can_act(me, handoff),
        groups=settings.groups,
        agents=[a for a in names.values() if a.active],
        error=error,
        max_reply=MAX_REPLY_CHARS,
    )


# --- JSON API (the pages' scripts) --------------------------------------------------------
@bp.get("/api/queue")
@login_required()
async def queue_json(request: Request) -> HTTPResponse:
    return response.json(queue_for(current_agent(request)))


def session_agent(request: Request) -> Agent | None:
    """The agent of the request's session if it is still valid now (not logged out, not
    expired, the account still active), else None."""
    session = request.app.ctx.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return None
    agent = get_agent_store().get(session.agent_id)
    return agent if agent is not None and agent.active else None


@bp.get("/api/queue/stream")
@login_required()
async def queue_stream(request: Request) -> None:
    """Server-sent events: the queue, sent again whenever it changes. The session is
    checked again before every event and every few seconds: once the agent has logged
    out, been disabled or the session has expired, an ``auth`` event tells the page to go
    to the login and the stream ends."""
    me = current_agent(request)
    store = get_handoff_store()
    stream = await request.respond(
        content_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    last_revision = ""
    idle = since_check = 0.0
    try:
        await stream.send("retry: 1000\n\n")
        while True:
            revision = store.revision()
            changed = revision != last_revision
            if changed or since_check >= STREAM_AUTH_SECONDS:
                fresh, since_check = session_agent(request), 0.0
                if fresh is None:
                    logger.info("queue stream ended: the session is no longer valid")
                    await stream.send('event: auth\ndata: {"login": "/login"}\n\n')
                    await stream.eof()
                    return
                me = fresh  # groups may have changed since the stream opened
            if changed:
                last_revision = revision
                payload = json.dumps(queue_for(me), ensure_ascii=False)
                await stream.send(f"event: queue\ndata: {payload}\n\n")
                idle = 0.0
            elif idle >= STREAM_PING_SECONDS:
                await stream.send(": ping\n\n")
                idle = 0.0
            await asyncio.sleep(STREAM_POLL_SECONDS)
            idle += STREAM_POLL_SECONDS
            since_check += STREAM_POLL_SECONDS
    except (ConnectionError, asyncio.CancelledError):
        return
    except Exception:  # noqa: BLE001 - a dropped client ends its stream
        logger.debug("queue stream ended", exc_info=True)


@bp.get("/api/handoffs/<request_id:int>/messages")
@login_required()
async def messages_json(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    try:
        tracker = await request.app.ctx.desk.tracker(handoff.sender_id)
    except RasaApiError as exc:
        return response.json({"error": "rasa", "message": str(exc)}, status=502)
    return response.json(
        {
            "status": handoff.status,
            "status_label": labels.STATUSES.get(handoff.status, handoff.status),
            "paused": bool(tracker.get("paused")),
            "lines": [line.__dict__ for line in lines_for(me, tracker.get("events") or [])],
        }
    )


@bp.post("/api/handoffs/<request_id:int>/reply")
@login_required()
async def reply(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    try:
        body = request.json if request.json is not None else {}
    except Exception:  # noqa: BLE001 - sanic raises on invalid JSON
        body = None
    if not isinstance(body, dict):
        return response.json(
            {"error": "invalid_body", "message": "请求体必须是 JSON 对象"}, status=400
        )
    text = str(body.get("text") or "").strip()
    if not text:
        return response.json({"error": "empty", "message": "回复内容不能为空"}, status=400)
    if len(text) > MAX_REPLY_CHARS:
        return response.json(
            {"error": "too_long", "message": f"回复最长 {MAX_REPLY_CHARS} 个字"}, status=413
        )
    if handoff.status == "closed":
        return response.json({"error": "closed", "message": "该会话已结束，不能再回复"}, status=409)
    if not can_act(me, handoff):
        return response.json({"error": "taken", "message": "该会话正由其他客服接待"}, status=409)
    desk = request.app.ctx.desk
    try:
        if handoff.status == "waiting":
            await desk.take(handoff, me.id)
        await desk.reply(handoff, me.id, me.display_name, text)
    except RasaApiError as exc:
        return response.json({"error": "rasa", "message": str(exc)}, status=502)
    logger.info("agent %s replied in handoff %s", me.id, handoff.id)
    return response.json({"ok": True})


# --- form actions -------------------------------------------------------------------------
async def _act(
    request: Request, request_id: int
) -> tuple[Agent, HandoffRequest | None, HTTPResponse | None]:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return me, None, _not_found(request)
    if not can_act(me, handoff):
        return me, None, forbidden(request, "该会话正由其他客服接待")
    return me, handoff, None


def _error_page(request: Request, message: str, status: int = 502) -> HTTPResponse:
    return render(request, "error.html", status=status, title="操作没有完成", message=message)


@bp.post("/handoffs/<request_id:int>/take")
@login_required()
async def take(request: Request, request_id: int) -> HTTPResponse:
    me, handoff, error = await _act(request, request_id)
    if error or handoff is None:
        return error or _not_found(request)
    if handoff.status == "closed":
        return _error_page(request, "该会话已结束", 409)
    try:
        await request.app.ctx.desk.take(handoff, me.id)
    except RasaApiError as exc:
        return _error_page(request, str(exc))
    return response.redirect(f"/handoffs/{handoff.id}")


async def _finish(request: Request, request_id: int, announce: bool) -> HTTPResponse:
    me, handoff, error = await _act(request, request_id)
    if error or handoff is None:
        return error or _not_found(request)
    if handoff.status == "closed":
        return response.redirect("/")
    note = str((request.form or {}).get("note") or "").strip()[:1000]
    try:
        await request.app.ctx.desk.hand_back(handoff, note, announce=announce)
    except RasaApiError as exc:
        return _error_page(request, str(exc))
    logger.info(
        "agent %s %s handoff %s", me.id, "handed back" if announce else "closed", handoff.id
    )
    return response.redirect("/")


@bp.post("/handoffs/<request_id:int>/handback")
@login_required()
async def hand_back(request: Request, request_id: int) -> HTTPResponse:
    return await _finish(request, request_id, announce=True)


@bp.post("/handoffs/<request_id:int>/close")
@login_required()
async def close(request: Request, request_id: int) -> HTTPResponse:
    return await _finish(request, request_id, announce=False)


@bp.post("/handoffs/<request_id:int>/reassign")
@login_required(role="admin")
async def reassign(request: Request, request_id: int) -> HTTPResponse:
    handoff = get_handoff_store().get(request_id)
    if handoff is None:
        return _not_found(request)
    form = request.form or {}
    group = str(form.get("group") or "").strip()
    agent_value = str(form.get("agent_id") or "").strip()
    agent_id = int(agent_value) if agent_value.isdigit() else None
    if group and group not in handoff_settings().groups:
        return _error_page(request, f"没有技能组“{group}”", 400)
    target = get_agent_store().get(agent_id) if agent_id else None
    if agent_id and (target is None or not target.active):
        return _error_page(request, "没有这个客服账号", 400)
    if not get_handoff_store().reassign(request_id, group=group or None, agent_id=agent_id):
        return _error_page(request, "该会话已结束或没有指定新的技能组/客服", 409)
    if target is not None:
        try:
            await request.app.ctx.desk.pause(handoff.sender_id)
        except RasaApiError as exc:
            return _error_page(request, str(exc))
    return response.redirect(f"/handoffs/{request_id}")


@bp.post("/me/shift")
@login_required()
async def toggle_shift(request: Request) -> HTTPResponse:
    """An agent starts or ends their shift (the wait estimate counts agents on shift)."""
    me = current_agent(request)
    on_shift = str((request.form or {}).get("on_shift") or "") == "1"
    get_agent_store().update(me.id, on_shift=on_shift)
    return response.redirect("/")
