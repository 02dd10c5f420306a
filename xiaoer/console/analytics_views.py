"""The analytics dashboard of the console: cards, charts (Apache ECharts, served from
``/static/vendor``, installed from npm by scripts/assets.sh), a table beneath each chart,
CSV export of every table, and drill-down from a number to the conversations behind it.

Admins only (the shop's figures); customer text is shown through ``shown()`` like every
other page. The figures come from :func:`xiaoer.analytics.metrics.compute`, the same
dictionary ``xiaoer report --json`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.analytics import metrics
from xiaoer.analytics.export import CODE, csv_tables, to_csv
from xiaoer.analytics.store import analytics_conversations
from xiaoer.console import labels
from xiaoer.console.access import shown
from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render, wants_json
from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.db import get_database
from xiaoer.handoff.desk import RasaApiError, chat_lines

bp = Blueprint("analytics")
NAV_ITEMS.append(("/analytics", "数据分析", "admin"))

BUCKET_LABELS = {"hour": "按小时", "day": "按天", "week": "按周"}
OUTCOME_LABELS = {"automated": "机器人解决", "handoff": "转人工", "unresolved": "未解决"}
MAX_DAYS = 366


class BadRange(ValueError):
    pass


def presets(today: date) -> list[tuple[str, date, date]]:
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    return [
        ("今天", today, today),
        ("昨天", today - timedelta(days=1), today - timedelta(days=1)),
        ("近7天", today - timedelta(days=6), today),
        ("近30天", today - timedelta(days=29), today),
        ("本月", first, today),
        ("上月", last_month_end.replace(day=1), last_month_end),
    ]


def query_of(request: Request) -> dict[str, Any]:
    """The range, channel and bucket of the request (default: the last 30 days)."""
    today = now_beijing().date()
    try:
        day_from = (
            metrics.parse_day(request.args.get("from") or "")
            if request.args.get("from")
            else today - timedelta(days=29)
        )
        day_to = (
            metrics.parse_day(request.args.get("to") or "") if request.args.get("to") else today
        )
        metrics.bounds(day_from, day_to)
    except ValueError as exc:
        raise BadRange("日期格式为 YYYY-MM-DD，且结束日期不能早于开始日期") from exc
    if (day_to - day_from).days >= MAX_DAYS:
        raise BadRange(f"一次最多查询 {MAX_DAYS} 天")
    bucket = request.args.get("bucket") or ("hour" if day_from == day_to else "day")
    if bucket not in metrics.BUCKETS:
        raise BadRange("粒度只能是 小时 / 天 / 周")
    channel = (request.args.get("channel") or "").strip()
    return {"day_from": day_from, "day_to": day_to, "bucket": bucket, "channel": channel}


def _qs(q: dict[str, Any], **more: str) -> str:
    values = {
        "from": q["day_from"].isoformat(),
        "to": q["day_to"].isoformat(),
        "bucket": q["bucket"],
    }
    if q["channel"]:
        values["channel"] = q["channel"]
    values.update(more)
    return urlencode(values)


def _bad(request: Request, message: str) -> HTTPResponse:
    if wants_json(request) or request.path.startswith("/api/"):
        return response.json({"error": "bad_range", "message": message}, status=400)
    return render(request, "error.html", status=400, title="查询条件不正确", message=message)


def _figures(q: dict[str, Any]) -> dict[str, Any]:
    return metrics.compute(
        get_database(), q["day_from"], q["day_to"], channel=q["channel"] or None, bucket=q["bucket"]
    )


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</``)."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _shown_figures(request: Request, q: Any) -> dict[str, Any]:
    """The figures of ``q`` with customers' words (fallback messages, CSAT comments)
    masked for the agent who looks (phones and WeChat ids, as everywhere in the console)."""
    figures = _figures(q)
    me = current_agent(request)
    for m in figures["fallback_messages"]:
        m["text"] = shown(me, m["text"])
    for c in figures["csat"]["comments"]:
        c["comment"] = shown(me, c["comment"])
    return figures


@bp.get("/analytics")
@login_required(role="admin")
async def dashboard(request: Request) -> HTTPResponse:
    try:
        q = query_of(request)
    except BadRange as exc:
        return _bad(request, str(exc))
    figures = _shown_figures(request, q)
    today = now_beijing().date()
    return render(
        request,
        "analytics.html",
        f=figures,
        rng=q,  # not "q": the layout's search box reads q
        qs=lambda **more: _qs(q, **more),
        presets=[(label, a.isoformat(), b.isoformat()) for label, a, b in presets(today)],
        channels=sorted(set(figures["channels"]) | {"rest", "douyin"}),
        channel_label=labels.channel,
        bucket_labels=BUCKET_LABELS,
        tables=csv_tables(figures),
        CODE=CODE,
        data_json=_json_for_script({**figures, "labels": chart_labels(figures)}),
        pct=lambda v: f"{v * 100:.1f}%",
        secs=_secs,
    )


def chart_labels(f: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The Chinese label of every code the charts show (from xiaoer.core.labels)."""
    intents = set(f["intents"]) | {r["name"] for r in f["csat"]["by_intent"]}
    for counts in f["intent_trend"].values():
        intents |= set(counts)
    return {
        "intents": {code: labels.intent(code) for code in intents},
        "reasons": {code: labels.reason(code) for code in f["handoff_reasons"]},
        "channels": {code: labels.channel(code) for code in f["channels"]},
        "after_sales": {
            code: labels.after_sales_reason(code) for code in f["after_sales"]["by_reason"]
        },
        "outcomes": OUTCOME_LABELS,
    }


