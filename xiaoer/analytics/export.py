"""Every table of the dashboard as CSV (the console's export links, and the tests'
round trip): one function names the tables and their columns, so the page and the
export always show the same rows."""

from __future__ import annotations

import csv
import io
from typing import Any

from xiaoer.core import labels

Table = tuple[list[str], list[list[Any]]]

# the header of the machine-readable code column: kept in the CSV (a round trip, a
# drill-down link), hidden on the dashboard where its Chinese label stands first
CODE = "代码"

OVERVIEW = {
    "conversations": "会话",
    "customer_messages": "客户消息",
    "customers": "客户",
    "new_customers": "新客户",
    "returning_customers": "老客户",
    "handoffs": "转人工会话",
    "automated": "机器人解决会话",
    "unresolved": "未解决会话",
    "automation_rate": "机器人解决率",
    "handoff_rate": "转人工率",
    "unresolved_rate": "未解决率",
    "fallbacks": "未识别消息",
    "fallback_rate": "未识别率",
}
OVERVIEW_KEYS = tuple(OVERVIEW)
SERIES = {
    "conversations": "会话",
    "customer_messages": "客户消息",
    "handoffs": "转人工",
    "automated": "机器人解决",
    "unresolved": "未解决",
    "fallbacks": "未识别",
    "new_customers": "新客户会话",
    "returning_customers": "老客户会话",
}
TIMES = {
    "bot_response": "机器人响应",
    "agent_first_response": "人工首次响应",
    "agent_handling": "人工处理时长",
}
LEADS = {"captured": "获取线索", "contacted": "已联系", "won": "已成交"}
GREETINGS = {"greeted": "主动问候", "replied": "问候后回复", "reply_rate": "问候回复率"}
# the outbox is a snapshot taken now, whatever the date range (metrics._outbox)
OUTBOX = {
    "backlog": "当前待发送",
    "douyin_pending": "当前待发送（抖音）",
    "notifications_pending": "当前待发送（通知）",
    "failed": "当前发送失败",
}


def _secs(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _label(table: dict[str, str], code: str) -> str:
    return table.get(code) or "其他"


def csv_tables(f: dict[str, Any]) -> dict[str, Table]:
    """The dashboard's tables from :func:`xiaoer.analytics.metrics.compute`'s result:
    Chinese headers, a Chinese label first in each row, the code in the "代码" column."""
    series_cols = list(next(iter(f["series"].values()), {}).keys())
    csat = f["csat"]
    top_intents = list(f["intents"])[:5]
    asked = sum(f["intents"].values())  # the share among what customers asked about
    tables: dict[str, Table] = {
        "overview": (
            ["指标", "数值", CODE],
            [[OVERVIEW[k], f[k], k] for k in OVERVIEW_KEYS],
        ),
        "series": (
            ["时间", *(SERIES.get(c) or c for c in series_cols)],
            [[k, *(v[c] for c in series_cols)] for k, v in f["series"].items()],
        ),
        "channels": (
            ["渠道", "会话", CODE],
            [[labels.channel(k), v, k] for k, v in f["channels"].items()],
        ),
        "intents": (
            ["意图", "消息数", "占比（%）", CODE],
            [
                [labels.intent(k), v, round(v * 100 / asked, 1) if asked else 0, k]
                for k, v in f["intents"].items()
            ],
        ),
        "intent_trend": (
            ["时间", *(labels.intent(i) for i in top_intents)],
            [[k, *(v.get(i, 0) for i in top_intents)] for k, v in f["intent_trend"].items()],
        ),
        "products": (
            ["商品编号", "商品", "咨询次数"],
            [[p["product"], p["name"], p["count"]] for p in f["top_products"]],
        ),
        "handoff_reasons": (
            ["原因", "会话", CODE],
            [[labels.reason(k), v, k] for k, v in f["handoff_reasons"].items()],
        ),
        "fallback_messages": (
            ["时间", "客户消息", "会话编号"],
            [[m["at"], m["text"], m["conversation_id"]] for m in f["fallback_messages"]],
        ),
        "times": (
            ["指标", "p50（秒）", "p90（秒）", "样本数", CODE],
            [
                [TIMES[name], _secs(f[key]["p50"]), _secs(f[key]["p90"]), f[key]["count"], name]
                for name, key in (
                    ("bot_response", "bot_response_seconds"),
                    ("agent_first_response", "agent_first_response_seconds"),
                    ("agent_handling", "agent_handling_seconds"),
                )
            ],
        ),
        "agents": (
            [
                "编号",
                "客服",
                "会话",
                "首次响应p50（秒）",
                "首次响应p90（秒）",
                "处理时长p50（秒）",
                "满意度",
            ],
            [
                [
                    a["agent_id"],
                    a["name"],
                    a["conversations"],
                    _secs(a["first_response_p50"]),
                    _secs(a["first_response_p90"]),
                    _secs(a["handling_p50"]),
                    a["csat_average"],
                ]
                for a in f["agents"]
            ],
        ),
        "leads": (
            ["阶段", "线索数", CODE],
            [[_label(LEADS, k), v, k] for k, v in f["leads"].items()],
        ),
        "greetings": (
            ["指标", "数值", CODE],
            [
                [_label(GREETINGS, k), f"{v * 100:.1f}%" if k.endswith("_rate") else v, k]
                for k, v in f["greetings"].items()
            ],
        ),
        "after_sales": (
            ["原因", "售后单"],
            [[labels.after_sales_reason(k), v] for k, v in f["after_sales"]["by_reason"].items()],
        ),
        "outbox": (
            ["指标（当前，不随日期变化）", "数值", CODE],
            [[_label(OUTBOX, k), v, k] for k, v in f["outbox"].items()],
        ),
        "csat": (
            ["评分", "评价数", CODE],
            [[f"{k}分", v, k] for k, v in csat["distribution"].items()],
        ),
        "csat_by_intent": (
            ["首个意图", "评价数", "平均分", CODE],
            [
                [labels.intent(r["name"]), r["responses"], r["average"], r["name"]]
                for r in csat["by_intent"]
            ],
        ),
        "csat_by_flow": (
            ["流程", "评价数", "平均分", CODE],
            [
                [labels.flow(r["name"]), r["responses"], r["average"], r["name"]]
                for r in csat["by_flow"]
            ],
        ),
        "csat_by_agent": (
            ["客服", "评价数", "平均分"],
            [[r["name"], r["responses"], r["average"]] for r in csat["by_agent"]],
        ),
        "csat_comments": (
            ["时间", "评分", "留言", "会话编号"],
            [[c["at"], c["rating"], c["comment"], c["conversation_id"]] for c in csat["comments"]],
        ),
    }
    return tables


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV text with a BOM (Excel then reads the Chinese text as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return "\ufeff" + buffer.getvalue()


def parse_csv(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    return rows[0], rows[1:]
