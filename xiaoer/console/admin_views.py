"""Admin pages: agent accounts (roles, skill groups, shifts) and the merchant's handoff
settings (working hours, groups, quick replies, greeting scripts, permissions). The handoff
keywords are keyword rules now (xiaoer/console/keywords_views.py).

Settings are saved in ``console_settings`` of the project database and override xiaoer.yml; the
action server and the NLU read them at run time."""

from __future__ import annotations

import re
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.agents import AgentError, get_agent_store
from xiaoer.console.web import current_agent, login_required, render
from xiaoer.core.settings import PERMISSION_KEYS, get_settings_store, handoff_settings
from xiaoer.handoff.customers import customer_tags
from xiaoer.text.placeholders import (
    GREETING_PLACEHOLDERS,
    REPLY_PLACEHOLDERS,
    placeholder_error,
)

bp = Blueprint("console_admin", url_prefix="/admin")

PERMISSION_LABELS = {
    "cancel_paid_orders": "机器人可直接取消已付款未发货的订单",
    "change_address": "机器人可直接修改发货前的收货地址",
    "open_after_sales": "机器人可直接提交退货/退款/换货申请",
    "give_coupons": "机器人可告诉客户优惠码",
}
HM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_LINES = 50


def _getlist(form: Any, name: str) -> list[str]:
    values = form.getlist(name) if hasattr(form, "getlist") else form.get(name)
    return [str(v) for v in values or []]


def _lines(value: str | None, max_chars: int = 300) -> list[str]:
    out = [line.strip()[:max_chars] for line in (value or "").splitlines() if line.strip()]
    return list(dict.fromkeys(out))[:MAX_LINES]


def _agents_page(
    request: Request,
    error: str = "",
    notice: str = "",
    status: int = 200,
    new: dict[str, Any] | None = None,
) -> HTTPResponse:
    """``new``: what the admin typed into the new-agent form, shown again after an error
    (never the password)."""
    return render(
        request,
        "admin_agents.html",
        status=status,
        agents=get_agent_store().list_agents(),
        groups=handoff_settings().groups,
        error=error,
        notice=notice,
        new=new or {"username": "", "display_name": "", "role": "agent", "groups": []},
    )


@bp.get("/agents")
@login_required(role="admin")
async def agents_page(request: Request) -> HTTPResponse:
    return _agents_page(request, notice=request.args.get("saved") and "已保存" or "")


@bp.post("/agents")
@login_required(role="admin")
async def create_agent(request: Request) -> HTTPResponse:
    form = request.form or {}
    groups = [g for g in _getlist(form, "groups") if g in handoff_settings().groups]
    try:
        get_agent_store().create(
            str(form.get("username") or ""),
            str(form.get("password") or ""),
            display_name=str(form.get("display_name") or ""),
            role=str(form.get("role") or "agent"),
            groups=groups,
        )
    except AgentError as exc:
        typed = {
            "username": str(form.get("username") or ""),
            "display_name": str(form.get("display_name") or ""),
            "role": str(form.get("role") or "agent"),
            "groups": groups,
        }
        return _agents_page(request, error=str(exc), status=400, new=typed)
    return response.redirect("/admin/agents?saved=1")


@bp.post("/agents/<agent_id:int>")
@login_required(role="admin")
async def update_agent(request: Request, agent_id: int) -> HTTPResponse:
    form = request.form or {}
    store = get_agent_store()
    groups = [g for g in _getlist(form, "groups") if g in handoff_settings().groups]
    try:
        store.update(
            agent_id,
            display_name=str(form.get("display_name") or ""),
            role=str(form.get("role") or "agent"),
            groups=groups,
            on_shift=form.get("on_shift") == "1",
            active=form.get("active") == "1",
        )
        password = str(form.get("password") or "")
        if password:
            store.set_password(agent_id, password)
            request.app.ctx.sessions.delete_for_agent(agent_id)
        agent = store.get(agent_id)
        if agent is not None and not agent.active:
            request.app.ctx.sessions.delete_for_agent(agent_id)
    except AgentError as exc:
        return _agents_page(request, error=str(exc), status=400)
    return response.redirect("/admin/agents?saved=1")


SEGMENT_LABELS = {
    "new_follower": "新粉丝",
    "new_customer": "新客户",
    "returning_customer": "老客户",
}
PERIOD_LABELS = {"day": "白天", "night": "夜间"}


def file_greeting_scripts() -> dict[str, dict[str, list[str]]]:
    """The greeting scripts of xiaoer.yml (``douyin.greeting.scripts``) over the defaults."""
    from xiaoer.core.config import get_settings
    from xiaoer.douyin.greetings import GreetingSettings

    return GreetingSettings.from_section(get_settings().section("douyin")).scripts


def greeting_scripts() -> dict[str, dict[str, list[str]]]:
    """The greeting scripts in force: admin edits over xiaoer.yml over the defaults."""
    from xiaoer.douyin.greetings import greeting_settings

    return greeting_settings().scripts


