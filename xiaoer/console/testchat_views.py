"""Console page of the test chat (测试与调整), admins only: the merchant chats with the real
assistant as a customer and sees beside each answer what produced it.

Messages go to the Rasa server's sandbox channel (xiaoer/channels/sandbox.py) with the API
token: the conversation is ``test-chat:<agent id>-<random>``, never a lead, a handoff or a
customer in a report (xiaoer.core.senders.is_sandbox). Each explanation names the intent
and its confidence, the keyword rule (link to edit it), the knowledge-base entry (link to
edit it), the form and the actions with the policy that chose them.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render
from xiaoer.core.profile import bot_profile
from xiaoer.core.rasa_api import RasaApiError
from xiaoer.keywords.store import get_keyword_store
from xiaoer.knowledge import describe

logger = logging.getLogger(__name__)

bp = Blueprint("console_testchat", url_prefix="/testchat")
api = Blueprint("console_testchat_api", url_prefix="/api/testchat")
NAV_ITEMS.append(("/testchat", "测试与调整", "admin"))

POLICIES = {
    "RulePolicy": "规则（data/rules）",
    "MemoizationPolicy": "对话故事（data/stories）",
    "TEDPolicy": "对话模型预测",
}
MAX_CHARS = 2000


def new_session(agent_id: int) -> str:
    return f"{agent_id}-{secrets.token_hex(6)}"


def kb_entry(key: str | None) -> dict[str, Any] | None:
    """The knowledge-base entry behind a retrieval answer (``faq/kb12``, ``utter_faq/kb12``):
    ``xiaoer.knowledge.describe`` (id, question, answer, ``edit_url``…); None when it is no
    knowledge-base answer or the entry is gone."""
    if not key:
        return None
    try:
        return describe(key)
    except Exception:  # noqa: BLE001 - an explanation must never break the chat
        logger.exception("knowledge-base entry of %s unavailable", key)
        return None


def decorate(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn of the sandbox channel with what the merchant can follow: rule and entry
    labels with their edit links, policies in words."""
    rule_id = turn.get("keyword_rule")
    if rule_id:
        rule = get_keyword_store().get(int(rule_id))
        turn["rule"] = (
            {"id": rule.id, "label": rule.label, "url": f"/keywords/{rule.id}"}
            if rule
            else {"id": rule_id, "label": "（规则已删除）", "url": ""}
        )
    keys = [(turn.get("retrieval") or {}).get("key")]
    keys += [r.get("response") for r in turn.get("replies") or []]
    for key in keys:
        entry = kb_entry(key)
        if entry:
            turn["kb"] = {
                "id": entry.get("id"),
                "question": entry.get("question") or "",
                "url": entry.get("edit_url") or "",
            }
            break
    for action in turn.get("actions") or []:
        action["policy_label"] = POLICIES.get(
            str(action.get("policy") or "").replace("policy_", "").split("_", 1)[-1],
            action.get("policy") or "",
        )
    return turn


@bp.get("/")
@login_required(role="admin")
async def page(request: Request) -> HTTPResponse:
    me = current_agent(request)
    return render(
        request,
        "testchat.html",
        session=new_session(me.id),
        profile=bot_profile(),
    )


@api.post("/send")
@login_required(role="admin")
async def send(request: Request) -> HTTPResponse:
    me = current_agent(request)
    body = request.json if isinstance(request.json, dict) else {}
    text = str(body.get("text") or "").strip()
    session = str(body.get("session") or "")
    channel = str(body.get("channel") or "")
    if not text:
        return response.json({"error": "empty", "message": "请输入要测试的话"}, status=400)
    if len(text) > MAX_CHARS:
        return response.json({"error": "too_long", "message": "消息太长了"}, status=400)
    # each admin's test conversations are their own
    if not session.startswith(f"{me.id}-") or len(session) > 64:
        session = new_session(me.id)
    if channel not in ("", "rest", "douyin"):
        channel = ""
    try:
        result = await request.app.ctx.desk.rasa.sandbox_turn(session, text, channel)
    except RasaApiError as exc:
        return response.json({"error": "rasa", "message": str(exc)}, status=502)
    turns = [decorate(t) for t in result.get("turns") or []]
    return response.json(
        {"session": session, "messages": result.get("messages") or [], "turns": turns}
    )
