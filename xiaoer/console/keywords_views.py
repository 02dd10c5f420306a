"""Console pages of the keyword rules (关键词回复), admins only.

``/keywords``: the rules in matching order (switch on/off, edit, delete) and the "test a
sentence" box (``?test=...&channel=...``: which rule matches and why each other does not);
``/keywords/new`` and ``/keywords/<id>``: the form. A refused save shows each error next to
its field and keeps every input. Saved rules apply within seconds (xiaoer/keywords).
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render
from xiaoer.keywords import RuleError, explain, get_keyword_store
from xiaoer.keywords.store import ACTIONS, CHANNELS, HANDOFF_REASONS, MODES, KeywordRule

bp = Blueprint("console_keywords", url_prefix="/keywords")
NAV_ITEMS.append(("/keywords", "关键词回复", "admin"))

FIELDS = (
    "name", "mode", "keywords", "pattern", "exclude", "action", "reply_text", "buttons",
    "image_url", "handoff_reason", "priority", "channel", "window_start", "window_end",
    "negation", "enabled",
)  # fmt: skip
NEW_RULE = {
    "mode": "contains",
    "action": "reply",
    "handoff_reason": "complaint",
    "priority": "50",
    "negation": "1",
    "enabled": "1",
}


def _form(request: Request) -> dict[str, str]:
    form = request.form or {}
    values = {k: str(form.get(k) or "") for k in FIELDS}
    return values


def _choices() -> dict[str, Any]:
    return {
        "modes": list(MODES.items()),
        "actions": list(ACTIONS.items()),
        "reasons": list(HANDOFF_REASONS.items()),
        "channels": list(CHANNELS.items()),
        "mode_labels": MODES,
        "reason_labels": HANDOFF_REASONS,
        "channel_labels": CHANNELS,
    }


def _edit_page(
    request: Request,
    values: dict[str, str],
    rule: KeywordRule | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTTPResponse:
    return render(
        request,
        "keywords_edit.html",
        status=status,
        rule=rule,
        v=values,
        errors=errors or {},
        **_choices(),
    )


@bp.get("/")
@login_required(role="admin")
async def index(request: Request) -> HTTPResponse:
    store = get_keyword_store()
    rules = store.all(fresh=True)
    sentence = (request.args.get("test") or "").strip()[:500]
    channel = request.args.get("channel") or ""
    result = explain(sentence, channel or None, rules=rules) if sentence else None
    return render(
        request,
        "keywords.html",
        rules=rules,
        test=sentence,
        test_channel=channel if channel in CHANNELS else "",
        result=result,
        notice={"saved": "已保存，几秒内生效", "deleted": "已删除"}.get(
            request.args.get("done") or "", ""
        ),
        **_choices(),
    )


@bp.get("/new")
@login_required(role="admin")
async def new_rule(request: Request) -> HTTPResponse:
    values = {k: "" for k in FIELDS} | NEW_RULE
    if request.args.get("keyword"):
        values["keywords"] = str(request.args.get("keyword"))[:30]
    return _edit_page(request, values)


@bp.post("/new")
@login_required(role="admin")
async def create_rule(request: Request) -> HTTPResponse:
    values = _form(request)
    try:
        rule = get_keyword_store().add(values, by=current_agent(request).username)
    except RuleError as exc:
        return _edit_page(request, values, errors=exc.errors, status=400)
    return response.redirect(f"/keywords?done=saved#rule-{rule.id}")


@bp.get("/<rule_id:int>")
@login_required(role="admin")
async def edit_rule(request: Request, rule_id: int) -> HTTPResponse:
    rule = get_keyword_store().get(rule_id)
    if rule is None:
        return render(
            request, "error.html", status=404, title="没有这条规则", message="规则不存在或已删除"
        )
    return _edit_page(request, rule.as_form(), rule)


@bp.post("/<rule_id:int>")
@login_required(role="admin")
async def update_rule(request: Request, rule_id: int) -> HTTPResponse:
    store = get_keyword_store()
    rule = store.get(rule_id)
    if rule is None:
        return render(
            request, "error.html", status=404, title="没有这条规则", message="规则不存在或已删除"
        )
    values = _form(request)
    try:
        store.update(rule_id, values, by=current_agent(request).username)
    except RuleError as exc:
        return _edit_page(request, values, rule, errors=exc.errors, status=400)
    return response.redirect(f"/keywords?done=saved#rule-{rule_id}")


@bp.post("/<rule_id:int>/switch")
@login_required(role="admin")
async def switch_rule(request: Request, rule_id: int) -> HTTPResponse:
    on = (request.form or {}).get("enabled") == "1"
    if not get_keyword_store().set_enabled(rule_id, on, by=current_agent(request).username):
        return render(
            request, "error.html", status=404, title="没有这条规则", message="规则不存在或已删除"
        )
    return response.redirect(f"/keywords?done=saved#rule-{rule_id}")


@bp.post("/<rule_id:int>/delete")
@login_required(role="admin")
async def delete_rule(request: Request, rule_id: int) -> HTTPResponse:
    get_keyword_store().remove(rule_id)
    return response.redirect("/keywords?done=deleted")
