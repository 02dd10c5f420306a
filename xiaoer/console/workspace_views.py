"""我的会话 (the agent's workspace), search across conversations, customers, orders and
leads, and images agents send.

* ``/workspace``: the agent's open chats in a side list (unread counts, the latest
  customer message, live over the queue's event stream) and the waiting ones they may
  take; a chat opens in the pane without a page load (``/handoffs/<id>/pane``).
* ``/search?q=``: conversations (customer, order, summary, messages during the handoff),
  customers (nickname, tags, notes), the shop's order of that number, leads (name,
  contacts, messages); phones and WeChat ids masked for roles that may not see them.
* ``POST /api/handoffs/<id>/image``: an image the agent uploads is checked (PNG, JPEG,
  GIF, WebP by content, at most 5 MB), stored in the data folder (``media/``) under a
  random name and sent through the customer's channel as an image message pointing at
  ``/media/<name>`` (``console.public_url`` in xiaoer.yml is the address customers reach
  the console at; default the address the agent used).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.access import can_see_handoff, shown, shown_contact, visible_leads
from xiaoer.console.queue_views import (
    _load,
    _not_found,
    items_for,
    queue_for,
    reply_refusal,
    take_and_log,
)
from xiaoer.console.web import console_settings, current_agent, login_required, render
from xiaoer.core.config import get_settings
from xiaoer.handoff.activity import get_activity_store
from xiaoer.handoff.customers import get_customer_store
from xiaoer.handoff.desk import RasaApiError
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop.backend import BackendError
from xiaoer.text.parsing import parse_order_id

logger = logging.getLogger(__name__)
bp = Blueprint("console_workspace")

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_QUERY_CHARS = 64
IMAGE_TYPES = {  # magic bytes -> (extension, content type)
    b"\x89PNG\r\n\x1a\n": ("png", "image/png"),
    b"\xff\xd8\xff": ("jpg", "image/jpeg"),
    b"GIF87a": ("gif", "image/gif"),
    b"GIF89a": ("gif", "image/gif"),
}
MEDIA_NAME = re.compile(r"^[A-Za-z0-9_-]{20,64}\.(png|jpg|gif|webp)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


@bp.get("/workspace")
@login_required()
async def workspace_page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    chat = request.args.get("chat") or ""
    return render(
        request,
        "workspace.html",
        queue=queue_for(me),
        open_chat=int(chat) if chat.isdigit() else None,
    )


# --- search ---------------------------------------------------------------------------------
def snippet(text: str, query: str, width: int = 24) -> str:
    at = text.find(query)
    if at < 0:
        return ""
    start = max(0, at - width)
    return ("…" if start else "") + text[start : at + len(query) + width].replace("\n", " ")


def normalised(query: str) -> str:
    """A phone typed with spaces or dashes is searched as digits."""
    compact = re.sub(r"[\s-]", "", query)
    return compact if compact.isdigit() else query.strip()


@bp.get("/search")
@login_required()
async def search_page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    query = normalised(str(request.args.get("q") or ""))[:MAX_QUERY_CHARS]
    results: dict[str, Any] = {"conversations": [], "customers": [], "orders": [], "leads": []}
    error = ""
    if len(query) >= 2:
        store = get_handoff_store()
        found = [r for r in store.search(query) if can_see_handoff(me, r)]
        rows = items_for(me, found)
        said = get_activity_store().search_texts([r.id for r in found])
        for r, row in zip(found, rows, strict=True):
            text = "\n".join(
                [
                    said.get(r.id, ""),
                    r.details,
                    json.dumps(r.summary, ensure_ascii=False),
                    r.note,
                    r.sender_id,
                ]
            )
            row["match"] = shown(me, snippet(text, query))
            row["customer"] = shown(me, row["customer"])
        results["conversations"] = rows
        profiles = get_customer_store().search(query)
        latest = {}
        for p in profiles:
            mine = [r for r in store.for_sender(p.sender_id) if can_see_handoff(me, r)]
            if mine:
                latest[p.sender_id] = mine[0].id
        results["customers"] = [
            {
                "nickname": p.nickname or p.sender_id[:24],
                "tags": p.tags,
                "note": shown(me, p.note)[:80],
                "handoff_id": latest[p.sender_id],
            }
            for p in profiles
            if p.sender_id in latest
        ]
        order_id = parse_order_id(query)
        if order_id:
            from xiaoer.shop.factory import get_backend

            try:
                order = await get_backend().get_order(order_id)
            except BackendError:
                order, error = None, "店铺系统暂时无法查询订单，请稍后再试"
            if order is not None:
                results["orders"].append(
                    {
                        "order_id": order.order_id,
                        "status": order.status.words,
                        "summary": order.summary,
                        "total": order.total,
                        "created_at": order.created_at.strftime("%m-%d %H:%M"),
                        "conversations": [row["id"] for row in rows if row["order_id"] == order_id],
                    }
                )
        from xiaoer.leads import CATEGORY_LABELS, STATUS_LABELS, get_lead_store

        results["leads"] = [
            {
                "id": lead.id,
                "name": shown(me, lead.name) or "—",
                "category": CATEGORY_LABELS.get(lead.category, lead.category),
                "status": STATUS_LABELS.get(lead.status, lead.status),
                "contacts": [shown_contact(me, c) for c in lead.contacts],
            }
            for lead in visible_leads(me, get_lead_store().search(query))
        ]
    return render(
        request,
        "search.html",
        q=query,
        results=results,
        error=error,
        too_short=0 < len(query) < 2,
        total=sum(len(v) for v in results.values()),
    )


# --- images ---------------------------------------------------------------------------------
def media_dir() -> Path:
    path = get_settings().data_dir / "media"
    path.mkdir(mode=0o750, parents=True, exist_ok=True)
    return path


def image_kind(data: bytes) -> tuple[str, str] | None:
    for magic, kind in IMAGE_TYPES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    return None


def public_base(request: Request) -> str:
    configured = str(console_settings().get("public_url") or "").rstrip("/")
    return configured or f"{request.scheme}://{request.host}"


@bp.post("/api/handoffs/<request_id:int>/image")
@login_required()
async def send_image(request: Request, request_id: int) -> HTTPResponse:
    me = current_agent(request)
    handoff = _load(me, request_id)
    if handoff is None:
        return _not_found(request)
    upload = request.files.get("image") if request.files else None
    if upload is None or not upload.body:
        return response.json({"error": "empty", "message": "请选择要发送的图片"}, status=400)
    if len(upload.body) > MAX_IMAGE_BYTES:
        return response.json({"error": "too_large", "message": "图片最大 5MB"}, status=413)
    kind = image_kind(upload.body)
    if kind is None:
        return response.json(
            {"error": "not_image", "message": "只能发送 JPG、PNG、GIF 或 WebP 图片"}, status=415
        )
    override = str((request.form or {}).get("override") or "") == "1"
    refusal = reply_refusal(me, handoff, override)
    if refusal is not None:
        return refusal
    name = f"{secrets.token_urlsafe(24)}.{kind[0]}"
    target = media_dir() / name
    target.write_bytes(upload.body)
    target.chmod(0o640)
    url = f"{public_base(request)}/media/{name}"
    desk = request.app.ctx.desk
    try:
        if handoff.status == "waiting":
            await take_and_log(desk, handoff, me)
        await desk.send_image(handoff, me.id, me.display_name, url)
    except RasaApiError as exc:
        return response.json({"error": "rasa", "message": str(exc)}, status=502)
    logger.info("agent %s sent an image in handoff %s", me.id, handoff.id)
    return response.json({"ok": True, "url": url})


@bp.get("/media/<name:str>")
async def media(request: Request, name: str) -> HTTPResponse:
    """Images agents sent: public (the customer's client fetches them), by random name."""
    if not MEDIA_NAME.match(name):
        return response.json({"error": "not_found"}, status=404)
    path = media_dir() / name
    if not path.is_file():
        return response.json({"error": "not_found"}, status=404)
    return await response.file(
        path,
        mime_type=CONTENT_TYPES[name.rsplit(".", 1)[1]],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
