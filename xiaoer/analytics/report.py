"""``xiaoer report`` and ``xiaoer analytics rebuild``: the dashboard's figures on the
command line.

``xiaoer report --from 2026-11-01 --to 2026-11-30 [--json] [--png FILE]`` first catches
the analytics store up with the event stream (unless ``--no-follow``), then prints a
summary, the figures as one JSON object (the same dictionary the console's dashboard
shows), or writes a one-page chart summary (matplotlib) for sharing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from xiaoer.analytics import metrics
from xiaoer.core import labels
from xiaoer.core.clock import BEIJING
from xiaoer.core.db import get_database

CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei"]


def catch_up(endpoints: Path | None = None) -> int:
    """Apply the event rows the worker has not applied yet (0 without a SQL broker)."""
    from xiaoer.analytics.jobs import follower

    current = follower(endpoints)
    return current.poll() if current is not None else 0


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}秒" if value < 120 else f"{value / 60:.1f}分钟"


def summary_lines(f: dict[str, Any]) -> list[str]:
    """The summary in Chinese; intents, reasons and channels by their labels."""
    csat = f["csat"]
    top_intents = list(f["intents"].items())[:5]
    reasons = list(f["handoff_reasons"].items())[:5]
    return [
        f"{f['from']} 至 {f['to']}"
        + (f"（渠道：{labels.channel(f['channel'])}）" if f["channel"] else ""),
        f"会话 {f['conversations']}  客户消息 {f['customer_messages']}  "
        f"新客户 {f['new_customers']}  老客户 {f['returning_customers']}",
        f"机器人独立解决 {pct(f['automation_rate'])}  转人工 {pct(f['handoff_rate'])}  "
        f"未解决 {pct(f['unresolved_rate'])}  未识别率 {pct(f['fallback_rate'])}",
        f"机器人响应 p50 {seconds(f['bot_response_seconds']['p50'])}  "
        f"人工首次响应 p50 {seconds(f['agent_first_response_seconds']['p50'])} "
        f"p90 {seconds(f['agent_first_response_seconds']['p90'])}  "
        f"处理时长 p50 {seconds(f['agent_handling_seconds']['p50'])}",
        f"线索 {f['leads']['captured']}（已联系 {f['leads']['contacted']}，成交 {f['leads']['won']}）"
        f"  售后单 {f['after_sales']['cases']}  当前待发送 {f['outbox']['backlog']}",
        f"满意度 {csat['average'] if csat['average'] is not None else '—'} 分"
        f"（{csat['responses']} 份评价，回复率 {pct(csat['response_rate'])}）",
        "热门问题 " + ("、".join(f"{labels.intent(k)} {v}" for k, v in top_intents) or "—"),
        "转人工原因 " + ("、".join(f"{labels.reason(k)} {v}" for k, v in reasons) or "—"),
    ]


def write_png(f: dict[str, Any], path: Path) -> list[str]:
    """One page: the summary, conversations per bucket by outcome, intents, CSAT.
    Returns the texts drawn (titles, tick labels, the summary), all in Chinese."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    plt.rcParams["font.sans-serif"] = [n for n in CJK_FONTS if n in installed] + ["DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    fig = plt.figure(figsize=(11.69, 8.27), dpi=110)  # A4 landscape
    fig.suptitle("店小二 数据报告", fontsize=16, fontweight="bold")
    fig.text(0.03, 0.93, "\n".join(summary_lines(f)), va="top", fontsize=9, linespacing=1.5)

    keys = list(f["series"])
    ax = fig.add_axes((0.06, 0.38, 0.55, 0.3))
    bottom = [0] * len(keys)
    for field, label, color in (
        ("automated", "机器人解决", "#5470c6"),
        ("handoffs", "转人工", "#fac858"),
        ("unresolved", "未解决", "#ee6666"),
    ):
        values = [f["series"][k][field] for k in keys]
        ax.bar(range(len(keys)), values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, len(keys) // 10)
    ax.set_xticks(range(0, len(keys), step))
    ax.set_xticklabels([k[5:] for k in keys][::step], fontsize=7, rotation=30)
    ax.set_title("会话量（按结果）", fontsize=10)
    ax.legend(fontsize=7)

    ax = fig.add_axes((0.70, 0.38, 0.27, 0.3))
    top = list(f["intents"].items())[:10][::-1]
    ax.barh([labels.intent(k) for k, _ in top], [v for _, v in top], color="#91cc75")
    ax.tick_params(labelsize=7)
    ax.set_title("意图 Top 10", fontsize=10)

    ax = fig.add_axes((0.06, 0.06, 0.25, 0.24))
    dist = f["csat"]["distribution"]
    ax.bar([f"{k}分" for k in dist], list(dist.values()), color="#73c0de")
    ax.set_title("满意度评分分布", fontsize=10)

    ax = fig.add_axes((0.38, 0.06, 0.25, 0.24))
    reasons = {labels.reason(k): v for k, v in f["handoff_reasons"].items()} or {"—": 0}
    ax.bar(list(reasons), list(reasons.values()), color="#fc8452")
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_title("转人工原因", fontsize=10)

    ax = fig.add_axes((0.70, 0.06, 0.27, 0.24))
    leads = f["leads"]
    ax.bar(
        ["获取线索", "已联系", "已成交"],
        [leads["captured"], leads["contacted"], leads["won"]],
        color="#9a60b4",
    )
    ax.set_title("线索", fontsize=10)
    stamp = datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M")
    fig.text(0.99, 0.01, f"生成于 {stamp}", ha="right", fontsize=7, color="#888")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")  # draws the tick labels too
    drawn = [t.get_text() for t in fig.texts]
    for axes in fig.axes:
        drawn.append(axes.get_title())
        drawn += [t.get_text() for t in axes.get_xticklabels() + axes.get_yticklabels()]
    plt.close(fig)
    return [t for t in drawn if t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xiaoer report", description="analytics of a date range (docs/analytics.md)"
    )
    parser.add_argument("--from", dest="day_from", required=True, help="YYYY-MM-DD (Beijing)")
    parser.add_argument("--to", dest="day_to", required=True, help="YYYY-MM-DD, included")
    parser.add_argument("--channel", default=None, help="one channel (rest, douyin, …)")
    parser.add_argument("--bucket", default="day", choices=metrics.BUCKETS)
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    parser.add_argument("--png", type=Path, help="write a one-page chart summary")
    parser.add_argument("--endpoints", type=Path, help="endpoints.yml of the event broker")
    parser.add_argument(
        "--no-follow", action="store_true", help="do not read new events first (the worker does)"
    )
    args = parser.parse_args(argv)
    try:
        day_from, day_to = metrics.parse_day(args.day_from), metrics.parse_day(args.day_to)
        metrics.bounds(day_from, day_to)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.no_follow:
        catch_up(args.endpoints)
    figures = metrics.compute(
        get_database(), day_from, day_to, channel=args.channel, bucket=args.bucket
    )
    if args.png:
        write_png(figures, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    elif not args.png:
        print("\n".join(summary_lines(figures)))
    return 0


def rebuild_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xiaoer analytics rebuild",
        description="empty the analytics store and replay the whole event log into it",
    )
    parser.add_argument("--endpoints", type=Path, help="endpoints.yml of the event broker")
    args = parser.parse_args(argv)
    from xiaoer.analytics.jobs import follower

    current = follower(args.endpoints)
    if current is None:
        print(
            "error: no SQL event_broker in endpoints.yml: nothing to rebuild from", file=sys.stderr
        )
        return 2
    started = datetime.now()
    rows = current.rebuild()
    took = (datetime.now() - started).total_seconds()
    print(f"analytics rebuilt from {rows} events in {took:.1f} s ({current.where()})")
    return 0
