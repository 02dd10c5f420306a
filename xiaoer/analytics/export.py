"""Every table of the dashboard as CSV (the console's export links, and the tests'
round trip): one function names the tables and their columns, so the page and the
export always show the same rows."""

from __future__ import annotations

import csv
import io
from typing import Any

Table = tuple[list[str], list[list[Any]]]

OVERVIEW_KEYS = (
    "conversations",
    "customer_messages",
    "customers",
    "new_customers",
    "returning_customers",
    "handoffs",
    "automated",
    "unresolved",
    "automation_rate",
    "handoff_rate",
    "unresolved_rate",
    "fallbacks",
    "fallback_rate",
)


def csv_tables(f: dict[str, Any]) -> dict[str, Table]:
    """The dashboard's tables from :func:`xiaoer.analytics.metrics.compute`'s result."""
    series_cols = list(next(iter(f["series"].values()), {}).keys())
    csat = f["csat"]
    top_intents = list(f["intents"])[:5]
    tables: dict[str, Table] = {
        "overview": (["metric", "value"], [[k, f[k]] for k in OVERVIEW_KEYS]),
        "series": (
            ["bucket", *series_cols],
            [[k, *(v[c] for c in series_cols)] for k, v in f["series"].items()],
        ),
        "channels": (["channel", "conversations"], [[k, v] for k, v in f["channels"].items()]),
        "intents": (
            ["intent", "messages", "share"],
            [
                [k, v, round(v / f["customer_messages"], 4) if f["customer_messages"] else 0]
                for k, v in f["intents"].items()
            ],
        ),
        "intent_trend": (
            ["bucket", *top_intents],
            [[k, *(v.get(i, 0) for i in top_intents)] for k, v in f["intent_trend"].items()],
        ),
        "products": (
            ["product", "name", "messages"],
            [[p["product"], p["name"], p["count"]] for p in f["top_products"]],
        ),
        "handoff_reasons": (
            ["reason", "conversations"],
            [[k, v] for k, v in f["handoff_reasons"].items()],
        ),
        "fallback_messages": (
            ["at", "text", "conversation_id"],
            [[m["at"], m["text"], m["conversation_id"]] for m in f["fallback_messages"]],
        ),
        "times": (
            ["measure", "p50_seconds", "p90_seconds", "count"],
            [
                [name, f[key]["p50"], f[key]["p90"], f[key]["count"]]
                for name, key in (
                    ("bot_response", "bot_response_seconds"),
                    ("agent_first_response", "agent_first_response_seconds"),
                    ("agent_handling", "agent_handling_seconds"),
                )
            ],
        ),
        "agents": (
            [
                "agent_id",
                "name",
                "conversations",
                "first_response_p50",
                "first_response_p90",
                "handling_p50",
                "csat_average",
            ],
            [
                [
                    a["agent_id"],
                    a["name"],
                    a["conversations"],
                    a["first_response_p50"],
                    a["first_response_p90"],
                    a["handling_p50"],
                    a["csat_average"],
                ]
                for a in f["agents"]
            ],
        ),
        "leads": (["stage", "leads"], [[k, v] for k, v in f["leads"].items()]),
        "greetings": (["measure", "value"], [[k, v] for k, v in f["greetings"].items()]),
        "after_sales": (
            ["reason", "cases"],
            [[k, v] for k, v in f["after_sales"]["by_reason"].items()],
        ),
        "outbox": (["measure", "value"], [[k, v] for k, v in f["outbox"].items()]),
        "csat": (
            ["rating", "responses"],
            [[k, v] for k, v in csat["distribution"].items()],
        ),
        "csat_by_intent": (
            ["intent", "responses", "average"],
            [[r["name"], r["responses"], r["average"]] for r in csat["by_intent"]],
        ),
        "csat_by_flow": (
            ["flow", "responses", "average"],
            [[r["name"], r["responses"], r["average"]] for r in csat["by_flow"]],
        ),
        "csat_by_agent": (
            ["agent", "responses", "average"],
            [[r["name"], r["responses"], r["average"]] for r in csat["by_agent"]],
        ),
        "csat_comments": (
            ["at", "rating", "comment", "conversation_id"],
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