def settings_values(form: Any | None = None) -> dict[str, Any]:
    """The settings form's fields: what the admin typed (after an error), else the settings
    in force."""
    s = handoff_settings()
    if form is None:
        values = {
            "start": s.start.strftime("%H:%M"),
            "end": s.end.strftime("%H:%M"),
            "reannounce_after_minutes": f"{s.reannounce_after_minutes:g}",
            "minutes_per_case": f"{s.minutes_per_case:g}",
            "keywords": "\n".join(s.keywords),
            "groups": "\n".join(s.groups),
            "quick_replies": "\n".join(s.quick_replies),
            "customer_tags": "\n".join(customer_tags()),
            "permissions": {k: s.permissions.get(k, False) for k in PERMISSION_KEYS},
        }
        for name, _label, variants in _greeting_fields():
            values[name] = "\n".join(variants)
        return values
    values = {
        k: str(form.get(k) or "")
        for k in (
            "start", "end", "reannounce_after_minutes", "minutes_per_case", "keywords",
            "groups", "quick_replies", "customer_tags",
        )
    }  # fmt: skip
    values["permissions"] = {k: form.get(f"perm_{k}") == "1" for k in PERMISSION_KEYS}
    for name, _label, _variants in _greeting_fields():
        values[name] = str(form.get(name) or "")
    return values


def _greeting_fields() -> list[tuple[str, str, list[str]]]:
    return [
        (
            f"greet_{seg}_{period}",
            f"{SEGMENT_LABELS.get(seg, seg)} · {PERIOD_LABELS.get(period, period)}",
            variants,
        )
        for seg, by_period in greeting_scripts().items()
        for period, variants in by_period.items()
    ]


def _settings_page(
    request: Request,
    error: str = "",
    notice: str = "",
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTTPResponse:
    s = handoff_settings()
    form = request.form if request.method == "POST" else None
    return render(
        request,
        "admin_settings.html",
        status=status,
        s=s,
        v=settings_values(form),
        permissions=[(k, PERMISSION_LABELS[k]) for k in PERMISSION_KEYS],
        intent_groups=s.intent_groups,
        greetings=[(name, label) for name, label, _ in _greeting_fields()],
        greeting_placeholders=GREETING_PLACEHOLDERS,
        reply_placeholders=REPLY_PLACEHOLDERS,
        error=error or ("有几处需要修改，见下方标红的说明；您填写的内容都还在" if errors else ""),
        errors=errors or {},
        notice=notice,
    )


def check_placeholders(form: Any) -> dict[str, str]:
    """Field -> what is wrong with its placeholders (greetings, quick replies)."""
    errors: dict[str, str] = {}
    for name, _label, _variants in _greeting_fields():
        for line in _lines(form.get(name)):
            problem = placeholder_error(line, GREETING_PLACEHOLDERS)
            if problem:
                errors[name] = problem
                break
    for line in _lines(form.get("quick_replies")):
        problem = placeholder_error(line, REPLY_PLACEHOLDERS)
        if problem:
            errors["quick_replies"] = problem
            break
    return errors


@bp.get("/settings")
@login_required(role="admin")
async def settings_page(request: Request) -> HTTPResponse:
    return _settings_page(request, notice=request.args.get("saved") and "已保存，立即生效" or "")


@bp.post("/settings")
@login_required(role="admin")
async def save_settings(request: Request) -> HTTPResponse:
    form = request.form or {}
    me = current_agent(request)
    errors = check_placeholders(form)
    start, end = str(form.get("start") or "").strip(), str(form.get("end") or "").strip()
    if not (HM.match(start) and HM.match(end)):
        errors["hours"] = "工作时间格式应为 HH:MM（开始和结束相同表示全天）"
    groups = _lines(form.get("groups"), 10)
    if not groups:
        errors["groups"] = "至少需要一个技能组"
    reannounce = per_case = 0.0
    try:
        reannounce = float(form.get("reannounce_after_minutes") or 0)
        per_case = float(form.get("minutes_per_case") or 0)
    except ValueError:
        errors["minutes"] = "分钟数必须是数字"
    if "minutes" not in errors and not (1 <= reannounce <= 120 and 0.5 <= per_case <= 60):
        errors["minutes"] = "超时提醒需在 1-120 分钟之间，每单处理时长需在 0.5-60 分钟之间"
    if errors:
        return _settings_page(request, status=400, errors=errors)
    values: dict[str, Any] = {
        "working_hours": {"start": start, "end": end},
        "groups": groups,
        "quick_replies": _lines(form.get("quick_replies")),
        "customer_tags": _lines(form.get("customer_tags"), 20),
        # only what differs from xiaoer.yml, so later edits of the file still count
        "greeting_scripts": {
            seg: changed
            for seg, by_period in file_greeting_scripts().items()
            if (
                changed := {
                    period: lines
                    for period, base in by_period.items()
                    if (lines := _lines(form.get(f"greet_{seg}_{period}"))) and lines != base
                }
            )
        },
        "permissions": {k: form.get(f"perm_{k}") == "1" for k in PERMISSION_KEYS},
        "reannounce_after_minutes": reannounce,
        "minutes_per_case": per_case,
    }
    store = get_settings_store()
    for key, value in values.items():
        store.save(key, value, by=me.username)
    return response.redirect("/admin/settings?saved=1")
