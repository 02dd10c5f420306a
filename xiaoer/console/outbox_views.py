"""Replies that have not reached the customer yet: the Douyin send API refused them or
was unreachable after retries. They stay in the Douyin outbox (xiaoer/douyin/store.py)
and are resent automatically, in order; agents see here who is waiting for which reply,
so that they can step in (e.g. answer from the Douyin app) when a send keeps failing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.web import NAV_ITEMS, login_required, render, wants_json
from xiaoer.core.logsafe import mask_pii
from xiaoer.douyin.store import get_douyin_store
from xiaoer.leads.export import mask_text

bp = Blueprint("outbox")
NAV_ITEMS.append(("/outbox", "待重发", None))
BEIJING = timezone(timedelta(hours=8))


def _rows() -> list[dict[str, object]]:
    rows = []
    for item in get_douyin_store().outbox_pending():
        rows.append(
            {
                "id": item.id,
                "sender_id": item.sender_id,
                "preview": mask_text(item.preview)[:200],
                "created_at": datetime.fromtimestamp(item.created_at, BEIJING).isoformat(),
                "attempts": item.attempts,
                "next_attempt_at": datetime.fromtimestamp(
                    item.next_attempt_at, BEIJING
                ).isoformat(),
                "last_error": mask_pii(item.last_error or ""),
            }
        )
    return rows


@bp.get("/outbox")
@login_required()
async def outbox(request: Request) -> HTTPResponse:
    rows = _rows()
    if wants_json(request):
        return response.json({"pending": rows})
    return render(request, "outbox.html", rows=rows)
