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
from xiaoer.console.access import can_see_handoff, full_contacts, shown, shown_contact
from xiaoer.console.customer import customer_panel
from xiaoer.console.web import (
    SESSION_COOKIE,
    agents_by_id,
    current_agent,
    login_required,
    render,
    wants_json,
)
from xiaoer.core.clock import now_beijing
from xiaoer.core.settings import handoff_settings
from xiaoer.handoff.activity import Activity, LogEntry, get_activity_store, waiting_since
from xiaoer.handoff.customers import CustomerProfile, customer_tags, get_customer_store
from xiaoer.handoff.desk import ChatLine, RasaApiError, chat_lines
from xiaoer.handoff.store import HandoffRequest, get_handoff_store, parse_time
from xiaoer.leads.export import mask_text
from xiaoer.text.placeholders import fill

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


def holder_of(request: HandoffRequest, names: dict[int, Agent]) -> str:
    """Who holds the conversation, by display name ("" when nobody does)."""
    if request.status != "active" or request.agent_id is None:
        return ""
    holder = names.get(request.agent_id)
    return holder.display_name if holder else "已停用的客服"


def held_by_other(me: Agent, request: HandoffRequest) -> bool:
    return request.status == "active" and request.agent_id not in (None, me.id)


def customer_name(request: HandoffRequest, profile: CustomerProfile | None) -> str:
    """The customer as agents call them: the Douyin nickname, else the conversation id."""
    if profile is not None and profile.nickname:
        return profile.nickname
    return request.sender_id[:24]


def item(
    request: HandoffRequest,
    names: dict[int, Agent],
    activity: Activity | None = None,
    profile: CustomerProfile | None = None,
    unread: int = 0,
) -> dict[str, Any]:
    last = [m for m in request.summary.get("last_messages") or [] if m.get("who") == "user"]
    latest = (activity.last_customer_text if activity else "") or (
        last[-1]["text"] if last else request.details
    )
    since = waiting_since(request, activity) if request.is_open else None
    started = parse_time(since)
    waited = max(0, int((now_beijing() - started).total_seconds())) if started else None
    return {
        "id": request.id,
        "customer": customer_name(request, profile),
        "sender": request.sender_id[:24],
        "nickname": profile.nickname if profile else "",
        "tags": profile.tags if profile else [],
        "group": request.group_name or "未分组",
        "priority": request.priority,
        "priority_label": labels.priority(request.priority),
        "reason": labels.reason(request.reason),
        "intent": labels.intent(request.intent),
        "status": request.status,
        "status_label": labels.STATUSES.get(request.status, request.status),
        "agent": holder_of(request, names),
        "agent_id": request.agent_id if request.status == "active" else None,
        # since the customer's latest unanswered message (None: an agent answered it)
        "waiting_seconds": waited,
        "created_at": request.created_at,
        "last_customer_at": activity.last_customer_at if activity else None,
        "in_hours": request.in_hours,
        "unread": unread,
        # the queue's one-line preview is masked for everyone (the conversation shows more)
        "preview": mask_text(latest)[:60],
        "order_id": request.summary.get("order_id") or "",
    }


def items_for(me: Agent, requests: list[HandoffRequest]) -> list[dict[str, Any]]:
    """Rows with their latest customer message, nickname and this agent's unread count."""
    names = agents_by_id()
    ids = [r.id for r in requests]
    activity_store = get_activity_store()
    activity = activity_store.activity(ids)
    unread = activity_store.unread(me.id, ids)
    profiles = get_customer_store().many([r.sender_id for r in requests])
    return [
        item(
            r,
            names,
            activity.get(r.id),
            profiles.get(r.sender_id),
            unread.get(r.id, 0) if r.status == "active" and r.agent_id == me.id else 0,
        )
        for r in requests
    ]


def queue_for(agent: Agent) -> dict[str, Any]:
    store = get_handoff_store()
    visible = [r for r in store.open_requests() if can_see_handoff(agent, r)]
    items = items_for(agent, visible)
    mine = [i for i in items if i["status"] == "active" and i["agent_id"] == agent.id]
    return {
        "revision": store.revision(),
        "items": items,
        "waiting": sum(r.status == "waiting" for r in visible),
        "mine": len(mine),
        "my_chats": mine,
        "unread": sum(i["unread"] for i in mine),
        "me": agent.id,
    }