def drill_title(what: str) -> str:
    """What a drill-down lists, in Chinese (``intent:ask_price`` → 意图：问价格)."""
    kind, _, code = what.partition(":")
    simple = {
        "all": "全部会话", "new": "新客户", "returning": "老客户", "automated": "机器人解决",
        "handoff": "转人工", "unresolved": "未解决", "fallback": "有未识别消息",
        "lead": "留下线索", "csat": "有满意度评价", "greeted": "主动问候", "case": "售后单",
    }  # fmt: skip
    if not code:
        return simple.get(kind, "会话")
    named: dict[str, tuple[str, Callable[[str], str]]] = {
        "intent": ("意图", labels.intent),
        "reason": ("转人工原因", labels.reason),
        "channel": ("渠道", labels.channel),
        "rating": ("评分", lambda c: f"{c}分"),
        "product": ("商品", str),
        "agent": ("客服编号", str),
        "bucket": ("时间", str),
    }
    title, label = named.get(kind, ("条件", str))
    return f"{title}：{label(code)}"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f}秒"
    if value < 3600:
        return f"{value / 60:.1f}分钟"
    return f"{value / 3600:.1f}小时"


@bp.get("/api/analytics")
@login_required(role="admin")
async def api_figures(request: Request) -> HTTPResponse:
    try:
        q = query_of(request)
    except BadRange as exc:
        return _bad(request, str(exc))
    return response.json(_figures(q), dumps=lambda d: json.dumps(d, ensure_ascii=False))


@bp.get("/analytics/export/<name:str>")
@login_required(role="admin")
async def export_csv(request: Request, name: str) -> HTTPResponse:
    table = name.removesuffix(".csv")
    try:
        q = query_of(request)
    except BadRange as exc:
        return _bad(request, str(exc))
    figures = _shown_figures(request, q)
    tables = csv_tables(figures)
    if table not in tables:
        return _bad(request, f"没有这个表格：{table}")
    header, rows = tables[table]
    filename = f"analytics-{table}-{q['day_from']}-{q['day_to']}.csv"
    return response.text(
        to_csv(header, rows),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/analytics/conversations")
@login_required(role="admin")
async def drill_down(request: Request) -> HTTPResponse:
    try:
        q = query_of(request)
    except BadRange as exc:
        return _bad(request, str(exc))
    what = request.args.get("what") or "all"
    try:
        rows = metrics.drill(
            get_database(), q["day_from"], q["day_to"], what, channel=q["channel"] or None
        )
    except ValueError:
        return _bad(request, f"不支持的明细：{what}")
    if wants_json(request):
        return response.json({"what": what, "conversations": rows})
    return render(
        request,
        "analytics_conversations.html",
        rows=rows,
        what=what,
        what_title=drill_title(what),
        rng=q,  # not "q": the layout's search box reads q
        qs=lambda **more: _qs(q, **more),
        outcome_labels=OUTCOME_LABELS,
        reason_label=labels.reason,
        channel_label=labels.channel,
        intent_label=labels.intent,
    )


@bp.get("/analytics/conversation")
@login_required(role="admin")
async def conversation(request: Request) -> HTTPResponse:
    """One conversation of the analytics store: its messages (from the assistant's
    tracker; the customer messages of the store when the assistant is unreachable)."""
    conversation_id = request.args.get("id") or ""
    t = analytics_conversations
    db = get_database()
    with db.connect() as conn:
        row = conn.execute(t.select().where(t.c.id == conversation_id)).first()
        following = None
        if row is not None:
            following = conn.execute(
                t.select()
                .where(t.c.sender_id == row.sender_id, t.c.started_at > row.started_at)
                .order_by(t.c.started_at)
                .limit(1)
            ).first()
    if row is None:
        return render(
            request, "error.html", status=404, title="没有这个会话", message="会话不存在或已被清理"
        )
    me = current_agent(request)
    start = float(row.started_at) - 1
    end = float(following.started_at) if following is not None else float(row.last_at) + 3600
    lines: list[dict[str, Any]] = []
    note = ""
    try:
        tracker = await request.app.ctx.desk.tracker(row.sender_id)
        events = [
            e for e in tracker.get("events") or [] if start <= float(e.get("timestamp") or 0) < end
        ]
        for line in chat_lines(events):
            lines.append(
                {
                    "who": line.who,
                    "text": shown(me, line.text),
                    "time": line.time,
                    "agent": line.agent_name,
                }
            )
    except RasaApiError:
        note = "机器人服务暂时无法连接，只显示客户消息"
        for m in metrics.conversation_messages(db, conversation_id):
            stamp = datetime.fromtimestamp(m["at"], BEIJING).strftime("%m-%d %H:%M")
            lines.append(
                {"who": "customer", "text": shown(me, m["text"]), "time": stamp, "agent": ""}
            )
    return render(
        request,
        "analytics_conversation.html",
        c=dict(row._mapping),
        lines=lines,
        note=note,
        outcome=OUTCOME_LABELS[metrics.outcome(dict(row._mapping))],
        reason_label=labels.reason,
        channel_label=labels.channel,
        intent_label=labels.intent,
        back=request.args.get("back") or "/analytics",
    )