def notice_for(me: Agent, entry: LogEntry, names: dict[int, Agent]) -> str | None:
    """What a log entry tells this agent live (None: nothing concerns them)."""
    if entry.actor_id == me.id or entry.kind not in ("transferred", "reassigned", "taken"):
        return None

    def name(agent_id: int | None) -> str:
        agent = names.get(agent_id or 0)
        return agent.display_name if agent else "系统"

    note = f"（备注：{shown(me, entry.note)}）" if entry.note else ""
    where = f"会话 #{entry.handoff_id}"
    if entry.kind == "taken":
        if entry.from_agent_id == me.id:
            return f"{name(entry.actor_id)} 接手了您的{where}"
        return None
    if entry.to_agent_id == me.id:
        return f"{name(entry.actor_id)} 把{where}转给了您{note}"
    if entry.from_agent_id == me.id:
        target = name(entry.to_agent_id) if entry.to_agent_id else f"{entry.group_name}组队列"
        return f"{name(entry.actor_id)} 把您的{where}转给了{target}{note}"
    return None


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
HISTORY_PAGE = 50


def safe_next(request: Request, default: str) -> str:
    """Where a form goes back to (``next``: a path of this console only)."""
    value = str((request.form or {}).get("next") or "")
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


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
    """Closed conversations, newest first, every one of them over pages."""
    me = current_agent(request)
    try:
        page = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page = 1
    visible_to = None if me.is_admin else (me.id, list(me.groups))
    closed, total = get_handoff_store().closed_page(
        (page - 1) * HISTORY_PAGE, HISTORY_PAGE, visible_to
    )
    names = agents_by_id()
    rows = [
        row
        | {
            "note": shown(me, r.note),
            "closed_at": r.closed_at,
            "agent": names[r.agent_id].display_name if r.agent_id in names else "",
        }
        for r, row in zip(closed, items_for(me, closed), strict=True)
    ]
    pages = max(1, -(-total // HISTORY_PAGE))
    return render(request, "history.html", rows=rows, page=page, pages=pages, total=total)


async def conversation_context(request: Request, me: Agent, handoff: HandoffRequest) -> dict:
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
    profile = get_customer_store().get(handoff.sender_id)
    if not profile.nickname:
        nickname = nickname_in(events)
        if nickname:
            profile = replace(profile, nickname=nickname)
    past = [r for r in get_handoff_store().for_sender(handoff.sender_id) if r.id != handoff.id]
    return {
        "h": handoff,
        "info": item(handoff, names, profile=profile),
        "lines": lines_for(me, events) + log_lines(me, handoff.id, names),
        "paused": paused,
        "panel": panel,
        "profile": profile,
        "profile_note": shown(me, profile.note),
        "all_tags": customer_tags(),
        "past": [
            {
                "id": r.id,
                "created_at": r.created_at,
                "status_label": labels.STATUSES.get(r.status, r.status),
                "reason": labels.reason(r.reason),
                "note": shown(me, r.note),
            }
            for r in past
        ],
        "contacts": [{"kind": c["kind"], "value": shown_contact(me, c)} for c in panel.contacts],
        "note": shown(me, handoff.note),
        "slots": [
            (labels.SLOTS.get(k, k), shown(me, v))
            for k, v in (handoff.summary.get("slots") or {}).items()
            if k != "order_id"
        ],
        "quick_replies": [fill(q, reply_values(profile, settings)) for q in settings.quick_replies],
        "can_act": can_act(me, handoff),
        "holder": holder_of(handoff, names),
        "held_by_other": held_by_other(me, handoff),
        "groups": settings.groups,
        "agents": [a for a in names.values() if a.active and a.id != me.id],
        "error": error,
        "max_reply": MAX_REPLY_CHARS,
    }


def reply_values(profile: CustomerProfile, settings: Any) -> dict[str, str]:
    """What quick replies' placeholders stand for in this conversation."""
    from xiaoer.core.config import get_settings

    shop = get_settings().shop or {}
    return {
        "nickname": profile.nickname or "亲",
        "shop_name": str(shop.get("name", "")),
        "bot_name": str(shop.get("bot_name", "店小二")),
        "service_hours": settings.hours_text,
    }


def nickname_in(events: list[dict[str, Any]]) -> str:
    """The latest nickname a Douyin event carried (message metadata)."""
    for event in reversed(events):
        if event.get("event") == "user":
            value = str((event.get("metadata") or {}).get("nickname") or "").strip()
            if value:
                return value[:40]
    return ""


def log_lines(me: Agent, handoff_id: int, names: dict[int, Agent]) -> list[ChatLine]:
    """The chat's own log as lines: internal notes and who took / transferred it."""
    out: list[ChatLine] = []
    for e in get_activity_store().entries(handoff_id):
        at = parse_time(e.at)
        ts = at.timestamp() if at else 0.0
        when = at.strftime("%m-%d %H:%M") if at else ""
        actor = names.get(e.actor_id or 0)
        who = actor.display_name if actor else "系统"
        note = shown(me, e.note)
        if e.kind == "note":
            out.append(ChatLine("note", note, when, ts, agent_name=who))
            continue
        if e.kind == "taken":
            text = f"{who} 接待了会话"
        elif e.kind in ("transferred", "reassigned"):
            target = names.get(e.to_agent_id or 0)
            where = target.display_name if target else f"{e.group_name or '原技能组'}队列"
            text = f"{who} 把会话转给了 {where}" + (f"：{note}" if note else "")
        else:
            continue
        out.append(ChatLine("system", text, when, ts))
    return out


def _ordered(lines: list[ChatLine]) -> list[ChatLine]:
    return sorted(lines, key=lambda line: line.timestamp)


@bp.get("/handoffs/<request_id:int>")
@login_required()
async def conversation_page(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    ctx = await conversation_context(request, me, handoff)
    ctx["lines"] = _ordered(ctx["lines"])
    return render(request, "conversation.html", here=f"/handoffs/{handoff.id}", **ctx)


@bp.get("/handoffs/<request_id:int>/pane")
@login_required()
async def conversation_pane(request: Request, request_id: int) -> HTTPResponse:
    """The conversation without the page around it (the workspace swaps it in)."""
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    ctx = await conversation_context(request, me, handoff)
    ctx["lines"] = _ordered(ctx["lines"])
    return render(
        request, "_conversation.html", here=f"/workspace?chat={handoff.id}", in_pane=True, **ctx
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
    """Server-sent events: the queue (with the agent's own chats and unread counts), sent
    again whenever it changes, and ``notice`` events for transfers that concern the agent.
    The session is checked again before every event and every few seconds: once the agent
    has logged out, been disabled or the session has expired, an ``auth`` event tells the
    page to go to the login and the stream ends."""
    me = current_agent(request)
    store = get_handoff_store()
    activity = get_activity_store()
    log_cursor = activity.last_log_id()
    stream = await request.respond(
        content_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    last_revision = ""
    idle = since_check = 0.0
    try:
        await stream.send("retry: 1000\n\n")
        while True:
            revision = store.revision() + activity.reads_revision(me.id)
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
                names = agents_by_id()
                for entry in activity.entries_after(log_cursor):
                    log_cursor = entry.id
                    text = notice_for(me, entry, names)
                    if text:
                        data = json.dumps(
                            {"id": entry.id, "handoff_id": entry.handoff_id, "text": text},
                            ensure_ascii=False,
                        )
                        await stream.send(f"event: notice\ndata: {data}\n\n")
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
    names = agents_by_id()
    lines = _ordered(lines_for(me, tracker.get("events") or []) + log_lines(me, handoff.id, names))
    unread = get_activity_store().unread(me.id, [handoff.id]).get(handoff.id, 0)
    return response.json(
        {
            "status": handoff.status,
            "status_label": labels.STATUSES.get(handoff.status, handoff.status),
            "paused": bool(tracker.get("paused")),
            "holder": holder_of(handoff, names),
            "holder_id": handoff.agent_id if handoff.status == "active" else None,
            "mine": handoff.status == "active" and handoff.agent_id == me.id,
            "can_act": can_act(me, handoff),
            "unread": unread,
            "lines": [line.__dict__ for line in lines],
        }
    )


@bp.post("/api/handoffs/<request_id:int>/read")
@login_required()
async def mark_read(request: Request, request_id: int) -> HTTPResponse:
    """The agent has read the conversation up to now (clears its unread count)."""
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    seen = get_activity_store().mark_read(handoff.id, me.id)
    return response.json({"ok": True, "seen": seen})


def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = request.json if request.json is not None else {}
    except Exception:  # noqa: BLE001 - sanic raises on invalid JSON
        return None
    return body if isinstance(body, dict) else None


def reply_refusal(me: Agent, handoff: HandoffRequest, override: bool) -> HTTPResponse | None:
    """Why this agent may not write in the conversation now (None: they may)."""
    if handoff.status == "closed":
        return response.json({"error": "closed", "message": "该会话已结束，不能再回复"}, status=409)
    holder = holder_of(handoff, agents_by_id())
    if not can_act(me, handoff):
        return response.json(
            {"error": "taken", "message": f"该会话正由{holder}接待", "holder": holder},
            status=409,
        )
    if held_by_other(me, handoff) and not override:
        # an admin writing in someone else's chat: only after confirming it
        return response.json(
            {
                "error": "held_by_other",
                "message": f"该会话正由{holder}接待，确认介入后才能回复",
                "holder": holder,
            },
            status=409,
        )
    return None


def _text_field(
    body: dict[str, Any] | None, *, empty: str, too_long: str
) -> tuple[str, HTTPResponse | None]:
    """The ``text`` of a JSON body an agent wrote, or the 400 / 413 to answer instead."""
    text = str((body or {}).get("text") or "").strip()
    if not text:
        return text, response.json({"error": "empty", "message": empty}, status=400)
    if len(text) > MAX_REPLY_CHARS:
        message = f"{too_long} {MAX_REPLY_CHARS} 个字"
        return text, response.json({"error": "too_long", "message": message}, status=413)
    return text, None


@bp.post("/api/handoffs/<request_id:int>/reply")
@login_required()
async def reply(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    body = _json_body(request)
    if body is None:
        return response.json(
            {"error": "invalid_body", "message": "请求体必须是 JSON 对象"}, status=400
        )
    text, bad = _text_field(body, empty="回复内容不能为空", too_long="回复最长")
    if bad is not None:
        return bad
    refusal = reply_refusal(me, handoff, bool(body.get("override")))
    if refusal is not None:
        return refusal
    desk = request.app.ctx.desk
    try:
        if handoff.status == "waiting":
            await take_and_log(desk, handoff, me)
        await desk.reply(handoff, me.id, me.display_name, text)
    except RasaApiError as exc:
        return response.json({"error": "rasa", "message": str(exc)}, status=502)
    get_activity_store().mark_read(handoff.id, me.id)  # answering means having read it
    logger.info("agent %s replied in handoff %s", me.id, handoff.id)
    return response.json({"ok": True})


async def take_and_log(desk: Any, handoff: HandoffRequest, me: Agent) -> bool:
    taken = bool(await desk.take(handoff, me.id))
    if taken and handoff.status == "waiting":
        get_activity_store().log(handoff.id, "taken", actor_id=me.id, to_agent_id=me.id)
    return taken


@bp.post("/api/handoffs/<request_id:int>/notes")
@login_required()
async def add_internal_note(request: Request, request_id: int) -> HTTPResponse:
    """An internal note inside the chat: for the agents only, never sent to the customer."""
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    text, bad = _text_field(_json_body(request), empty="备注不能为空", too_long="备注最长")
    if bad is not None:
        return bad
    get_activity_store().log(handoff.id, "note", actor_id=me.id, note=text)
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
        holder = holder_of(handoff, agents_by_id())
        return (
            me,
            None,
            _error_page(request, f"该会话已由{holder}接待，您不能再接待或操作它。", 409),
        )
    return me, handoff, None


def _error_page(request: Request, message: str, status: int = 502) -> HTTPResponse:
    if wants_json(request):
        return response.json({"error": "refused", "message": message}, status=status)
    return render(
        request,
        "error.html",
        status=status,
        title="操作没有完成",
        message=message,
        back=safe_next(request, "/"),
    )


@bp.post("/handoffs/<request_id:int>/take")
@login_required()
async def take(request: Request, request_id: int) -> HTTPResponse:
    me, handoff, error = await _act(request, request_id)
    if error or handoff is None:
        return error or _not_found(request)
    if handoff.status == "closed":
        return _error_page(request, "该会话已结束", 409)
    try:
        if not await take_and_log(request.app.ctx.desk, handoff, me):
            fresh = get_handoff_store().get(handoff.id) or handoff
            holder = holder_of(fresh, agents_by_id()) or "其他客服"
            return _error_page(request, f"该会话已由{holder}接待", 409)
    except RasaApiError as exc:
        return _error_page(request, str(exc))
    return response.redirect(safe_next(request, f"/handoffs/{handoff.id}"))


async def _finish(request: Request, request_id: int, announce: bool) -> HTTPResponse:
    me, handoff, error = await _act(request, request_id)
    if error or handoff is None:
        return error or _not_found(request)
    back = "/workspace" if safe_next(request, "/").startswith("/workspace") else "/"
    if handoff.status == "closed":
        return response.redirect(back)
    note = str((request.form or {}).get("note") or "").strip()[:1000]
    try:
        await request.app.ctx.desk.hand_back(handoff, note, announce=announce)
    except RasaApiError as exc:
        return _error_page(request, str(exc))
    logger.info(
        "agent %s %s handoff %s", me.id, "handed back" if announce else "closed", handoff.id
    )
    return response.redirect(back)


@bp.post("/handoffs/<request_id:int>/handback")
@login_required()
async def hand_back(request: Request, request_id: int) -> HTTPResponse:
    return await _finish(request, request_id, announce=True)


@bp.post("/handoffs/<request_id:int>/close")
@login_required()
async def close(request: Request, request_id: int) -> HTTPResponse:
    return await _finish(request, request_id, announce=False)


@bp.post("/handoffs/<request_id:int>/transfer")
@login_required()
async def transfer(request: Request, request_id: int) -> HTTPResponse:
    """Hand the conversation to a skill group's queue or straight to a colleague, with a
    note: the holder (or anyone while it waits) and admins. Both agents hear it live."""
    me, handoff, error = await _act(request, request_id)
    if error or handoff is None:
        return error or _not_found(request)
    return await _transfer(request, me, handoff, kind="transferred")


@bp.post("/handoffs/<request_id:int>/reassign")
@login_required(role="admin")
async def reassign(request: Request, request_id: int) -> HTTPResponse:
    """A supervisor's transfer (any open conversation)."""
    handoff = get_handoff_store().get(request_id)
    if handoff is None:
        return _not_found(request)
    return await _transfer(request, current_agent(request), handoff, kind="reassigned")


async def _transfer(
    request: Request, me: Agent, handoff: HandoffRequest, kind: str
) -> HTTPResponse:
    form = request.form or {}
    group = str(form.get("group") or "").strip()
    agent_value = str(form.get("agent_id") or "").strip()
    agent_id = int(agent_value) if agent_value.isdigit() else None
    note = str(form.get("note") or "").strip()[:1000]
    if group and group not in handoff_settings().groups:
        return _error_page(request, f"没有技能组“{group}”", 400)
    target = get_agent_store().get(agent_id) if agent_id else None
    if agent_id and (target is None or not target.active):
        return _error_page(request, "没有这个客服账号", 400)
    if not group and target is None:
        return _error_page(request, "请选择要转给的技能组或同事", 400)
    if not get_handoff_store().reassign(handoff.id, group=group or None, agent_id=agent_id):
        return _error_page(request, "该会话已结束，不能再转接", 409)
    get_activity_store().log(
        handoff.id,
        kind,
        actor_id=me.id,
        from_agent_id=handoff.agent_id if handoff.status == "active" else None,
        to_agent_id=agent_id,
        group=group or handoff.group_name,
        note=note,
    )
    if target is not None:
        try:
            await request.app.ctx.desk.pause(handoff.sender_id)
        except RasaApiError as exc:
            return _error_page(request, str(exc))
    logger.info("agent %s %s handoff %s", me.id, kind, handoff.id)
    if target is not None and target.id == me.id:
        return response.redirect(safe_next(request, f"/handoffs/{handoff.id}"))
    visible = can_see_handoff(me, get_handoff_store().get(handoff.id) or handoff)
    default = f"/handoffs/{handoff.id}" if visible else "/"
    next_path = safe_next(request, default)
    if next_path.startswith("/workspace"):
        return response.redirect("/workspace")
    return response.redirect(next_path if visible else "/")


@bp.post("/customers/profile")
@login_required()
async def save_profile(request: Request) -> HTTPResponse:
    """Tags and the customer's note (kept across conversations), from a conversation."""
    me = current_agent(request)
    form = request.form or {}
    value = str(form.get("handoff_id") or "")
    handoff = _load(me, int(value)) if value.isdigit() else None
    if handoff is None:
        return _not_found(request)
    tags = form.getlist("tags") if hasattr(form, "getlist") else []
    note = str(form.get("note") or "")
    store = get_customer_store()
    saved = store.get(handoff.sender_id).note
    if not full_contacts(me) and note.strip() == shown(me, saved).strip():
        note = saved  # the masked text this agent saw, unchanged: keep the full one
    store.update(handoff.sender_id, me.username, tags=list(tags or []), note=note)
    return response.redirect(safe_next(request, f"/handoffs/{handoff.id}"))


@bp.post("/me/shift")
@login_required()
async def toggle_shift(request: Request) -> HTTPResponse:
    """An agent starts or ends their shift (the wait estimate counts agents on shift)."""
    me = current_agent(request)
    on_shift = str((request.form or {}).get("on_shift") or "") == "1"
    get_agent_store().update(me.id, on_shift=on_shift)
    return response.redirect("/")
